"""Runners: where fragment tasks are computed. In this process, or on a pool of Ray actors.

Both take a feature and fragment tasks and yield a ``FragmentResult`` or ``FragmentFailure`` per fragment as
each finishes, so the driver can commit finished fragments while others are still computing.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from fashion_assets.execution.checkpoints import CheckpointStore
from fashion_assets.execution.fragment import (
    FragmentFailure,
    FragmentResult,
    FragmentTask,
    compute_fragment,
)
from fashion_assets.features.base import Feature
from fashion_assets.store.table import ColumnSpec, ProductTable

log = logging.getLogger(__name__)

Outcome = FragmentResult | FragmentFailure


@dataclass(frozen=True)
class Job:
    """Everything a worker needs to compute fragments of one feature (picklable)."""

    table: ProductTable
    feature: Feature
    spec: ColumnSpec
    checkpoints: CheckpointStore | None
    checkpoint_size: int


class Runner(Protocol):
    """Computes fragment tasks and yields each fragment's outcome as it finishes."""

    def run(self, job: Job, tasks: Sequence[FragmentTask]) -> Iterator[Outcome]: ...


def _compute(job: Job, task: FragmentTask) -> Outcome:
    try:
        return compute_fragment(job.table, job.feature, job.spec, task, job.checkpoints, job.checkpoint_size)
    except Exception as exc:  # one bad fragment must not stop the others
        log.warning("fragment %s of %s failed: %s", task.fragment_id, job.spec.name, exc)
        return FragmentFailure(task.fragment_id, f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")


class InProcessRunner:
    """Computes fragments one after another in this process. For cheap features, tests and tiny runs:
    it saves Ray's start-up (seconds) where compute takes milliseconds."""

    def run(self, job: Job, tasks: Sequence[FragmentTask]) -> Iterator[Outcome]:
        if not tasks:
            return
        job.feature.setup()
        for task in tasks:
            yield _compute(job, task)


class _Worker:
    """A Ray actor holding one feature with its model loaded once."""

    def __init__(self, job: Job, torch_threads: int | None) -> None:
        if torch_threads:
            try:
                import torch

                torch.set_num_threads(torch_threads)
            except ImportError:
                pass
        self.job = job
        job.feature.setup()

    def compute(self, task: FragmentTask) -> Outcome:
        return _compute(self.job, task)


@dataclass
class RayRunner:
    """A pool of Ray actors, each holding the feature's model, pulling fragment tasks as they free up.

    Connects to whatever Ray this process is connected to (the Dagster Ray resource does ``ray.init``);
    starts a private local Ray when none is. Actors ask for one GPU each when the cluster has GPUs,
    ``cpus_per_worker`` CPUs otherwise. Every actor is killed when the run ends, fails or is interrupted.
    """

    num_workers: int | None = None
    cpus_per_worker: float = 1.0
    gpus_per_worker: float | None = None
    torch_threads: int | None = None

    def plan(self) -> tuple[int, float, float]:
        """(workers, cpus each, gpus each) for the connected cluster."""
        import ray

        resources = ray.cluster_resources()
        gpus = resources.get("GPU", 0.0)
        gpus_each = self.gpus_per_worker if self.gpus_per_worker is not None else (1.0 if gpus else 0.0)
        if self.num_workers:
            workers = self.num_workers
        elif gpus_each:
            workers = max(1, int(gpus // gpus_each))
        else:
            # One CPU worker: torch already uses every core; more workers only add model copies.
            workers = 1
        cpus = min(self.cpus_per_worker, max(resources.get("CPU", 1.0) / workers, 0.1))
        return workers, cpus, gpus_each

    def run(self, job: Job, tasks: Sequence[FragmentTask]) -> Iterator[Outcome]:
        if not tasks:
            return
        import ray

        own_ray = not ray.is_initialized()
        if own_ray:
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        actors = []
        try:
            workers, cpus, gpus = self.plan()
            workers = min(workers, len(tasks))
            threads = self.torch_threads or (None if gpus else max(1, int(os.cpu_count() or 1) // workers))
            cls = ray.remote(num_cpus=cpus, num_gpus=gpus)(_Worker)
            actors = [cls.remote(job, threads) for _ in range(workers)]
            queue = list(tasks)
            running: dict = {}
            for _ in range(2):  # two tasks queued per actor: it never waits on the driver between fragments
                for actor in actors:
                    if queue:
                        task = queue.pop(0)
                        running[actor.compute.remote(task)] = (actor, task)
            while running:
                ready, _ = ray.wait(list(running), num_returns=1)
                ref = ready[0]
                actor, task = running.pop(ref)
                try:
                    outcome = ray.get(ref)
                except Exception as exc:  # the actor died: model load failed, out of memory, killed
                    outcome = FragmentFailure(task.fragment_id, f"worker failed: {exc}")
                    if actor in actors:
                        actors.remove(actor)
                        ray.kill(actor)
                    yield outcome
                    if not actors and not running:
                        for t in queue:
                            yield FragmentFailure(t.fragment_id, f"not run: every worker failed ({exc})")
                        queue.clear()
                    continue
                yield outcome
                if queue:
                    nxt = queue.pop(0)
                    running[actor.compute.remote(nxt)] = (actor, nxt)
        finally:
            for actor in actors:
                ray.kill(actor)
            if own_ray:
                ray.shutdown()
