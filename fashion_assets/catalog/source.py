"""Stream a source folder in the "Fashion Product Images (Small)" layout into Arrow record batches.

The folder holds ``styles.csv`` (header ``id,gender,...,productDisplayName``) and ``images/<id>.jpg``.
``read_source`` reads the CSV line by line and loads an image only when its row joins the current batch, so
at most one batch of images is held in memory. Bad rows become ``Reject`` records in a ``ReadStats`` instead
of failing the read; a bad folder raises ``SourceError`` before anything is yielded.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import pyarrow as pa

CSV_NAME = "styles.csv"
IMAGES_DIR = "images"
EXPECTED_HEADER: tuple[str, ...] = (
    "id",
    "gender",
    "masterCategory",
    "subCategory",
    "articleType",
    "baseColour",
    "season",
    "year",
    "usage",
    "productDisplayName",
)
N_FIELDS = len(EXPECTED_HEADER)

PRODUCT_SCHEMA: pa.Schema = pa.schema(
    [
        pa.field("id", pa.int64(), nullable=False),
        pa.field("description", pa.string()),
        pa.field("image_bytes", pa.binary()),
        pa.field("gender", pa.string()),
        pa.field("master_category", pa.string()),
        pa.field("sub_category", pa.string()),
        pa.field("article_type", pa.string()),
        pa.field("base_colour", pa.string()),
        pa.field("season", pa.string()),
        pa.field("year", pa.int32()),
        pa.field("usage", pa.string()),
    ]
)

REASON_NON_NUMERIC_ID = "non-numeric id"
REASON_EMPTY_NAME = "empty name"
REASON_MISSING_IMAGE = "missing image file"
REASON_UNREADABLE_IMAGE = "unreadable image file"
REASON_DUPLICATE_ID = "duplicate id"
REASON_MALFORMED_PREFIX = "malformed line"

_DIGITS = re.compile(r"[0-9]+")
_INT = re.compile(r"[+-]?[0-9]+")
_INT32_MAX = 2**31 - 1
_INT64_MAX = 2**63 - 1

SkipIds = Callable[[int], bool] | Container[int]


class SourceError(Exception):
    """The source folder cannot be read at all (missing folder or CSV, wrong header)."""


@dataclass(frozen=True)
class Reject:
    """A CSV row left out: its id as written (may be empty or not a number), why, and its line (1 = header)."""

    id: str
    reason: str
    line: int


@dataclass
class ReadStats:
    """Counts for one ``read_source`` pass, updated as rows are read.

    ``rows_read`` counts every non-blank data line and equals
    ``rows_accepted + rows_already_present + len(rejects)``. ``rows_repaired`` counts accepted rows whose
    name held unquoted commas (more than 10 fields) and was rejoined; no data is lost on those.
    """

    rows_read: int = 0
    rows_accepted: int = 0
    rows_already_present: int = 0
    rows_repaired: int = 0
    image_bytes_read: int = 0
    batches: int = 0
    rejects: list[Reject] = field(default_factory=list)

    @property
    def rows_rejected(self) -> int:
        """How many rows were rejected."""
        return len(self.rejects)

    def reject_counts(self) -> dict[str, int]:
        """Rejects per reason, in order of first appearance."""
        counts: dict[str, int] = {}
        for reject in self.rejects:
            counts[reject.reason] = counts.get(reject.reason, 0) + 1
        return counts


def malformed_reason(n_fields: int) -> str:
    """The reject reason for a line with too few fields."""
    return f"{REASON_MALFORMED_PREFIX}: {n_fields} fields, expected {N_FIELDS}"


def _open_csv(path: Path) -> TextIO:
    # utf-8-sig drops a byte-order mark if there is one; undecodable bytes become U+FFFD and the row is kept.
    return path.open("r", encoding="utf-8-sig", errors="replace", newline="")


def check_source(source_dir: Path | str) -> Path:
    """Check that ``source_dir`` holds a ``styles.csv`` with the expected header and return its path.

    Raises ``SourceError`` naming the path when the folder or CSV is missing, the CSV is empty or
    unreadable, or the header differs from the expected one (both are shown).
    """
    folder = Path(source_dir)
    if not folder.exists():
        raise SourceError(f"source folder {folder} does not exist")
    if not folder.is_dir():
        raise SourceError(f"source path {folder} is not a folder")
    csv_path = folder / CSV_NAME
    if not csv_path.is_file():
        raise SourceError(f"source folder {folder} has no {CSV_NAME} (looked for {csv_path})")
    try:
        with _open_csv(csv_path) as handle:
            header = next(csv.reader(handle), None)
    except (OSError, csv.Error) as exc:
        raise SourceError(f"cannot read the header of {csv_path}: {exc}") from exc
    if header is None:
        raise SourceError(f"{csv_path} is empty: expected the header {','.join(EXPECTED_HEADER)}")
    found = tuple(name.strip() for name in header)
    if found != EXPECTED_HEADER:
        expected, got = ",".join(EXPECTED_HEADER), ",".join(found)
        raise SourceError(f"{csv_path} has the wrong header: expected {expected!r}, found {got!r}")
    return csv_path


def _skip_test(skip_ids: SkipIds | None) -> Callable[[int], bool]:
    if skip_ids is None:
        return lambda _id: False
    if callable(skip_ids):
        return skip_ids
    container = skip_ids
    return lambda row_id: row_id in container


def _parse_year(text: str) -> int | None:
    if not _INT.fullmatch(text):
        return None
    year = int(text)
    return year if -_INT32_MAX <= year <= _INT32_MAX else None


class _BatchBuilder:
    """Column lists for the batch being filled."""

    def __init__(self) -> None:
        self.columns: list[list[object]] = [[] for _ in PRODUCT_SCHEMA]

    def __len__(self) -> int:
        return len(self.columns[0])

    def add(self, row_id: int, name: str, image: bytes, fields: list[str]) -> None:
        values = (
            row_id,
            name,
            image,
            *(value or None for value in fields[1:7]),
            _parse_year(fields[7]),
            fields[8] or None,
        )
        for column, value in zip(self.columns, values, strict=True):
            column.append(value)

    def flush(self) -> pa.RecordBatch:
        batch = pa.RecordBatch.from_arrays(
            [pa.array(column, type=f.type) for column, f in zip(self.columns, PRODUCT_SCHEMA, strict=True)],
            schema=PRODUCT_SCHEMA,
        )
        self.columns = [[] for _ in PRODUCT_SCHEMA]
        return batch


def read_source(
    source_dir: Path | str,
    batch_rows: int = 1024,
    skip_ids: SkipIds | None = None,
    stats: ReadStats | None = None,
) -> Iterator[pa.RecordBatch]:
    """Stream the rows of ``source_dir`` as ``PRODUCT_SCHEMA`` record batches of at most ``batch_rows`` rows.

    The folder is checked when this is called (``SourceError``), before any batch is produced.
    ``skip_ids`` (a set or a predicate) names ids already stored: those rows are skipped without loading
    their image and counted in ``stats.rows_already_present``. Rows are checked in this order: field count
    (more than 10 fields: the name's commas are rejoined), id, duplicate id within the file (the first
    occurrence wins, even if it is itself rejected or skipped), ``skip_ids``, empty name, image file.
    Empty categorical fields and unparseable years become null. Images are not decoded here.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    csv_path = check_source(source_dir)
    return _read_rows(csv_path, batch_rows, _skip_test(skip_ids), stats if stats is not None else ReadStats())


