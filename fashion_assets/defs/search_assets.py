"""The ``search_index`` asset (every search index, kept current incrementally), its job and its sensor."""

import dagster as dg
from pydantic import Field

from fashion_assets.defs.automation import IN_FLIGHT, RUN_TAG, default_status
from fashion_assets.defs.resources import FashionTable
from fashion_assets.indexes import PQ_MIN_VECTORS, IndexReport, index_status, update_indexes

SEARCH_GROUP = "search"
INDEX_RUN_TAG = "fashion/index"
INDEXED_FEATURES: tuple[str, ...] = ("caption", "image_embedding", "caption_embedding")


class SearchIndexConfig(dg.Config):
    """How to bring the indexes up to date."""

    rebuild: bool = Field(default=False, description="rebuild every index from scratch instead of folding")
    pq_min_vectors: int = Field(
        default=PQ_MIN_VECTORS, description="IVF_PQ from this many vectors (IVF_FLAT below)"
    )


def index_metadata(report: IndexReport) -> dict:
    """Indexed/unindexed rows, build seconds and a table of what each index got, for the UI."""
    lines = [
        "| index | action | type | partitions | vectors | indexed rows | unindexed rows | seconds | why |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report.results:
        lines.append(
            f"| {r.name} | {r.action} | {r.index_type or ''} | {r.num_partitions or ''} |"
            f" {'' if r.vectors is None else r.vectors} | {r.indexed_rows} | {r.unindexed_rows} |"
            f" {r.seconds:.2f} | {r.reason} |"
        )
    return {
        "dagster/row_count": report.rows,
        "indexed_rows": dg.MetadataValue.json(report.indexed_rows),
        "unindexed_rows": dg.MetadataValue.json(report.unindexed_rows),
        "unindexed_rows_total": sum(report.unindexed_rows.values()),
        "build_seconds": round(report.seconds, 3),
        "actions": dg.MetadataValue.json({r.name: r.action for r in report.results}),
        "indexes": dg.MetadataValue.md("\n".join(lines)),
        "table_version": report.table_version,
    }


@dg.asset(
    group_name=SEARCH_GROUP,
    kinds={"lancedb"},
    code_version="1",
    deps=[
        dg.AssetDep("products"),
        *[dg.AssetDep(name, partition_mapping=dg.AllPartitionMapping()) for name in INDEXED_FEATURES],
    ],
    tags={"fashion/index": "search"},
)
def search_index(
    context: dg.AssetExecutionContext, config: SearchIndexConfig, table: FashionTable
) -> dg.MaterializeResult:
    """Search indexes on the products table: full-text (BM25) on `description` and `caption`, cosine
    vector indexes on `image_embedding` and `caption_embedding` (IVF_PQ from 256 vectors, IVF_FLAT below).
    Rows added since the last build are folded into the existing indexes; an index is rebuilt when its
    structure no longer fits the data. Never holds an index of 0 rows. Rows not yet indexed are still
    searched, flat."""
    project = table.project()
    if not project.table.exists():
        raise dg.Failure(f"no table at {project.table.uri}: run the ingest job first")
    report = update_indexes(project.table, pq_min_vectors=config.pq_min_vectors, rebuild=config.rebuild)
    for r in report.results:
        context.log.info(
            f"{r.name}: {r.action} ({r.reason or 'up to date'}); {r.indexed_rows} rows indexed,"
            f" {r.unindexed_rows} not, {r.seconds:.2f} s"
        )
    return dg.MaterializeResult(metadata=index_metadata(report))


index_job = dg.define_asset_job(
    "index_job",
    selection=dg.AssetSelection.assets("search_index"),
    tags={INDEX_RUN_TAG: "1"},
    description="Bring the search indexes up to date (fold new rows in; rebuild where the structure no longer fits).",
)


def _busy(instance: dg.DagsterInstance) -> str | None:
    for tag in (RUN_TAG, INDEX_RUN_TAG):
        if instance.get_runs(filters=dg.RunsFilter(statuses=IN_FLIGHT, tags={tag: "1"}), limit=1):
            return f"a run tagged {tag}=1 is in flight"
    return None


@dg.sensor(job=index_job, minimum_interval_seconds=60, default_status=default_status())
def search_index_sensor(context: dg.SensorEvaluationContext, table: FashionTable) -> dg.SensorResult:
    """Requests an index update when some index is missing or has rows outside it, once no feature
    refresh or index run is in flight (one request per table version)."""
    project = table.project()
    if not project.table.exists():
        return dg.SensorResult(skip_reason="no table yet")
    ds = project.table.dataset()
    if ds.count_rows() == 0:
        return dg.SensorResult(skip_reason="the table is empty")
    behind = {}
    for name, s in index_status(project.table).items():
        if s["present"] and (s["unindexed_rows"] or 0) > 0:
            behind[name] = f"{s['unindexed_rows']} rows unindexed"
        elif not s["present"] and ds.count_rows(filter=f"{s['column']} IS NOT NULL") > 0:
            behind[name] = "missing"
    if not behind:
        return dg.SensorResult(skip_reason="every index is current")
    if busy := _busy(context.instance):
        return dg.SensorResult(skip_reason=busy)
    context.log.info("indexes behind: " + ", ".join(f"{n}: {why}" for n, why in behind.items()))
    request = dg.RunRequest(run_key=f"table-v{ds.version}", tags={"fashion/trigger": "search_index_sensor"})
    return dg.SensorResult(run_requests=[request])
