"""Partial results of a fragment in flight, so a killed run loses at most one checkpoint of work.

A checkpoint is an Arrow IPC file of (row offset, value, error) for some rows of one fragment, kept under
``<db_uri>/_checkpoints/<table>/<feature>/<version digest>/<fragment>/``. It is written to a temporary
name and moved into place, so a reader never sees half a file. The driver deletes a fragment's
checkpoints once its column file is committed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.ipc as ipc

log = logging.getLogger(__name__)

OFFSET = "offset"
VALUE = "value"
ERROR = "error"


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" not in uri:
        return pafs.LocalFileSystem(), os.path.abspath(uri)
    return pafs.FileSystem.from_uri(uri)


@dataclass(frozen=True)
class CheckpointStore:
    """Checkpoints of one feature at one version in one table."""

    root: str
    table: str
    feature: str
    version: str

    @classmethod
    def beside(cls, db_uri: str, table: str, feature: str, version: str) -> CheckpointStore | None:
        """Checkpoints next to the table; None (with a warning) where pyarrow cannot reach that storage."""
        root = f"{str(db_uri).rstrip('/')}/_checkpoints"
        try:
            _filesystem(root)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError) as exc:
            log.warning("no checkpoints for %s: pyarrow cannot open %s (%s)", feature, root, exc)
            return None
        return cls(root, table, feature, version)

    def _dir(self, fragment_id: int) -> tuple[pafs.FileSystem, str]:
        digest = hashlib.sha1(self.version.encode()).hexdigest()[:12]
        fs, base = _filesystem(self.root)
        return fs, f"{base}/{self.table}/{self.feature}/{digest}/{fragment_id}"

    def load(self, fragment_id: int, value_type: pa.DataType) -> pa.Table | None:
        """Every checkpointed row of the fragment (columns offset, value, error), or None."""
        fs, path = self._dir(fragment_id)
        infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
        tables = []
        for info in sorted(infos, key=lambda i: i.path):
            if not info.path.endswith(".arrow"):
                continue
            try:
                with fs.open_input_file(info.path) as f:
                    tables.append(ipc.open_file(f).read_all())
            except (OSError, pa.ArrowInvalid):
                continue  # a damaged checkpoint only costs its rows being computed again
        if not tables:
            return None
        schema = self.schema(value_type)
        return pa.concat_tables([t.cast(schema) for t in tables if t.schema.names == schema.names])

    @staticmethod
    def schema(value_type: pa.DataType) -> pa.Schema:
        return pa.schema([(OFFSET, pa.uint32()), (VALUE, value_type), (ERROR, pa.string())])

    def save(self, fragment_id: int, offsets: pa.Array, values: pa.Array, errors: pa.Array) -> None:
        """Write one checkpoint atomically."""
        fs, path = self._dir(fragment_id)
        fs.create_dir(path, recursive=True)
        schema = self.schema(values.type)
        table = pa.table([offsets.cast(pa.uint32()), values, errors.cast(pa.string())], schema=schema)
        name = uuid.uuid4().hex
        tmp = f"{path}/.{name}.tmp"
        with fs.open_output_stream(tmp) as out, ipc.new_file(out, schema) as writer:
            writer.write_table(table)
        fs.move(tmp, f"{path}/{name}.arrow")

    def clear(self, fragment_id: int) -> None:
        fs, path = self._dir(fragment_id)
        try:
            fs.delete_dir(path)
        except (FileNotFoundError, OSError):
            pass
