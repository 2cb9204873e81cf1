"""Assets: ``products`` (ingest) and one asset per feature, partitioned by Lance fragment.

Thin by design: map partition keys to fragment ids, call the execution layer, report what happened.
"""

from collections.abc import Sequence

import dagster as dg
from dagster_ray import RayResource

from fashion_assets.defs.partitions import FRAGMENTS, fragment_ids, fragments
from fashion_assets.defs.reporting import feature_metadata, ingest_metadata
from fashion_assets.defs.resources import FashionTable
from fashion_assets.execution.driver import format_progress, run_feature
from fashion_assets.execution.runners import InProcessRunner
from fashion_assets.features.base import Feature
from fashion_assets.features.registry import FEATURE_NAMES, build_features, upstream_features
from fashion_assets.ingest import ingest
from fashion_assets.models.profiles import ModelProfile
from fashion_assets.project import Project

GROUP = "fashion"
# Fragments never change their rows (appends make new fragments; deletes and updates are handled by the
# sensor), so a new ingest must not make existing feature partitions look stale.
PRODUCTS_DATA_VERSION = dg.DataVersion("append-only-fragments-v1")


@dg.asset(group_name=GROUP, kinds={"lancedb"}, code_version="1")
def products(context: dg.AssetExecutionContext, table: FashionTable) -> dg.MaterializeResult:
    """The product catalogue as a LanceDB table: new rows of the source folder (Kaggle layout:
    styles.csv + images/<id>.jpg) appended as new Lance fragments, each registered as a partition of the
    feature assets. Rows already in the table are skipped; rejected rows are recorded with their reason."""
    project = table.project()
    settings = table.settings()
    report = ingest(project.table, settings.source_dir, project.specs(), settings.fragment_rows)
    if report.fragments_added:
        context.instance.add_dynamic_partitions(FRAGMENTS, report.fragments_added)
    for reject in report.rejected[:20]:
        context.log.warning(f"rejected row id={reject['id']!r} (line {reject['line']}): {reject['reason']}")
    context.log.info(
        f"ingest: {report.rows_added} rows in {len(report.fragments_added)} new fragments,"
        f" {report.rows_already_present} already present, {len(report.rejected)} rejected"
    )
    return dg.MaterializeResult(metadata=ingest_metadata(report, project), data_version=PRODUCTS_DATA_VERSION)


def feature_asset(name: str, feature: Feature, deps: Sequence[str]) -> dg.AssetsDefinition:
    """The asset computing ``feature`` for the fragments of its partitions, only where it is missing."""
    is_model = feature.uses_model
    resource_keys = {"table", "ray"} if is_model else {"table"}

    @dg.asset(
        name=name,
        group_name=GROUP,
        description=feature.description or feature.__doc__,
        partitions_def=fragments,
        deps=["products", *deps],
        code_version=feature.version,
        backfill_policy=dg.BackfillPolicy.single_run(),
        pool="gpu" if is_model else None,
        kinds={"ray", "pytorch"} if is_model else {"python"},
        required_resource_keys=resource_keys,
        tags={"fashion/feature": name},
    )
    def _asset(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        table: FashionTable = context.resources.table
        project = table.project()
        project.prepare()
        spec = project.spec(name)
        wanted = fragment_ids(context.partition_keys)
        blocked = _blocked_by_upstream(project, name, wanted)
        if blocked:
            context.log.warning(f"{name}: skipping fragments whose inputs are not materialized: {blocked}")
        todo = [f for f in wanted if f not in blocked]
        if is_model:
            ray: RayResource = context.resources.ray  # started (or joined) by dagster-ray for this step
            context.log.info(f"{name}: Ray at {ray.display_name}")
            runner = table.ray_runner()
        else:
            runner = InProcessRunner()  # milliseconds of compute: Ray's start-up would dominate
        summary = run_feature(
            project.table,
            project.features[name],
            spec,
            todo,
            runner=runner,
            checkpoint_size=table.checkpoint_size,
            on_progress=lambda s, o, left: context.log.info(format_progress(s, o, left)),
        )
        metadata = feature_metadata(summary)
        problems = [f"{f.fragment_id}: {f.error.splitlines()[0]}" for f in summary.failures]
        problems += [f"{f}: upstream feature not materialized" for f in blocked]
        if problems:
            for fid in summary.committed:  # keep the truth for what did land before failing the run
                context.instance.report_runless_asset_event(
                    dg.AssetMaterialization(asset_key=name, partition=str(fid), metadata={"recovered": True})
                )
            raise dg.Failure(
                description=f"{name}: {len(problems)} fragment(s) not computed: " + "; ".join(problems[:10]),
                metadata=metadata,
            )
        return dg.MaterializeResult(metadata=metadata)

    return _asset


def _blocked_by_upstream(project: Project, name: str, wanted: list[int]) -> list[int]:
    ds = project.table.dataset()
    blocked: set[int] = set()
    for dep in upstream_features(project.features, name):
        present = project.table.materialized(dep, ds)
        blocked |= {f for f in wanted if not present.get(f, False)}
    return sorted(blocked)


def build_feature_assets(profile: ModelProfile | None = None) -> list[dg.AssetsDefinition]:
    features = build_features(profile)
    return [feature_asset(n, features[n], upstream_features(features, n)) for n in FEATURE_NAMES]
