"""Resources: the products table (with its features) and Ray.

Ray comes from dagster-ray: ``LocalRay`` starts a Ray for the step and shuts it down after; with
``RAY_ADDRESS`` set it joins that cluster instead. For Kubernetes, swap in
``dagster_ray.kuberay.KubeRayInteractiveJob`` (see docs/scaling.md): the assets only ask for a ``RayResource``.
"""

from __future__ import annotations

import os

import dagster as dg
from dagster_ray import LocalRay
from pydantic import Field

from fashion_assets.execution.runners import RayRunner
from fashion_assets.models.profiles import ModelProfile
from fashion_assets.project import Project
from fashion_assets.settings import Settings


class FashionTable(dg.ConfigurableResource):
    """The LanceDB products table and its source folder. Unset fields are read from the ``FASHION_*``
    variables when a run starts (see fashion_assets/settings.py)."""

    db_uri: str | None = Field(default=None, description="table location (FASHION_DB_URI)")
    table_name: str | None = Field(default=None, description="table name (FASHION_TABLE)")
    source_dir: str | None = Field(default=None, description="catalogue folder (FASHION_SOURCE_DIR)")
    fragment_rows: int | None = Field(
        default=None, description="rows per new fragment (FASHION_FRAGMENT_ROWS)"
    )
    checkpoint_size: int = Field(default=512, description="rows computed between checkpoints")
    ray_workers: int = Field(default=0, description="model workers (0: one per GPU, else one)")

    def settings(self) -> Settings:
        env = Settings.from_env()
        return Settings(
            self.db_uri or env.db_uri,
            self.table_name or env.table_name,
            self.source_dir or env.source_dir,
            self.fragment_rows or env.fragment_rows,
        )

    def project(self) -> Project:
        # The model profile comes from FASHION_MODEL_PROFILE only, so it always agrees with the code
        # versions the asset definitions were built with.
        return Project(self.settings(), ModelProfile.from_env())

    def ray_runner(self) -> RayRunner:
        return RayRunner(num_workers=self.ray_workers or None)


def ray_resource() -> LocalRay:
    """A Ray for each model step: a private local one by default, the cluster at ``RAY_ADDRESS`` if set."""
    options: dict = {"include_dashboard": False, "log_to_driver": False}
    if not os.environ.get("RAY_ADDRESS"):
        options["num_cpus"] = os.cpu_count()
    return LocalRay(ray_init_options=options)
