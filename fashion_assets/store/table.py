"""The products table: a LanceDB table whose feature columns are written one fragment at a time.

Every change is one Lance commit. Feature columns are declared up front (metadata only, all null) with
their version in the field metadata; a feature value for fragment F is a column-only data file attached
to F with a ``DataReplacement`` commit, so nothing else in the table is read or rewritten. Whether a
feature is materialized in F is read from the manifest: some data file of F holds the column's field id.
"""

from __future__ import annotations

import logging
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from lance import LanceOperation
from lance.commit import CommitConflictError
from lance.file import LanceFileWriter
from lance.fragment import DataFile, write_fragments

if TYPE_CHECKING:
    import lancedb

log = logging.getLogger(__name__)

VERSION_KEY = b"feature_version"
ERROR_SUFFIX = "_error"
ROW_ADDRESS = "_rowaddr"
COMMIT_ATTEMPTS = 20


class StoreError(Exception):
    """The table cannot be read or written as asked; the message says what and where."""


def error_column(feature: str) -> str:
    """The column holding, per row, why ``feature`` could not be computed (null when it was)."""
    return feature + ERROR_SUFFIX


class ConcurrentAppendError(StoreError):
    """Another writer appended rows between reading the table and committing: read again and retry."""


@dataclass(frozen=True)
class ColumnSpec:
    """A feature column as the store sees it: name, Arrow type and the version of the code that fills it."""

    name: str
    type: pa.DataType
    version: str

    def fields(self) -> list[pa.Field]:
        meta = {VERSION_KEY: self.version.encode()}
        return [
            pa.field(self.name, self.type, nullable=True, metadata=meta),
            pa.field(error_column(self.name), pa.string(), nullable=True, metadata=meta),
        ]


@dataclass(frozen=True)
class FragmentInfo:
    """One fragment: its id, the rows its files hold (deleted included) and the rows still live."""

    id: int
    physical_rows: int
    live_rows: int


@dataclass(frozen=True)
class ColumnFile:
    """A written, not yet committed, column file for one fragment (picklable: workers return it)."""

    fragment_id: int
    path: str
    field_ids: tuple[int, ...]
    file_version: str
    rows: int

    def data_file(self) -> DataFile:
        major, minor = (int(x) for x in self.file_version.split("."))
        return DataFile(self.path, list(self.field_ids), list(range(len(self.field_ids))), major, minor)


@dataclass(frozen=True)
class CommitResult:
    """What a group commit did: the new version (None when nothing was committed) and what it skipped."""

    version: int | None
    committed: tuple[int, ...]
    vanished: tuple[int, ...]
    stale: tuple[int, ...]