def _read_rows(
    csv_path: Path, batch_rows: int, skip: Callable[[int], bool], stats: ReadStats
) -> Iterator[pa.RecordBatch]:
    images_dir = csv_path.parent / IMAGES_DIR
    seen: set[int] = set()
    builder = _BatchBuilder()

    def reject(row_id: str, reason: str, line: int) -> None:
        stats.rejects.append(Reject(id=row_id, reason=reason, line=line))

    with _open_csv(csv_path) as handle:
        reader = csv.reader(handle)
        next(reader, None)  # the header, checked by check_source
        while True:
            line = reader.line_num + 1
            try:
                raw = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                stats.rows_read += 1
                reject("", f"{REASON_MALFORMED_PREFIX}: unparseable ({exc})", line)
                continue
            if not any(value.strip() for value in raw):
                continue  # a blank line is not a row
            stats.rows_read += 1
            id_text = raw[0].strip()
            if len(raw) < N_FIELDS:
                reject(id_text, malformed_reason(len(raw)), line)
                continue
            repaired = len(raw) > N_FIELDS
            fields = [value.strip() for value in raw[: N_FIELDS - 1]]
            fields.append(",".join(raw[N_FIELDS - 1 :]).strip())

            if len(id_text) > 19 or not _DIGITS.fullmatch(id_text) or not 0 < int(id_text) <= _INT64_MAX:
                reject(id_text, REASON_NON_NUMERIC_ID, line)
                continue
            row_id = int(id_text)
            if row_id in seen:
                reject(id_text, REASON_DUPLICATE_ID, line)
                continue
            seen.add(row_id)
            if skip(row_id):
                stats.rows_already_present += 1
                continue
            name = fields[N_FIELDS - 1]
            if not name:
                reject(id_text, REASON_EMPTY_NAME, line)
                continue
            image_path = images_dir / f"{row_id}.jpg"  # built from the validated integer only
            try:
                image = image_path.read_bytes()
            except FileNotFoundError:
                reject(id_text, REASON_MISSING_IMAGE, line)
                continue
            except OSError as exc:
                reject(id_text, f"{REASON_UNREADABLE_IMAGE}: {exc.strerror or exc}", line)
                continue

            builder.add(row_id, name, image, fields)
            stats.rows_accepted += 1
            stats.rows_repaired += int(repaired)
            stats.image_bytes_read += len(image)
            if len(builder) >= batch_rows:
                stats.batches += 1
                yield builder.flush()
    if len(builder):
        stats.batches += 1
        yield builder.flush()
