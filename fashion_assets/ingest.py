"""Ingest: append the source folder's new products to the table, and record every row it rejected.

Streams the catalogue (one batch of images in memory at a time), appends only ids the table does not hold
yet, as new fragments, in one commit. Rejected rows go to the ``ingest_rejects`` table beside the products,
where ``fashion-assets status`` and anyone with LanceDB can read them later.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lancedb
import pyarrow as pa

from fashion_assets.catalog.source import PRODUCT_SCHEMA, ReadStats, check_source, read_source
from fashion_assets.store.table import ColumnSpec, ProductTable

log = logging.getLogger(__name__)

REJECTS_TABLE = "ingest_rejects"
REJECTS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("reason", pa.string()),
        ("line", pa.int64()),
        ("source", pa.string()),
        ("ingested_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class IngestReport:
    """What an ingest did."""

    rows_added: int = 0
    fragments_added: list[str] = field(default_factory=list)
    rows_already_present: int = 0
    rows_repaired: int = 0
    rejected: list[dict] = field(default_factory=list)
    table_version: int | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def prepare_table(table: ProductTable, specs: list[ColumnSpec]) -> list[str]:
    """Create the table if needed and declare every feature column at its current version."""
    table.create(PRODUCT_SCHEMA)
    return table.ensure_columns(specs)


def existing_ids(table: ProductTable) -> set[int]:
    ds = table.dataset()
    return set(ds.to_table(columns=["id"]).column("id").to_pylist())


def ingest(
    table: ProductTable,
    source_dir: str | Path,
    specs: list[ColumnSpec],
    fragment_rows: int,
    batch_rows: int = 512,
) -> IngestReport:
    """Append the new rows of ``source_dir`` as fragments of at most ``fragment_rows`` rows.

    A missing folder, a missing CSV or a wrong header raises ``SourceError`` before anything is written.
    """
    check_source(source_dir)
    prepare_table(table, specs)
    known = existing_ids(table)
    stats = ReadStats()
    batches = read_source(source_dir, batch_rows=batch_rows, skip_ids=known, stats=stats)
    new_fragments = table.append(batches, PRODUCT_SCHEMA, fragment_rows)
    report = IngestReport(
        rows_added=stats.rows_accepted,
        fragments_added=[str(f) for f in new_fragments],
        rows_already_present=stats.rows_already_present,
        rows_repaired=stats.rows_repaired,
        rejected=[{"id": r.id, "reason": r.reason, "line": r.line} for r in stats.rejects],
    )
    if new_fragments:
        report.table_version = table.dataset().version
    if stats.rejects:
        record_rejects(table, str(source_dir), report.rejected)
    log.info(
        "ingest: %d rows added in %d fragments, %d already present, %d rejected",
        report.rows_added,
        len(new_fragments),
        report.rows_already_present,
        len(report.rejected),
    )
    return report


def record_rejects(table: ProductTable, source: str, rejects: list[dict]) -> None:
    """Append rejected rows, with why, to the ``ingest_rejects`` table beside the products."""
    db = lancedb.connect(table.db_uri, storage_options=table.storage_options or None)
    exists = REJECTS_TABLE in db.table_names()
    if exists:  # a rerun over the same folder meets the same bad rows: record each once
        seen = db.open_table(REJECTS_TABLE).to_arrow().select(["id", "reason", "source"]).to_pylist()
        known = {(r["id"], r["reason"], r["source"]) for r in seen}
        rejects = [r for r in rejects if (r["id"], r["reason"], source) not in known]
        if not rejects:
            return
    now = dt.datetime.now(dt.UTC)
    data = pa.table(
        {
            "id": [r["id"] for r in rejects],
            "reason": [r["reason"] for r in rejects],
            "line": [r["line"] for r in rejects],
            "source": [source] * len(rejects),
            "ingested_at": [now] * len(rejects),
        },
        schema=REJECTS_SCHEMA,
    )
    if exists:
        db.open_table(REJECTS_TABLE).add(data)
    else:
        db.create_table(REJECTS_TABLE, data=data)


def read_rejects(table: ProductTable) -> pa.Table:
    """Every rejected row recorded so far (empty when none)."""
    db = lancedb.connect(table.db_uri, storage_options=table.storage_options or None)
    if REJECTS_TABLE not in db.table_names():
        return REJECTS_SCHEMA.empty_table()
    return db.open_table(REJECTS_TABLE).to_arrow()
