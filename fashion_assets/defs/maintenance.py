"""Table maintenance: the compaction job (and a schedule for it, stopped by default).

Compaction merges small fragments into fragments of the project's size. It never runs while a feature run
is in flight (one tagged ``fashion/refresh=1``, a ``features_job`` run, or any run selecting a feature
asset), only touches fragments that hold every feature (see ``fashion_assets/compaction.py``), and then
makes Dagster's picture true at once: partitions of the vanished fragments are deleted, those of the new
fragments added and recorded as materialized (the data is there), so no feature is recomputed.
"""

import os

import dagster as dg
from pydantic import Field

from fashion_assets.compaction import compact
from fashion_assets.defs.automation import IN_FLIGHT, RUN_TAG
from fashion_assets.defs.resources import FashionTable
from fashion_assets.defs.sync import apply_partitions, plan_sync
from fashion_assets.features.registry import FEATURE_NAMES

MAINTENANCE_TAG = "fashion/maintenance"
FEATURE_JOBS = {"features_job"}


class CompactionConfig(dg.Config):
    """What to compact."""

    target_rows_per_fragment: int = Field(
        default=0,
        description="rows per compacted fragment (0: the table's fragment size, FASHION_FRAGMENT_ROWS)",
    )
    dry_run: bool = Field(default=False, description="plan and report only")


def feature_runs_in_flight(instance: dg.DagsterInstance, exclude_run_id: str | None = None) -> list[str]:
    """Ids of queued or running runs that may write feature columns."""
    features = {dg.AssetKey(n) for n in FEATURE_NAMES}
    busy = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT)):
        if run.run_id == exclude_run_id:
            continue
        if (
            run.tags.get(RUN_TAG) == "1"
            or run.job_name in FEATURE_JOBS
            or bool(set(run.asset_selection or ()) & features)
        ):
            busy.append(run.run_id)
    return busy


@dg.op(tags={MAINTENANCE_TAG: "compaction"})
def compact_fragments(context: dg.OpExecutionContext, config: CompactionConfig, table: FashionTable) -> dict:
    """Compacts small, fully materialized fragments into fragments of the table's size, unless a feature
    run is in flight; then syncs the `fragments` partitions (new fragments recorded as materialized)."""
    busy = feature_runs_in_flight(context.instance, exclude_run_id=context.run_id)
    if busy:
        context.log.warning(f"not compacting: feature run(s) in flight: {', '.join(busy)}")
        context.add_output_metadata({"skipped": f"feature runs in flight: {busy}"})
        return {"skipped": "feature runs in flight", "runs": busy}
    project = table.project()
    if not project.table.exists():
        context.add_output_metadata({"skipped": "no table"})
        return {"skipped": "no table"}
    report = compact(project, config.target_rows_per_fragment or None, dry_run=config.dry_run)
    if report.skipped:
        context.log.info(f"not compacting: {report.skipped}")
    else:
        context.log.info(
            f"compacted {report.fragments_removed} fragments into {report.fragments_added}"
            f" ({report.fragments_before} -> {report.fragments_after}) in {report.seconds:.1f} s"
        )
    plan = plan_sync(project, context.instance)
    apply_partitions(plan, context.instance)
    recorded = sum(len(v) for v in plan.report.values())
    context.log.info(f"partitions +{len(plan.add)} -{len(plan.delete)}; {recorded} recorded as materialized")
    context.add_output_metadata(
        {
            "skipped": report.skipped or "",
            "fragments_before": report.fragments_before,
            "fragments_after": report.fragments_after,
            "fragments_removed": report.fragments_removed,
            "fragments_added": report.fragments_added,
            "excluded_fragments": len(report.excluded),
            "table_version": report.table_version_after,
            "partitions_added": len(plan.add),
            "partitions_deleted": len(plan.delete),
            "partitions_recorded_materialized": recorded,
            "seconds": round(report.seconds, 3),
        }
    )
    return report.as_dict()


@dg.job(tags={MAINTENANCE_TAG: "compaction"})
def compaction_job() -> None:
    """Compact small fragments whose features are all materialized (never while a feature run writes);
    the new fragments are recorded as materialized partitions, nothing is recomputed."""
    compact_fragments()


compaction_schedule = dg.ScheduleDefinition(
    name="compaction_schedule",
    job=compaction_job,
    cron_schedule=os.environ.get("FASHION_COMPACTION_CRON", "0 3 * * *"),
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Compacts small fragments nightly at 03:00 (FASHION_COMPACTION_CRON); stopped by default.",
)
