"""Jobs for the CLI and schedules: `dagster job execute -j ingest_job`, `-j features_job`."""

from __future__ import annotations

import dagster as dg

from fashion_assets.defs.partitions import fragments

ingest_job = dg.define_asset_job(
    "ingest_job",
    selection=dg.AssetSelection.assets("products"),
    description="Append the source folder's new rows to the products table as new fragments.",
)

features_job = dg.define_asset_job(
    "features_job",
    selection=dg.AssetSelection.groups("fashion") - dg.AssetSelection.assets("products"),
    partitions_def=fragments,
    description="Compute every feature for the selected fragments (skips fragments that already have it).",
)
