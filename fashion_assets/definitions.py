"""The Dagster definitions: what `dagster dev -w workspace.yaml` and `dagster ... -m fashion_assets.definitions` load."""

from __future__ import annotations

import dagster as dg

from fashion_assets.defs.assets import build_feature_assets, products
from fashion_assets.defs.automation import fragment_sensor, ingest_schedule
from fashion_assets.defs.jobs import features_job, ingest_job
from fashion_assets.defs.resources import FashionTable, ray_resource

defs = dg.Definitions(
    assets=[products, *build_feature_assets()],
    jobs=[ingest_job, features_job],
    sensors=[fragment_sensor],
    schedules=[ingest_schedule],
    resources={"table": FashionTable(), "ray": ray_resource()},
)
