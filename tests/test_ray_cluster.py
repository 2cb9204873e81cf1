"""A model feature computed on a separate Ray cluster, chosen by address (RAY_ADDRESS).

Starts a real Ray head on loopback with `ray start --head` in its own short temp dir, runs
`fashion-assets refresh --feature image_embedding` (a Dagster run on a real instance) with
RAY_ADDRESS=127.0.0.1:<port>, checks in that cluster's GCS that the feature's workers ran there for that
process, and stops exactly the processes that head started (found by its temp dir), never `ray stop`.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fashion_assets.ingest import ingest
from fashion_assets.project import Project
from fashion_assets.settings import Settings
from tests.e2e_helpers import REPO, free_port

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

VENV_BIN = Path(sys.executable).parent


def _exe(name: str) -> str:
    local = VENV_BIN / name
    return str(local) if local.exists() else shutil.which(name) or name


def head_processes(temp_dir: Path) -> list[psutil.Process]:
    """Every process of the Ray head living in ``temp_dir``: the services (their command lines name the
    temp or session dir) and their descendants (workers rename themselves ``ray::...``)."""
    me = psutil.Process()
    spare = {me.pid, *(p.pid for p in me.parents())}  # never this test process (or its parents)
    roots = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if p.pid not in spare and any(str(temp_dir) in arg for arg in p.info["cmdline"] or ()):
                roots.append(p)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    family: dict[int, psutil.Process] = {}
    for p in roots:
        family[p.pid] = p
        try:
            for child in p.children(recursive=True):
                family[child.pid] = child
        except psutil.NoSuchProcess:
            continue
    return list(family.values())


def stop_head(temp_dir: Path, grace: float = 5.0) -> list[int]:
    """SIGTERM, then SIGKILL, every process of the head in ``temp_dir``; returns PIDs still alive.

    (The GCS server and the autoscaler monitor outlive SIGTERM by more than 15 s: the grace is short.)"""
    alive: list[psutil.Process] = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        procs = head_processes(temp_dir) + alive
        for p in procs:
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        _, alive = psutil.wait_procs(procs, timeout=grace if sig == signal.SIGTERM else 10)
        if not alive and not head_processes(temp_dir):
            return []
    return [p.pid for p in head_processes(temp_dir) + alive if p.is_running()]


@pytest.fixture
def ray_auth() -> dict[str, str]:
    """Ray 2.60 turns token authentication on for clusters started by `ray start` (and writes a token to
    ~/.ray/auth_token when none is given). The test gives its own token, to the head and to its clients."""
    return {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}


@pytest.fixture
def ray_head(ray_auth: dict[str, str]) -> Iterator[str]:
    """A Ray head started with 127.0.0.1 and one CPU, in its own temp dir; yields its address."""
    # Short: Ray's unix socket paths (temp dir + session name + socket) must stay under 107 bytes.
    temp_dir = Path(tempfile.mkdtemp(prefix="rh", dir="/tmp"))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(ray_auth, RAY_USAGE_STATS_ENABLED="0", FASHION_MODEL_PROFILE="tiny", LANCE_LOG="error")
    cmd = [
        _exe("ray"),
        "start",
        "--head",
        f"--port={port}",
        "--node-ip-address=127.0.0.1",
        "--num-cpus=1",
        f"--temp-dir={temp_dir}",
        "--include-dashboard=false",
        "--disable-usage-stats",
        # Fixed default ports would collide with other Ray heads on this host: ask for free ones.
        f"--ray-client-server-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        "--object-store-memory=100000000",
    ]
    try:
        started = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=REPO)
        assert started.returncode == 0, f"ray start failed:\n{started.stdout}\n{started.stderr}"
        assert head_processes(temp_dir), "ray start returned but no process of the head is running"
        yield f"127.0.0.1:{port}"
    finally:
        left = stop_head(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)
        assert not left, f"processes of the Ray head still running: {left}"


# Run in a separate driver so this test process never holds a Ray connection.
CLUSTER_REPORT = textwrap.dedent(
    """
    import json, sys
    import ray
    import ray._private.state as state
    ctx = ray.init(address=sys.argv[1], include_dashboard=False, log_to_driver=False)
    jobs = [
        {"job_id": j["JobID"], "driver_pid": int(j["DriverPid"]), "dead": j["IsDead"]}
        for j in state.jobs()
    ]
    actors = [
        {"class": a["ActorClassName"], "job_id": a["JobID"], "state": a["State"]}
        for a in state.actors().values()
    ]
    nodes = [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]
    print(json.dumps({"gcs": ctx.address_info["gcs_address"], "jobs": jobs, "actors": actors, "nodes": nodes}))
    ray.shutdown()
    """
)


def test_model_feature_runs_on_ray_cluster_by_address(
    ray_head: str, ray_auth: dict[str, str], tmp_path: Path, source: Path
) -> None:
    started = time.monotonic()
    settings = Settings(str(tmp_path / "db"), "products", str(source), 100)
    project = Project(settings)
    report = ingest(project.table, source, project.specs(), settings.fragment_rows)
    assert report.fragments_added

    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS"}}
    env.update(
        ray_auth,
        RAY_ADDRESS=ray_head,
        DAGSTER_HOME=str(home),
        FASHION_DB_URI=settings.db_uri,
        FASHION_SOURCE_DIR=settings.source_dir,
        FASHION_FRAGMENT_ROWS=str(settings.fragment_rows),
        FASHION_MODEL_PROFILE="tiny",
        LANCE_LOG="error",
    )
    proc = subprocess.Popen(
        [_exe("fashion-assets"), "refresh", "--feature", "image_embedding", "--json"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0, f"refresh failed ({proc.returncode}):\n{out}\n{err[-4000:]}"
    result = json.loads(out)
    assert result["success"], result
    computed = result["features"]["image_embedding"]
    status = project.status()
    assert computed["fragments_computed"] == len(status.fragments), computed
    assert status.features["image_embedding"].missing == [], status.as_dict()

    # The cluster at that address ran it: a job driven by the refresh process, with the feature's workers.
    probe = subprocess.run(
        [sys.executable, "-c", CLUSTER_REPORT, ray_head],
        env={**env, "RAY_ADDRESS": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert probe.returncode == 0, probe.stderr[-4000:]
    cluster = json.loads(probe.stdout.strip().splitlines()[-1])
    # Ray swaps 127.0.0.1 for the host's address ("remotely reachable"): compare the port, count the nodes.
    assert cluster["gcs"].rsplit(":", 1)[1] == ray_head.rsplit(":", 1)[1] and len(cluster["nodes"]) == 1, (
        cluster
    )
    refresh_jobs = [j["job_id"] for j in cluster["jobs"] if j["driver_pid"] == proc.pid]
    assert refresh_jobs, f"no job of the refresh process (pid {proc.pid}) on {ray_head}: {cluster['jobs']}"
    workers = [a for a in cluster["actors"] if a["class"] == "_Worker" and a["job_id"] in refresh_jobs]
    assert workers, f"no feature worker of the refresh job on {ray_head}: {cluster['actors']}"
    assert all(a["state"] == "DEAD" for a in workers), workers  # released at the end of the run
    print(f"[ray-cluster] image_embedding on {ray_head}: {computed}; {time.monotonic() - started:.1f} s")
