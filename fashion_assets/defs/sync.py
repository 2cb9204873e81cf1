"""Keep Dagster's picture equal to the table: partitions = fragments, materialized = data present.

Used by the sensor (through the daemon) and by ``fashion-assets refresh`` (directly on the instance).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dagster as dg

from fashion_assets.defs.partitions import FRAGMENTS
from fashion_assets.features.registry import FEATURE_NAMES
from fashion_assets.project import Project


@dataclass
class SyncPlan:
    """What to change in Dagster, and what is left to compute."""

    add: list[str] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)
    report: dict[str, list[str]] = field(default_factory=dict)  # data present, Dagster does not know
    missing: dict[str, list[str]] = field(default_factory=dict)  # data absent: to compute

    @property
    def features_missing(self) -> list[str]:
        return [name for name in FEATURE_NAMES if self.missing.get(name)]


def plan_sync(project: Project, instance: dg.DagsterInstance) -> SyncPlan:
    """Compare the table's fragments and feature columns with the instance's partitions and materializations."""
    status = project.status()
    keys = [str(f) for f in status.fragments]
    known = set(instance.get_dynamic_partitions(FRAGMENTS))
    plan = SyncPlan(
        add=[k for k in keys if k not in known],
        delete=sorted(known - set(keys), key=int),
    )
    for name in FEATURE_NAMES:
        fs = status.features[name]
        recorded = instance.get_materialized_partitions(dg.AssetKey(name))
        plan.report[name] = [str(f) for f in fs.materialized if str(f) not in recorded]
        plan.missing[name] = [str(f) for f in fs.missing]
    return plan


def apply_partitions(plan: SyncPlan, instance: dg.DagsterInstance) -> None:
    """Add and delete partitions, and record present data as materialized (for callers outside a sensor)."""
    if plan.add:
        instance.add_dynamic_partitions(FRAGMENTS, plan.add)
    for key in plan.delete:
        instance.delete_dynamic_partition(FRAGMENTS, key)
    for event in materializations(plan):
        instance.report_runless_asset_event(event)


def materializations(plan: SyncPlan) -> list[dg.AssetMaterialization]:
    return [
        dg.AssetMaterialization(
            asset_key=name,
            partition=key,
            description="data found in the table (e.g. after compaction): recorded, not recomputed",
            metadata={"recovered": True},
        )
        for name, keys in plan.report.items()
        for key in keys
    ]


def range_tags(keys: list[str]) -> dict[str, str]:
    """Run tags selecting the partition range from the first to the last missing fragment.

    Fragments in between that are already materialized are skipped by the asset, not recomputed.
    """
    ordered = sorted(keys, key=int)
    return {
        "dagster/asset_partition_range_start": ordered[0],
        "dagster/asset_partition_range_end": ordered[-1],
    }
