"""What a feature is: a named, versioned, batched function from Arrow input columns to one Arrow column.

Features know nothing of Dagster, Ray or Lance. The execution layer feeds them record batches holding
their ``inputs`` columns (plus ``id``, for error records) and writes what they return.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa


@dataclass(frozen=True)
class RowError:
    """One row a feature could not compute: its position in the batch and why."""

    index: int
    reason: str


@dataclass
class FeatureOutput:
    """A feature's answer for one batch: one value per input row (null where it failed) and the failures."""

    values: pa.Array
    errors: list[RowError] = field(default_factory=list)


class Feature(abc.ABC):
    """A column computed from other columns of the same row.

    Subclasses set ``name`` (the column), ``version`` (bump it when the output would change: the column is
    then reset and recomputed), ``inputs`` (columns read, which may be other features), ``output_type`` and
    ``description`` (shown in the UI). ``uses_model`` marks features worth a Ray worker (and a GPU).
    A null input yields a null output *without* an error record: the failure belongs to whoever made the null.
    """

    name: str
    version: str
    inputs: tuple[str, ...]
    output_type: pa.DataType
    description: str = ""
    uses_model: bool = False
    batch_size: int = 1024

    def setup(self) -> None:  # noqa: B027 - optional hook
        """Load whatever the feature holds (a model). Called once per worker before the first batch."""

    @abc.abstractmethod
    def compute(self, batch: pa.RecordBatch) -> FeatureOutput:
        """Compute the output for every row of ``batch`` (which holds at least ``self.inputs``)."""

    def prepare(self, batch: pa.RecordBatch) -> Any:
        """CPU work that can run while the previous batch is in the model (decoding, preprocessing).

        The runner calls ``prepare`` for batch i+1 in a helper thread during ``infer`` of batch i. The
        default does nothing and leaves all the work to ``compute``.
        """
        return batch

    def infer(self, prepared: Any) -> FeatureOutput:
        """The rest of the work on what ``prepare`` returned (default: ``compute``)."""
        return self.compute(prepared)

    def checked(self, out: FeatureOutput, rows: int) -> FeatureOutput:
        """``out`` with its length checked and its values cast to ``output_type``."""
        if len(out.values) != rows:
            raise ValueError(f"feature {self.name!r} returned {len(out.values)} values for {rows} rows")
        if out.values.type != self.output_type:
            out.values = out.values.cast(self.output_type)
        return out

    def __call__(self, batch: pa.RecordBatch) -> FeatureOutput:
        return self.checked(self.infer(self.prepare(batch)), batch.num_rows)

    def field(self, lineage_version: str) -> pa.Field:
        """The table column this feature fills, carrying its version in the field metadata."""
        return pa.field(
            self.name,
            self.output_type,
            nullable=True,
            metadata={b"feature_version": lineage_version.encode()},
        )
