"""Run metadata that reads well in the Dagster UI: counts, throughput, a table of fragments, the schema."""

from __future__ import annotations

import dagster as dg

from fashion_assets.execution.driver import RunSummary
from fashion_assets.ingest import IngestReport
from fashion_assets.project import Project

MAX_REJECTS_IN_METADATA = 10_000  # all of them live in the ingest_rejects table


def _column_schema(project: Project) -> dg.TableSchema:
    schema = project.table.dataset().schema
    return dg.TableSchema(columns=[dg.TableColumn(f.name, str(f.type)) for f in schema])


def ingest_metadata(report: IngestReport, project: Project) -> dict:
    status = project.status()
    reasons: dict[str, int] = {}
    for r in report.rejected:
        key = r["reason"].split(":")[0]
        reasons[key] = reasons.get(key, 0) + 1
    return {
        "rows_added": report.rows_added,
        "fragments_added": dg.MetadataValue.json(report.fragments_added),
        "rows_already_present": report.rows_already_present,
        "rows_repaired": report.rows_repaired,
        "rows_rejected": len(report.rejected),
        "rejected_by_reason": dg.MetadataValue.json(reasons),
        "rejected": dg.MetadataValue.json(report.rejected[:MAX_REJECTS_IN_METADATA]),
        "dagster/row_count": status.rows,
        "fragments": len(status.fragments),
        "dagster/column_schema": _column_schema(project),
        "table_uri": dg.MetadataValue.path(project.table.uri),
    }


def feature_metadata(summary: RunSummary) -> dict:
    """Counts, throughput and a markdown table of fragments for one feature run."""
    lines = [
        "| fragment | rows computed | from checkpoint | failed | seconds | rows/s |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary.results:
        rate = r.rows_computed / r.seconds if r.seconds > 0 else 0.0
        lines.append(
            f"| {r.fragment_id} | {r.rows_computed} | {r.rows_resumed} | {r.rows_failed} |"
            f" {r.seconds:.2f} | {rate:.1f} |"
        )
    for f in summary.failures:
        lines.append(f"| {f.fragment_id} | failed: {f.error.splitlines()[0][:80]} | | | | |")
    d = summary.as_dict()
    # One result covers every partition of the run (single-run backfill), so counts are the run's.
    metadata = {
        "feature_version": summary.version,
        "run_fragments_requested": len(summary.requested),
        "fragments_computed": d["fragments_computed"],
        "fragments_skipped": d["fragments_skipped"],
        "fragments_failed": len(summary.failures),
        "rows_computed": summary.rows_computed,
        "rows_resumed_from_checkpoint": summary.rows_resumed,
        "rows_failed": summary.rows_failed,
        "seconds": round(summary.seconds, 3),
        "rows_per_second": round(summary.rows_per_second, 1),
        "fragments": dg.MetadataValue.md("\n".join(lines)),
        "errors_sample": dg.MetadataValue.json(d["errors"]),
        "table_versions": dg.MetadataValue.json(summary.table_versions),
    }
    if len(summary.requested) == 1:  # only then is a row count the partition's own
        metadata["dagster/row_count"] = sum(r.rows for r in summary.results)
    return metadata
