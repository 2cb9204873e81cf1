"""The Dagster definitions: what `dagster dev -w workspace.yaml` and `dagster ... -m fashion_assets.definitions` load."""

from __future__ import annotations

import dagster as dg

from fashion_assets.defs.assets import build_feature_assets, products
from fashion_assets.defs.automation import fragment_sensor, ingest_schedule
from fashion_assets.defs.checks import build_checks
from fashion_assets.defs.jobs import features_job, ingest_job
from fashion_assets.defs.maintenance import compaction_job, compaction_schedule
from fashion_assets.defs.resources import FashionTable, ray_resource
from fashion_assets.defs.search_assets import index_job, search_index, search_index_sensor

defs = dg.Definitions(
    assets=[products, *build_feature_assets(), search_index],
    asset_checks=build_checks(),
    jobs=[ingest_job, features_job, index_job, compaction_job],
    sensors=[fragment_sensor, search_index_sensor],
    schedules=[ingest_schedule, compaction_schedule],
    resources={"table": FashionTable(), "ray": ray_resource()},
    # One process per run, steps in dependency order: torch is imported once and one Ray serves every
    # model step of the run; Ray, not Dagster, gives the parallelism.
    executor=dg.in_process_executor,
)
