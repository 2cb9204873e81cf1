"""Where things live, from the environment, with the defaults a fresh checkout uses."""

from __future__ import annotations

import os
from dataclasses import dataclass

DEFAULT_DB_URI = "data/lancedb"
DEFAULT_TABLE = "products"
DEFAULT_SOURCE_DIR = "data/source"
# 4096 rows a fragment: on a GPU a model feature finishes a fragment in seconds, on a laptop CPU in a few
# minutes (ViT-B-32 at ~14 images/s), so a partition is a unit of work worth scheduling and retrying;
# and 100M rows stay at ~25k partitions, well under Dagster's comfortable 100k per asset.
DEFAULT_FRAGMENT_ROWS = 4096


@dataclass(frozen=True)
class Settings:
    """Locations and sizes, read once from ``FASHION_*`` environment variables."""

    db_uri: str = DEFAULT_DB_URI
    table_name: str = DEFAULT_TABLE
    source_dir: str = DEFAULT_SOURCE_DIR
    fragment_rows: int = DEFAULT_FRAGMENT_ROWS

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            db_uri=os.environ.get("FASHION_DB_URI", DEFAULT_DB_URI),
            table_name=os.environ.get("FASHION_TABLE", DEFAULT_TABLE),
            source_dir=os.environ.get("FASHION_SOURCE_DIR", DEFAULT_SOURCE_DIR),
            fragment_rows=int(os.environ.get("FASHION_FRAGMENT_ROWS", DEFAULT_FRAGMENT_ROWS)),
        )
