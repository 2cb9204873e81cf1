"""The driver: run one feature over a set of fragments, committing finished fragments in groups.

Fragments already materialized at the feature's current version are skipped before any worker starts, so
a run with nothing to do computes nothing and commits nothing. Fragments that finish are committed even if
others fail; a killed run leaves finished fragments committed and the rest checkpointed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from fashion_assets.execution.checkpoints import CheckpointStore
from fashion_assets.execution.fragment import FragmentFailure, FragmentResult, FragmentTask
from fashion_assets.execution.runners import InProcessRunner, Job, Runner
from fashion_assets.features.base import Feature
from fashion_assets.store.table import ColumnSpec, ProductTable

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a feature run did, for logs, Dagster metadata and ``--json`` output."""

    feature: str
    version: str
    requested: list[int]
    skipped: list[int] = field(default_factory=list)  # already materialized: not computed
    results: list[FragmentResult] = field(default_factory=list)
    failures: list[FragmentFailure] = field(default_factory=list)
    not_committed: list[int] = field(default_factory=list)  # vanished or reset while computing
    table_versions: list[int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def committed(self) -> list[int]:
        lost = set(self.not_committed)
        return [r.fragment_id for r in self.results if r.fragment_id not in lost]

    @property
    def rows_computed(self) -> int:
        return sum(r.rows_computed for r in self.results)

    @property
    def rows_resumed(self) -> int:
        return sum(r.rows_resumed for r in self.results)

    @property
    def rows_failed(self) -> int:
        return sum(r.rows_failed for r in self.results)

    @property
    def rows_per_second(self) -> float:
        return self.rows_computed / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "version": self.version,
            "fragments_requested": len(self.requested),
            "fragments_computed": len(self.committed),
            "fragments_skipped": len(self.skipped),
            "fragments_failed": [f.fragment_id for f in self.failures],
            "rows_computed": self.rows_computed,
            "rows_resumed": self.rows_resumed,
            "rows_failed": self.rows_failed,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second, 1),
            "table_versions": self.table_versions,
            "errors": [{"id": pid, "reason": reason} for r in self.results for pid, reason in r.errors][:50],
        }


ProgressFn = Callable[[RunSummary, FragmentResult | FragmentFailure, int], None]


def run_feature(
    table: ProductTable,
    feature: Feature,
    spec: ColumnSpec,
    fragment_ids: Sequence[int] | None = None,
    runner: Runner | None = None,
    checkpoint_size: int = 1024,
    commit_every: int = 8,
    commit_seconds: float = 30.0,
    recompute: bool = False,
    on_progress: ProgressFn | None = None,
) -> RunSummary:
    """Compute ``feature`` for the given fragments (default: all) that do not hold it yet, and commit.

    ``recompute`` computes materialized fragments again (their file is swapped). Returns a summary; a
    fragment that failed is listed in it, never raised here, after every other fragment is committed.
    """
    started = time.perf_counter()
    ds = table.dataset()
    present = table.materialized(spec.name, ds)
    wanted = sorted(present) if fragment_ids is None else [int(f) for f in fragment_ids]
    summary = RunSummary(spec.name, spec.version, wanted)
    missing_ids = [f for f in wanted if f not in present]
    if missing_ids:
        summary.failures += [FragmentFailure(f, "no such fragment in the table") for f in missing_ids]
    todo = [f for f in wanted if f in present and (recompute or not present[f])]
    summary.skipped = [f for f in wanted if f in present and present[f] and not recompute]
    if not todo:
        summary.seconds = time.perf_counter() - started
        return summary

    checkpoints = CheckpointStore.beside(table.db_uri, table.table_name, spec.name, spec.version)
    job = Job(table, feature, spec, checkpoints if feature.uses_model else None, checkpoint_size)
    runner = runner or InProcessRunner()
    tasks = [FragmentTask(f, ds.version) for f in todo]
    pending: list[FragmentResult] = []
    last_commit = time.monotonic()

    def commit() -> None:
        nonlocal pending, last_commit
        if not pending:
            return
        result = table.commit_column_files([r.column_file for r in pending])
        if result.version is not None:
            summary.table_versions.append(result.version)
        summary.not_committed += list(result.vanished) + list(result.stale)
        for fid in result.committed:
            if checkpoints is not None:
                checkpoints.clear(fid)
        pending = []
        last_commit = time.monotonic()

    done = 0
    try:
        for outcome in runner.run(job, tasks):
            done += 1
            if isinstance(outcome, FragmentFailure):
                summary.failures.append(outcome)
            else:
                summary.results.append(outcome)
                pending.append(outcome)
            if len(pending) >= commit_every or time.monotonic() - last_commit >= commit_seconds:
                commit()
            summary.seconds = time.perf_counter() - started
            if on_progress is not None:
                on_progress(summary, outcome, len(tasks) - done)
    finally:
        commit()  # whatever finished is kept, even when the run is being interrupted
        summary.seconds = time.perf_counter() - started
    return summary


def format_progress(summary: RunSummary, outcome: FragmentResult | FragmentFailure, remaining: int) -> str:
    """One log line per fragment: rows, rows/s and an ETA for the rest of the run."""
    if isinstance(outcome, FragmentFailure):
        head = f"{summary.feature}: fragment {outcome.fragment_id} FAILED: {outcome.error.splitlines()[0]}"
    else:
        rate = outcome.rows_computed / outcome.seconds if outcome.seconds > 0 else 0.0
        head = (
            f"{summary.feature}: fragment {outcome.fragment_id} done, {outcome.rows_computed} rows computed"
            f" ({outcome.rows_resumed} from checkpoints, {outcome.rows_failed} failed) in"
            f" {outcome.seconds:.1f} s, {rate:.1f} rows/s"
        )
    finished = len(summary.results) + len(summary.failures)
    eta = summary.seconds / finished * remaining if finished else 0.0
    return f"{head}; {remaining} fragments left, ETA {eta:.0f} s"
