"""Ingest: append the source folder's new products to the table, and record every row it rejected.

Streams the catalogue (one batch of images in memory at a time), appends only ids the table does not hold
yet, as new fragments, in one commit. Rejected rows go to the ``ingest_rejects`` table beside the products,
where ``fashion-assets status`` and anyone with LanceDB can read them later.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lancedb
import pyarrow as pa

from fashion_assets.catalog.source import PRODUCT_SCHEMA, ReadStats, check_source, read_source
from fashion_assets.store.table import ColumnSpec, ConcurrentAppendError, ProductTable

log = logging.getLogger(__name__)

REJECTS_TABLE = "ingest_rejects"
APPEND_ATTEMPTS = 5
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


def existing_ids(table: ProductTable, version: int | None = None) -> set[int]:
    ds = table.dataset(version)
    return set(ds.to_table(columns=["id"]).column("id").to_pylist())


@contextlib.contextmanager
def ingest_lock(table: ProductTable) -> Iterator[None]:
    """One ingest at a time on a local table (an OS file lock). Object stores rely on the append check:
    ``ProductTable.append`` refuses to commit over another append that landed after the ids were read."""
    if not table.is_local:
        yield
        return
    root = Path(table.db_uri.removeprefix("file://"))
    root.mkdir(parents=True, exist_ok=True)
    with open(root / f".{table.table_name}.ingest.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


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
    with ingest_lock(table):
        for attempt in range(1, APPEND_ATTEMPTS + 1):
            version = table.dataset().version
            known = existing_ids(table, version)
            stats = ReadStats()
            batches = read_source(source_dir, batch_rows=batch_rows, skip_ids=known, stats=stats)
            try:
                new_fragments = table.append(batches, PRODUCT_SCHEMA, fragment_rows, read_version=version)
                break
            except ConcurrentAppendError:
                if attempt == APPEND_ATTEMPTS:
                    raise
                log.info("another ingest appended rows meanwhile: reading the table again")
        report = IngestReport(
            rows_added=stats.rows_accepted,
            fragments_added=[str(f) for f in new_fragments],
            rows_already_present=stats.rows_already_present,
            rows_repaired=stats.rows_repaired,
            rejected=[{"id": r.id, "reason": r.reason, "line": r.line} for r in stats.rejects],
        )
        if new_fragments:
            report.table_version = table.dataset().version
        if stats.rejects:  # under the lock too: read-what-is-recorded-then-add must not interleave
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
    # exist_ok: two ingests may both find no rejects table yet; whichever creates it, both then add to it.
    rejects_table = db.create_table(REJECTS_TABLE, schema=REJECTS_SCHEMA, exist_ok=True)
    # a rerun over the same folder meets the same bad rows: record each once
    seen = rejects_table.to_arrow().select(["id", "reason", "source"]).to_pylist()
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
    rejects_table.add(data)


def read_rejects(table: ProductTable) -> pa.Table:
    """Every rejected row recorded so far (empty when none)."""
    db = lancedb.connect(table.db_uri, storage_options=table.storage_options or None)
    if REJECTS_TABLE not in db.table_names():
        return REJECTS_SCHEMA.empty_table()
    return db.open_table(REJECTS_TABLE).to_arrow()
