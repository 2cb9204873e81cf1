"""Helpers for the end-to-end tests: free ports, processes in their own group, GraphQL, headless Chromium.

Everything started here is stopped by its own process group or PID, never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import psutil
import requests

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

T = TypeVar("T")


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(
    check: Callable[[], T | None], timeout: float, interval: float = 1.0, what: str = "condition"
) -> T:
    """Call ``check`` until it returns something truthy; raise TimeoutError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (requests.RequestException, OSError) as exc:
            last_error = exc
            value = None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what} (last error: {last_error})")


def stop_process_tree(proc: subprocess.Popen, grace: float = 20.0) -> list[int]:
    """Stop ``proc`` (started with ``start_new_session=True``), its process group and every descendant.

    SIGTERM to the group, then SIGKILL to whatever is left after ``grace`` seconds. Descendants that
    moved to their own session (Ray's services, say) are found with psutil before the group is signalled.
    Returns the PIDs still alive at the end (should be empty).
    """
    try:
        family = [psutil.Process(proc.pid), *psutil.Process(proc.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)  # the group id is the leader's pid (start_new_session=True)
        except ProcessLookupError:
            pass
        for p in family:
            try:
                p.send_signal(sig)
            except psutil.NoSuchProcess:
                pass
        try:
            proc.wait(timeout=grace if sig == signal.SIGTERM else 10)
        except subprocess.TimeoutExpired:
            pass
        _, alive = psutil.wait_procs(family, timeout=grace if sig == signal.SIGTERM else 10)
        family = alive
        if not family and proc.poll() is not None:
            break
    return [p.pid for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


class DagsterDev:
    """``dagster dev`` on a loopback port, in its own process group, logging to a file."""

    def __init__(self, env: Mapping[str, str], port: int, log_path: Path) -> None:
        self.env = dict(env)
        self.port = port
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None
        self._log = None

    def start(self, timeout: float = 120.0) -> None:
        # The interpreter running the tests knows its own environment; CI calls .venv/bin/pytest directly,
        # with neither VIRTUAL_ENV set nor .venv/bin on PATH.
        venv_bin = Path(sys.executable).parent
        dagster = venv_bin / "dagster"
        exe = str(dagster) if dagster.exists() else shutil.which("dagster") or "dagster"
        self.env = {
            **self.env,
            "PATH": f"{venv_bin}{os.pathsep}{self.env.get('PATH', os.environ.get('PATH', ''))}",
        }
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(
            [exe, "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(self.port)],
            cwd=REPO,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: it ignores SIGTERM from a script otherwise
        )
        wait_for(self._location_loaded, timeout, what=f"dagster dev on {self.url} (log: {self.log_path})")

    def _location_loaded(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {self.proc.returncode}; log:\n{self.log_tail()}")
        data = self.graphql(
            "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus"
            " locationOrLoadError { __typename ... on PythonError { message } } } } } }",
            timeout=10,
        )
        entries = data["workspaceOrError"]["locationEntries"]
        for e in entries:
            if e["locationOrLoadError"] and e["locationOrLoadError"]["__typename"] == "PythonError":
                raise RuntimeError(f"code location failed to load: {e['locationOrLoadError']['message']}")
        return bool(entries) and all(
            e["loadStatus"] == "LOADED" and e["locationOrLoadError"] for e in entries
        )

    def graphql(self, query: str, variables: dict | None = None, timeout: float = 30.0) -> dict:
        resp = requests.post(
            f"{self.url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout
        )
        resp.raise_for_status()
        body = resp.json()
        if body.get("errors"):
            raise AssertionError(f"GraphQL errors: {body['errors']}")
        return body["data"]

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def stop(self) -> list[int]:
        left: list[int] = []
        if self.proc is not None:
            left = stop_process_tree(self.proc)
        if self._log is not None:
            self._log.close()
        return left


@contextmanager
def dagster_dev(env: Mapping[str, str], log_path: Path, timeout: float = 120.0) -> Iterator[DagsterDev]:
    server = DagsterDev(env, free_port(), log_path)
    try:
        server.start(timeout)
        yield server
    finally:
        left = server.stop()
        assert not left, f"processes left running after stopping dagster dev: {left}"


def chromium(url: str, profile_dir: Path, *args: str, budget_ms: int = 15000, timeout: float = 90) -> str:
    """Run headless Chromium on ``url`` with extra ``args`` (``--screenshot=...``, ``--dump-dom``); stdout.

    ``budget_ms`` of virtual time lets the single-page app fetch its data and render before the capture.
    """
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={profile_dir}",
        "--window-size=1400,900",
        f"--virtual-time-budget={budget_ms}",
        *args,
        url,
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, text=True
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            stop_process_tree(proc, grace=5)
    if proc.returncode != 0:
        raise RuntimeError(f"chromium exited with {proc.returncode}: {err[-3000:]}")
    return out