class ProductTable:
    """The LanceDB table ``table_name`` under ``db_uri`` (a local path or an object-store URI)."""

    def __init__(
        self,
        db_uri: str,
        table_name: str = "products",
        storage_options: Mapping[str, str] | None = None,
    ) -> None:
        self.db_uri = str(db_uri).rstrip("/")
        self.table_name = table_name
        self.storage_options = dict(storage_options or {})

    # ---- opening -------------------------------------------------------------------------------
    @property
    def uri(self) -> str:
        """The Lance dataset URI (LanceDB's layout: ``<db_uri>/<table>.lance``)."""
        return f"{self.db_uri}/{self.table_name}.lance"

    def exists(self) -> bool:
        try:
            self.dataset()
        except (ValueError, OSError, FileNotFoundError, StoreError):
            return False
        return True

    def dataset(self, version: int | None = None) -> lance.LanceDataset:
        """The table at its latest version (or at ``version``), freshly opened."""
        try:
            return lance.dataset(self.uri, version=version, storage_options=self.storage_options or None)
        except (ValueError, OSError) as exc:
            raise StoreError(f"cannot open table {self.uri}: {exc}") from exc

    def lancedb_table(self) -> lancedb.table.Table:
        """The same table through LanceDB (search and indexes)."""
        db = self._lancedb()
        return db.open_table(self.table_name)

    def _lancedb(self) -> lancedb.DBConnection:
        # Imported here: LanceDB (and its namespace client) costs about 0.9 s to import, and Ray workers,
        # which only read fragments and write column files through pylance, never need it.
        import lancedb

        return lancedb.connect(self.db_uri, storage_options=self.storage_options or None)

    def create(self, base_schema: pa.Schema) -> None:
        """Create the table with ``base_schema`` unless it exists (feature columns come from ``ensure_columns``)."""
        if self.exists():
            return
        try:
            db = self._lancedb()
            db.create_table(self.table_name, schema=base_schema, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create table {self.uri}: {exc}") from exc

    # ---- schema ---------------------------------------------------------------------------------
    def column_versions(self, ds: lance.LanceDataset | None = None) -> dict[str, str]:
        """Version recorded in each feature column's field metadata."""
        ds = ds or self.dataset()
        out: dict[str, str] = {}
        for field in ds.schema:
            meta = field.metadata or {}
            if VERSION_KEY in meta and not field.name.endswith(ERROR_SUFFIX):
                out[field.name] = meta[VERSION_KEY].decode()
        return out

    def ensure_columns(self, specs: Iterable[ColumnSpec]) -> list[str]:
        """Declare every feature column at its current version, once; returns what changed.

        A missing column is added (metadata only, all null). A column at another version is reset: dropped
        and added again, so every fragment reads as not materialized and nothing stale looks current.
        Nothing is committed when every column is already current.
        """
        specs = list(specs)
        changes: list[str] = []
        for attempt in range(COMMIT_ATTEMPTS):
            ds = self.dataset()
            current = self.column_versions(ds)
            names = set(ds.schema.names)
            todo = [s for s in specs if current.get(s.name) != s.version]
            if not todo:
                return changes
            try:
                stale = [n for s in todo if s.name in names for n in (s.name, error_column(s.name))]
                stale = [n for n in stale if n in names]
                if stale:
                    ds.drop_columns(stale)
                    ds = self.dataset()
                new_fields = [f for s in todo for f in s.fields()]
                ds.add_columns(new_fields)
            except (CommitConflictError, OSError) as exc:
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise StoreError(f"cannot declare feature columns on {self.uri}: {exc}") from exc
                _backoff(attempt)
                continue
            for s in todo:
                changes.append(
                    f"{s.name}: reset to version {s.version}"
                    if s.name in names
                    else f"{s.name}: added at version {s.version}"
                )
            specs = todo
        return changes

    def field_ids(self, names: Sequence[str], ds: lance.LanceDataset | None = None) -> tuple[int, ...]:
        ds = ds or self.dataset()
        schema = ds.lance_schema
        ids = []
        for name in names:
            field = schema.field(name)
            if field is None:
                raise StoreError(f"table {self.uri} has no column {name!r}")
            ids.append(field.id())
        return tuple(ids)

    # ---- fragments and status -------------------------------------------------------------------
    def fragments(self, ds: lance.LanceDataset | None = None) -> list[FragmentInfo]:
        """Every fragment of the table, in id order, with physical and live row counts."""
        ds = ds or self.dataset()
        out = []
        for frag in ds.get_fragments():
            meta = frag.metadata
            deleted = meta.deletion_file.num_deleted_rows if meta.deletion_file else 0
            out.append(FragmentInfo(frag.fragment_id, meta.physical_rows, meta.physical_rows - deleted))
        return sorted(out, key=lambda f: f.id)

    @property
    def is_local(self) -> bool:
        return "://" not in self.db_uri or self.db_uri.startswith("file://")

    def materialized(
        self, column: str, ds: lance.LanceDataset | None = None, verify: bool | None = None
    ) -> dict[int, bool]:
        """For every fragment: does one of its data files hold ``column`` (at the column's current version)?

        With ``verify`` the file must also exist in storage, so a data file lost on disk reads as missing
        (and a refresh writes it again). Default: verify on local disks, where a stat is cheap; on object
        stores it costs a request per fragment, so ask for it (``fashion-assets status --verify``).
        """
        ds = ds or self.dataset()
        if column not in ds.schema.names:
            return {f.fragment_id: False for f in ds.get_fragments()}
        (field_id,) = self.field_ids([column], ds)
        verify = self.is_local if verify is None else verify
        out = {}
        for frag in ds.get_fragments():
            files = [d.path for d in frag.metadata.files if field_id in d.fields]
            out[frag.fragment_id] = bool(files) and (not verify or self._files_exist(files))
        return out

    def _files_exist(self, names: Sequence[str]) -> bool:
        import pyarrow.fs as pafs

        base = f"{self.uri}/data"
        if self.is_local:
            return all(os.path.exists(os.path.join(base.removeprefix("file://"), n)) for n in names)
        try:
            fs, path = pafs.FileSystem.from_uri(base)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            log.warning("cannot verify files under %s (%s): trusting the manifest", base, exc)
            return True
        return all(i.type != pafs.FileType.NotFound for i in fs.get_file_info([f"{path}/{n}" for n in names]))

    def count_errors(
        self, column: str, ds: lance.LanceDataset | None = None, fragments: Sequence[int] | None = None
    ) -> int:
        """Live rows whose ``column`` failed (a reason recorded in its error column).

        A scan of the whole column; if a file is unreadable, counts the readable ones of ``fragments``.
        """
        ds = ds or self.dataset()
        name = error_column(column)
        if name not in ds.schema.names:
            return 0
        query = f"{name} IS NOT NULL"
        try:
            return ds.count_rows(filter=query)
        except OSError:
            if fragments is None:
                raise
            total = 0
            for f in fragments:
                try:
                    total += ds.get_fragment(f).count_rows(query)
                except OSError as exc:  # reported by status as missing when verified; not countable here
                    log.warning("cannot count %s failures in fragment %s: %s", column, f, exc)
            return total

    # ---- reading --------------------------------------------------------------------------------
    def read_fragment(
        self,
        fragment_id: int,
        columns: Sequence[str],
        version: int | None = None,
        batch_size: int = 1024,
    ) -> Iterator[pa.RecordBatch]:
        """Stream the live rows of one fragment: ``columns`` plus ``_rowaddr``."""
        ds = self.dataset(version)
        frag = ds.get_fragment(fragment_id)
        if frag is None:
            raise StoreError(f"fragment {fragment_id} is not in {self.uri} at version {ds.version}")
        yield from frag.to_batches(columns=list(columns), with_row_address=True, batch_size=batch_size)

    # ---- appending ------------------------------------------------------------------------------
    def append(
        self,
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
        fragment_rows: int,
        read_version: int | None = None,
    ) -> list[int]:
        """Append rows as new fragments of at most ``fragment_rows`` rows, in one commit.

        Only the given (base) columns are written: feature columns of the new fragments stay unwritten, so
        they read as not materialized. Returns the new fragment ids (empty when there were no rows).
        With ``read_version`` (the version the caller chose its rows at), raises ``ConcurrentAppendError``
        instead of committing when another append landed since: the caller re-reads and tries again.
        """
        reader = pa.RecordBatchReader.from_batches(schema, iter(batches))
        ds = self.dataset(read_version)
        try:
            frags = write_fragments(
                reader,
                self.dataset(),
                max_rows_per_file=fragment_rows,
                storage_options=self.storage_options or None,
            )
        except OSError as exc:
            raise StoreError(f"cannot write new rows to {self.uri}: {exc}") from exc
        if not frags:
            return []
        if read_version is not None:
            latest = self.dataset()
            before = {f.fragment_id for f in ds.get_fragments()}
            if any(f.fragment_id not in before for f in latest.get_fragments()):
                raise ConcurrentAppendError(
                    f"rows were appended to {self.uri} since version {read_version}; read again"
                )
        paths = {d.path for f in frags for d in f.files}
        new = lance.LanceDataset.commit(
            self.uri,
            LanceOperation.Append(frags),
            read_version=ds.version,
            storage_options=self.storage_options or None,
        )
        return sorted(
            f.fragment_id for f in new.get_fragments() if any(d.path in paths for d in f.metadata.files)
        )

    # ---- writing feature columns ----------------------------------------------------------------
    def write_column_file(
        self,
        fragment_id: int,
        spec: ColumnSpec,
        row_offsets: np.ndarray,
        values: pa.Array,
        errors: pa.Array,
        ds: lance.LanceDataset | None = None,
    ) -> ColumnFile:
        """Write one fragment's values of a feature (and its error column) as a column-only data file.

        ``row_offsets`` are the rows' offsets in the fragment (``_rowaddr & 0xFFFFFFFF``). The file holds
        exactly ``physical_rows`` values, each at its offset, deleted rows null: Lance does not check this
        and a short file would break every read of the column.
        """
        ds = ds or self.dataset()
        frag = ds.get_fragment(fragment_id)
        if frag is None:
            raise StoreError(f"fragment {fragment_id} is not in {self.uri} at version {ds.version}")
        physical = frag.metadata.physical_rows
        if len(row_offsets) != len(values) or len(values) != len(errors):
            raise ValueError("row_offsets, values and errors must have one entry per row")
        if len(row_offsets) and int(np.max(row_offsets)) >= physical:
            raise ValueError(f"row offset beyond the {physical} rows of fragment {fragment_id}")
        take = np.full(physical, -1, dtype=np.int64)
        take[np.asarray(row_offsets, dtype=np.int64)] = np.arange(len(row_offsets), dtype=np.int64)
        indices = pa.array(take, mask=take < 0)
        fields = spec.fields()
        schema = pa.schema([pa.field(f.name, f.type) for f in fields])
        columns = [pc.take(values.cast(spec.type), indices), pc.take(errors.cast(pa.string()), indices)]
        name = f"{uuid.uuid4().hex}.lance"
        file_version = ds.data_storage_version
        try:
            writer = LanceFileWriter(
                f"{self.uri}/data/{name}",
                schema,
                version=file_version,
                storage_options=self.storage_options or None,
            )
            writer.write_batch(pa.record_batch(columns, schema=schema))
            writer.close()
        except OSError as exc:
            raise StoreError(
                f"cannot write a column file for fragment {fragment_id} in {self.uri}: {exc}"
            ) from exc
        return ColumnFile(
            fragment_id, name, self.field_ids([f.name for f in fields], ds), file_version, physical
        )

    def commit(self, plan: Callable[[lance.LanceDataset], Any], what: str) -> lance.LanceDataset | None:
        """Commit the operation ``plan`` makes from the latest version, atomically.

        On a conflict with a concurrent commit, ``plan`` is called again on the new latest version and the
        commit retried (with backoff). Returns the committed dataset, or None when ``plan`` returns None
        (nothing left to commit).
        """
        for attempt in range(1, COMMIT_ATTEMPTS + 1):
            ds = self.dataset()
            op = plan(ds)
            if op is None:
                return None
            try:
                return lance.LanceDataset.commit(
                    self.uri, op, read_version=ds.version, storage_options=self.storage_options or None
                )
            except CommitConflictError as exc:
                log.info("commit conflict on %s (attempt %d): %s", self.uri, attempt, exc)
                _backoff(attempt)
            except OSError as exc:
                raise StoreError(f"cannot commit {what} to {self.uri}: {exc}") from exc
        raise StoreError(
            f"gave up committing {what} to {self.uri} after {COMMIT_ATTEMPTS} conflicting attempts"
        )

    def commit_column_files(self, files: Sequence[ColumnFile]) -> CommitResult:
        """Attach column files to their fragments in one ``DataReplacement`` commit, retried on conflict.

        A file whose fragment has vanished (compacted, deleted) or whose column was reset since it was
        written (another feature version) is skipped and reported, never committed.
        """
        ok: list[ColumnFile] = []
        vanished: list[int] = []
        stale: list[int] = []

        def plan(ds: lance.LanceDataset) -> Any:
            live = {f.fragment_id: f.metadata.physical_rows for f in ds.get_fragments()}
            current_ids = {f.id() for f in _walk(ds.lance_schema.fields())}
            ok.clear(), vanished.clear(), stale.clear()
            for cf in files:
                if live.get(cf.fragment_id) != cf.rows:
                    vanished.append(cf.fragment_id)
                elif not set(cf.field_ids) <= current_ids:
                    stale.append(cf.fragment_id)
                else:
                    ok.append(cf)
            if not ok:
                return None
            return LanceOperation.DataReplacement(
                [LanceOperation.DataReplacementGroup(cf.fragment_id, cf.data_file()) for cf in ok]
            )

        new = self.commit(plan, "column files")
        return CommitResult(
            None if new is None else new.version,
            tuple(cf.fragment_id for cf in ok) if new is not None else (),
            tuple(vanished),
            tuple(stale),
        )


def _walk(fields: Iterable) -> Iterator:
    for f in fields:
        yield f
        yield from _walk(f.children())


def _backoff(attempt: int) -> None:
    time.sleep(min(2.0, 0.02 * 2**attempt) * (0.5 + random.random()))
