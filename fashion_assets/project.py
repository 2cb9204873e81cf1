"""The project as one object: the table, the features over it, and what is missing where.

The CLI and the Dagster definitions both go through this, so they agree on versions and on status. Status is
read from the table's manifest every time, never remembered.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from fashion_assets.features.base import Feature
from fashion_assets.features.registry import FEATURE_NAMES, build_features, lineage_version
from fashion_assets.models.profiles import ModelProfile
from fashion_assets.settings import Settings
from fashion_assets.store.table import ColumnSpec, ProductTable


def column_spec(features: Mapping[str, Feature], name: str) -> ColumnSpec:
    """The column ``features[name]`` writes: its name, Arrow type and lineage version (its own version, its
    model's identity and the versions of the features it reads, all found in ``features``)."""
    return ColumnSpec(name, features[name].output_type, lineage_version(features, name))


@dataclass(frozen=True)
class FeatureStatus:
    """Per feature: which fragments hold it at its current version, which do not, how many rows failed."""

    version: str
    materialized: list[int]
    missing: list[int]
    failed_rows: int

    def as_dict(self) -> dict:
        return {
            "version": self.version,
            "materialized": len(self.materialized),
            "missing": len(self.missing),
            "missing_fragments": [str(f) for f in self.missing],
            "failed_rows": self.failed_rows,
        }


@dataclass(frozen=True)
class TableStatus:
    rows: int
    fragments: list[int]
    features: Mapping[str, FeatureStatus] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "rows": self.rows,
            "fragments": len(self.fragments),
            "features": {name: s.as_dict() for name, s in self.features.items()},
        }


class Project:
    """Settings + model profile -> the table, the features and their column specs."""

    def __init__(self, settings: Settings | None = None, profile: ModelProfile | None = None) -> None:
        self.settings = settings or Settings.from_env()
        self._profile = profile

    @cached_property
    def profile(self) -> ModelProfile:
        return self._profile or ModelProfile.from_env()

    @cached_property
    def table(self) -> ProductTable:
        return ProductTable(self.settings.db_uri, self.settings.table_name)

    @cached_property
    def features(self) -> dict[str, Feature]:
        return build_features(self.profile)

    def spec(self, name: str) -> ColumnSpec:
        return column_spec(self.features, name)

    def specs(self) -> list[ColumnSpec]:
        return [self.spec(name) for name in FEATURE_NAMES]

    def prepare(self) -> list[str]:
        """Create the table if needed and declare every feature column at its current version (idempotent)."""
        from fashion_assets.ingest import prepare_table

        return prepare_table(self.table, self.specs())

    def status(self, verify: bool | None = None) -> TableStatus:
        """Rows, fragments and, per feature, materialized/missing fragments and failed rows.

        ``verify`` also checks that each feature file exists in storage (default: on local disks).
        """
        if not self.table.exists():
            return TableStatus(
                0, [], {n: FeatureStatus(self.spec(n).version, [], [], 0) for n in FEATURE_NAMES}
            )
        ds = self.table.dataset()
        versions = self.table.column_versions(ds)
        fragments = [f.id for f in self.table.fragments(ds)]
        features = {}
        for name in FEATURE_NAMES:
            spec = self.spec(name)
            current = versions.get(name) == spec.version
            present = self.table.materialized(name, ds, verify) if current else {}
            features[name] = FeatureStatus(
                spec.version,
                [f for f in fragments if present.get(f)],
                [f for f in fragments if not present.get(f)],
                self.table.count_errors(name, ds, [f for f in fragments if present.get(f)]) if current else 0,
            )
        return TableStatus(ds.count_rows(), fragments, features)
