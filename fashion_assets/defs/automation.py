"""The fragment sensor and the ingest schedule: new rows are picked up and computed without anyone asking.

Both are on by default; ``FASHION_AUTOMATION=off`` starts them stopped (turn them on in the UI).
"""

import os

import dagster as dg

from fashion_assets.defs.jobs import ingest_job
from fashion_assets.defs.partitions import FRAGMENTS
from fashion_assets.defs.resources import FashionTable
from fashion_assets.defs.sync import materializations, plan_sync, range_tags

RUN_TAG = "fashion/refresh"
IN_FLIGHT = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


def default_status() -> dg.DefaultSensorStatus:
    off = os.environ.get("FASHION_AUTOMATION", "on").lower() in {"off", "0", "false", "no"}
    return dg.DefaultSensorStatus.STOPPED if off else dg.DefaultSensorStatus.RUNNING


def max_fragments_per_run() -> int:
    """Fragments one sensor run covers (``FASHION_MAX_FRAGMENTS_PER_RUN``, default 256): a big backlog
    becomes a series of runs, each one a unit the UI shows, retries and can cancel."""
    return max(1, int(os.environ.get("FASHION_MAX_FRAGMENTS_PER_RUN", "256")))


def refresh_in_flight(instance: dg.DagsterInstance) -> bool:
    """Is a feature refresh run (from this sensor or the CLI) queued or running?"""
    return bool(instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT, tags={RUN_TAG: "1"}), limit=1))


@dg.sensor(
    minimum_interval_seconds=int(os.environ.get("FASHION_SENSOR_INTERVAL", "30")),
    default_status=default_status(),
    asset_selection=dg.AssetSelection.groups("fashion") - dg.AssetSelection.assets("products"),
)
def fragment_sensor(context: dg.SensorEvaluationContext, table: FashionTable) -> dg.SensorResult:
    """Keeps the `fragments` partitions equal to the table's Lance fragments (adds new, deletes vanished),
    records as materialized, without recomputing, partitions whose data is already in the table, and
    requests one run covering every fragment still missing a feature (many fragments per run)."""
    project = table.project()
    if not project.table.exists():
        return dg.SensorResult(skip_reason=f"no table at {project.table.uri} yet: run the ingest job")
    plan = plan_sync(project, context.instance)
    requests: list = []
    if plan.add:
        requests.append(dg.AddDynamicPartitionsRequest(FRAGMENTS, plan.add))
    if plan.delete:
        requests.append(dg.DeleteDynamicPartitionsRequest(FRAGMENTS, plan.delete))
    runs = []
    missing = sorted({k for name in plan.features_missing for k in plan.missing[name]}, key=int)
    busy = refresh_in_flight(context.instance)
    if busy:
        # A running refresh commits fragments as it goes and reports them itself when it ends;
        # recording them here too would give each partition a second, "recovered" event.
        plan.report = {}
    if missing and not busy:
        batch = missing[: max_fragments_per_run()]  # the rest goes to the next run, after this one ends
        selection = [n for n in plan.features_missing if set(plan.missing[n]) & set(batch)]
        runs.append(
            dg.RunRequest(
                asset_selection=[dg.AssetKey(n) for n in selection],
                tags={**range_tags(batch), RUN_TAG: "1", "fashion/trigger": "fragment_sensor"},
            )
        )
    context.log.info(
        f"fragments +{len(plan.add)} -{len(plan.delete)}; recorded "
        f"{sum(len(v) for v in plan.report.values())} present partitions; missing "
        + ", ".join(f"{n}={len(plan.missing[n])}" for n in plan.features_missing)
    )
    return dg.SensorResult(
        run_requests=runs, dynamic_partitions_requests=requests, asset_events=materializations(plan)
    )


ingest_schedule = dg.ScheduleDefinition(
    name="ingest_schedule",
    job=ingest_job,
    cron_schedule=os.environ.get("FASHION_INGEST_CRON", "*/10 * * * *"),
    default_status=dg.DefaultScheduleStatus(default_status().value),
    description="Ingests new rows of the source folder every 10 minutes (FASHION_INGEST_CRON to change).",
)
