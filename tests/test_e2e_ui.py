"""End to end through the real UI stack: `dagster dev` (webserver + daemon), the fragment sensor, GraphQL,
and headless Chromium on the asset graph and a partitions page.

1. Start `dagster dev -w workspace.yaml` on a free loopback port, in its own process group, with a fresh
   DAGSTER_HOME (the project's dagster.yaml), a table and a source folder under tmp, tiny models.
2. Ingest a sample catalogue by launching `ingest_job` through GraphQL (it goes through the run queue).
3. Let the daemon's fragment sensor (on by default) register partitions and launch one run; poll GraphQL
   until every partition of every feature is materialized; check the table itself.
4. Write more rows into the source folder, ingest again, and check that only the new fragments were
   computed (run metadata and per-partition materialization counts).
5. Load the asset graph and a partitions page in headless Chromium; the asset names must be on the page;
   screenshots are kept under artifacts/.

Everything started is stopped (process group + every descendant) in the teardown.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from html import unescape
from pathlib import Path

import pytest

from fashion_assets.catalog.sample import generate_sample
from fashion_assets.features.registry import FEATURE_NAMES
from fashion_assets.project import Project
from fashion_assets.settings import Settings
from tests.e2e_helpers import ARTIFACTS, CHROMIUM, REPO, DagsterDev, chromium, dagster_dev, wait_for

# About 4 minutes on 2 idle cores; far longer when other test runs share the cores.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

FEATURES = ("color_tags", "image_embedding", "caption", "caption_embedding")
LOCATION = "fashion_assets.definitions"
REPOSITORY = "__repository__"
FRAGMENT_ROWS = 50
FIRST_ROWS = 130  # 3 fragments (a few quirk rows are rejected)
SECOND_ROWS = 190  # 2 more
RUN_TIMEOUT = 600.0  # a feature run: 4 step processes, 3 local Rays, tiny models; 1-2 min on idle cores

LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN_STATUS = "query Run($id: ID!) { runOrError(runId: $id) { ... on Run { status } } }"
PARTITION_STATS = """
{ assetNodes { assetKey { path } partitionStats { numMaterialized numPartitions numFailed numMaterializing } } }"""
RUNS = """
query Runs($filter: RunsFilter) {
  runsOrError(filter: $filter, limit: 50) {
    ... on Runs { results { runId status tags { key value } } }
  }
}"""
MATERIALIZATIONS = """
query Mats($path: [String!]!) {
  assetOrError(assetKey: {path: $path}) {
    ... on Asset {
      assetMaterializations(limit: 1000) {
        partition runId
        metadataEntries { label ... on IntMetadataEntry { intValue } }
      }
    }
  }
}"""
AUTOMATION = """
query Automation($repo: RepositorySelector!) {
  sensorsOrError(repositorySelector: $repo) {
    ... on Sensors { results { name minIntervalSeconds sensorState { status } } }
  }
  schedulesOrError(repositorySelector: $repo) {
    ... on Schedules { results { name cronSchedule scheduleState { status } } }
  }
  instance { runQueueConfig { maxConcurrentRuns } poolConfig { poolGranularity defaultPoolLimit } }
}"""
REPO_SELECTOR = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY}


def _log(msg: str, started: float) -> None:
    print(f"[e2e +{time.monotonic() - started:6.1f}s] {msg}", flush=True)


def launch_ingest(server: DagsterDev) -> str:
    params = {
        "selector": {**REPO_SELECTOR, "jobName": "ingest_job"},
        "executionMetadata": {"tags": [{"key": "fashion/trigger", "value": "e2e-test"}]},
    }
    result = server.graphql(LAUNCH, {"params": params})["launchRun"]
    assert result["__typename"] == "LaunchRunSuccess", result
    return result["run"]["runId"]


def wait_run(server: DagsterDev, run_id: str, timeout: float = RUN_TIMEOUT) -> str:
    def done() -> str | None:
        status = server.graphql(RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        return status if status in {"SUCCESS", "FAILURE", "CANCELED"} else None

    status = wait_for(done, timeout, interval=2, what=f"run {run_id}")
    assert status == "SUCCESS", f"run {run_id} ended {status}; dagster dev log:\n{server.log_tail()}"
    return status


def partition_stats(server: DagsterDev) -> dict[str, dict]:
    nodes = server.graphql(PARTITION_STATS)["assetNodes"]
    return {n["assetKey"]["path"][-1]: n["partitionStats"] for n in nodes if n["partitionStats"]}


def wait_all_materialized(server: DagsterDev, fragments: int, started: float) -> dict[str, dict]:
    """Poll partition stats until every feature has ``fragments`` partitions, all materialized."""
    last: list = [None]

    def complete() -> dict | None:
        stats = partition_stats(server)
        if stats != last[0]:
            _log(
                "partitions "
                + json.dumps({k: [v["numMaterialized"], v["numPartitions"]] for k, v in stats.items()}),
                started,
            )
            last[0] = stats
        failed = {k: v["numFailed"] for k, v in stats.items() if v["numFailed"]}
        assert not failed, f"failed partitions {failed}; dagster dev log:\n{server.log_tail()}"
        ok = set(stats) == set(FEATURES) and all(
            v["numPartitions"] == fragments and v["numMaterialized"] == fragments for v in stats.values()
        )
        return stats if ok else None

    return wait_for(
        complete, RUN_TIMEOUT, interval=2, what=f"{fragments} materialized partitions per feature"
    )


def sensor_runs(server: DagsterDev) -> list[dict]:
    runs = server.graphql(
        RUNS, {"filter": {"tags": [{"key": "fashion/trigger", "value": "fragment_sensor"}]}}
    )
    return runs["runsOrError"]["results"]


def materializations(server: DagsterDev, name: str) -> list[dict]:
    asset = server.graphql(MATERIALIZATIONS, {"path": [name]})["assetOrError"]
    return asset["assetMaterializations"]


def per_partition_counts(server: DagsterDev) -> dict[str, dict[str, int]]:
    """Per feature and partition: how many runs materialized it. (The sensor's run-less "data is already
    there" records are left out: they record, they do not compute.)"""
    counts: dict[str, dict[str, int]] = {}
    for name in FEATURES:
        c: dict[str, int] = {}
        for m in materializations(server, name):
            if m["runId"]:
                c[m["partition"]] = c.get(m["partition"], 0) + 1
        counts[name] = c
    return counts


def page_text(dom: str) -> str:
    text = re.sub(r"<(script|style)[^>]*>.*?</\1>", " ", dom, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", text)
    return re.sub(r"\s+", " ", unescape(text))


def capture(url: str, name: str, profile: Path) -> str:
    """Screenshot ``url`` into artifacts/<name>.png and return the rendered page's text."""
    shot = ARTIFACTS / f"{name}.png"
    shot.unlink(missing_ok=True)
    chromium(url, profile / f"{name}-shot", f"--screenshot={shot}")
    assert shot.exists() and shot.stat().st_size > 10_000, f"no screenshot of {url}"
    dom = chromium(url, profile / f"{name}-dom", "--dump-dom")
    (ARTIFACTS / f"{name}.html").write_text(dom)
    return page_text(dom)


@pytest.fixture
def e2e_env(tmp_path: Path) -> dict[str, str]:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copyfile(REPO / "dagster.yaml", home / "dagster.yaml")
    env = {k: v for k, v in os.environ.items() if k not in {"RAY_ADDRESS", "FASHION_AUTOMATION"}}
    env.update(
        DAGSTER_HOME=str(home),
        FASHION_DB_URI=str(tmp_path / "db"),
        FASHION_SOURCE_DIR=str(tmp_path / "source"),
        FASHION_FRAGMENT_ROWS=str(FRAGMENT_ROWS),
        FASHION_MODEL_PROFILE="tiny",
        FASHION_SENSOR_INTERVAL="5",
        # The schedule stays on (the default), but must not ingest behind the test's back: two ingests of
        # the same folder at once would both append the same new rows.
        FASHION_INGEST_CRON="0 0 1 1 *",
        LANCE_LOG="error",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_dagster_dev_sensor_and_ui_end_to_end(e2e_env: dict[str, str], tmp_path: Path) -> None:
    started = time.monotonic()
    ARTIFACTS.mkdir(exist_ok=True)
    source = Path(e2e_env["FASHION_SOURCE_DIR"])
    first = generate_sample(source, FIRST_ROWS, seed=11)
    settings = Settings(e2e_env["FASHION_DB_URI"], "products", str(source), FRAGMENT_ROWS)

    with dagster_dev(e2e_env, tmp_path / "dagster_dev.log") as server:
        _log(f"dagster dev answering on {server.url}", started)

        # The instance and the automation, as the UI sees them: sensor and schedule on by default,
        # the run queue and the gpu pool from dagster.yaml.
        auto = server.graphql(AUTOMATION, {"repo": REPO_SELECTOR})
        sensors = {s["name"]: s for s in auto["sensorsOrError"]["results"]}
        schedules = {s["name"]: s for s in auto["schedulesOrError"]["results"]}
        assert sensors["fragment_sensor"]["sensorState"]["status"] == "RUNNING"
        assert sensors["fragment_sensor"]["minIntervalSeconds"] == 5
        assert schedules["ingest_schedule"]["scheduleState"]["status"] == "RUNNING"
        assert auto["instance"]["runQueueConfig"]["maxConcurrentRuns"] == 2
        assert auto["instance"]["poolConfig"] == {"poolGranularity": "run", "defaultPoolLimit": 1}

        # Round 1: ingest through the run queue, then the daemon's sensor does the rest.
        wait_run(server, launch_ingest(server))
        _log("first ingest done", started)
        status = Project(settings).status()
        fragments1 = len(status.fragments)
        assert 0 < status.rows <= len(first.unique_ids), status.as_dict()
        assert fragments1 == -(-status.rows // FRAGMENT_ROWS), status.as_dict()
        wait_all_materialized(server, fragments1, started)
        _log("round 1: every partition of every feature materialized", started)
        runs1 = sensor_runs(server)
        assert len(runs1) == 1, runs1  # one run for every fragment and feature
        wait_run(server, runs1[0]["runId"])
        status = Project(settings).status()
        for name in FEATURE_NAMES:
            assert status.features[name].missing == [], (name, status.as_dict())
            assert len(status.features[name].materialized) == fragments1
        counts1 = per_partition_counts(server)
        assert all(set(c) == {str(f) for f in status.fragments} for c in counts1.values()), counts1

        # Round 2: more rows in the same folder; only the new fragments are computed.
        second = generate_sample(source, SECOND_ROWS, seed=11)
        wait_run(server, launch_ingest(server))
        status = Project(settings).status()
        new = [str(f) for f in status.fragments[fragments1:]]
        assert new and status.rows <= len(second.unique_ids), status.as_dict()
        server.graphql("mutation { setNuxSeen }")  # a new user's first click: skip the community pop-up
        _log(f"second ingest done: new fragments {new}", started)

        # While the sensor's second run computes, look at the UI (the partitions page shows what is missing).
        with ThreadPoolExecutor(1) as pool:
            during = pool.submit(
                capture, f"{server.url}/assets/caption?view=partitions", "e2e-partitions-during", tmp_path
            )
            wait_all_materialized(server, len(status.fragments), started)
            during_text = during.result()
        _log("round 2: every partition materialized", started)
        assert "caption" in during_text

        runs2 = [r for r in sensor_runs(server) if r["runId"] != runs1[0]["runId"]]
        assert len(runs2) == 1, runs2
        wait_run(server, runs2[0]["runId"])
        tags2 = {t["key"]: t["value"] for t in runs2[0]["tags"]}
        assert tags2["dagster/asset_partition_range_start"] == new[0]
        assert tags2["dagster/asset_partition_range_end"] == new[-1]
        counts2 = per_partition_counts(server)
        for name in FEATURES:
            old = {k: v for k, v in counts2[name].items() if k not in new}
            assert old == counts1[name], f"{name}: old partitions computed again: {counts2[name]}"
            mats2 = [m for m in materializations(server, name) if m["runId"] == runs2[0]["runId"]]
            assert sorted(m["partition"] for m in mats2) == sorted(new), (name, mats2)
            recorded_by_sensor = [m["partition"] for m in materializations(server, name) if not m["runId"]]
            if recorded_by_sensor:  # data committed mid-run, seen by the sensor before the run reported it
                _log(f"{name}: the sensor also recorded partitions {recorded_by_sensor} as present", started)
            computed = [{e["label"]: e.get("intValue") for e in m["metadataEntries"]} for m in mats2]
            assert computed and all(c["fragments_computed"] == len(new) for c in computed), (name, computed)
            assert all(c["fragments_skipped"] == 0 for c in computed), (name, computed)
        status = Project(settings).status()
        for name in FEATURE_NAMES:
            assert status.features[name].missing == [], (name, status.as_dict())

        # The UI in a real browser, once everything is materialized: the "fashion" group's asset graph (the
        # global lineage page folds groups into boxes once there is more than one) and caption's partitions.
        group_url = f"{server.url}/locations/{REPOSITORY}@{LOCATION}/asset-groups/fashion"
        graph_text = capture(group_url, "e2e-asset-graph", tmp_path)
        for name in ("products", *FEATURES):
            assert name in graph_text, f"{name} not on the asset graph page"
        parts_url = f"{server.url}/assets/caption?view=partitions&partition={new[-1]}"
        parts_text = capture(parts_url, "e2e-partitions", tmp_path)
        assert "caption" in parts_text
        assert f"Materialized ({len(status.fragments)})" in parts_text, parts_text[:2000]
        assert "Missing (0)" in parts_text, parts_text[:2000]
        _log("UI pages captured under artifacts/", started)
