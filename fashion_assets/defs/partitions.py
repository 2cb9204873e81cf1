"""The one partitioning of this project: a partition key is a Lance fragment id."""

from __future__ import annotations

import dagster as dg

FRAGMENTS = "fragments"

fragments = dg.DynamicPartitionsDefinition(name=FRAGMENTS)


def fragment_ids(keys: list[str] | tuple[str, ...]) -> list[int]:
    """Partition keys to fragment ids."""
    return sorted(int(k) for k in keys)
