"""Refresh and ingest as Dagster runs on the instance at ``DAGSTER_HOME``, so the CLI's work shows in the UI."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import dagster as dg

from fashion_assets.defs.automation import RUN_TAG
from fashion_assets.defs.sync import apply_partitions, plan_sync, range_tags
from fashion_assets.features.registry import FEATURE_NAMES
from fashion_assets.project import Project

REPO_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"


def ensure_dagster_home() -> Path:
    """Use ``$DAGSTER_HOME`` (default ``./.dagster_home``), giving it the project's dagster.yaml if it has none."""
    home = Path(os.environ.get("DAGSTER_HOME") or ".dagster_home").resolve()
    os.environ["DAGSTER_HOME"] = str(home)
    home.mkdir(parents=True, exist_ok=True)
    target = home / "dagster.yaml"
    if not target.exists() and REPO_DAGSTER_YAML.exists():
        shutil.copyfile(REPO_DAGSTER_YAML, target)
    return home


def _definitions() -> dg.Definitions:
    from fashion_assets.definitions import defs

    return defs


def _metadata_value(value: object) -> object:
    return getattr(value, "value", value)


def run_ingest(instance: dg.DagsterInstance) -> dict:
    """Materialize ``products`` (the ingest) as a run; returns its metadata as plain values."""
    job = _definitions().resolve_job_def("ingest_job")
    result = job.execute_in_process(instance=instance, tags={"fashion/trigger": "cli"}, raise_on_error=True)
    (event,) = result.get_asset_materialization_events()
    meta = event.materialization.metadata
    return {k: _metadata_value(v) for k, v in meta.items()}


def run_refresh(project: Project, instance: dg.DagsterInstance, features: list[str] | None = None) -> dict:
    """Materialize every missing partition of every feature (or of ``features``), in dependency order, in
    one run on ``instance``. Nothing missing: no run, nothing computed, no new table version."""
    plan = plan_sync(project, instance)
    apply_partitions(plan, instance)
    wanted = [n for n in plan.features_missing if features is None or n in features]
    out: dict = {
        name: {"fragments_computed": 0, "rows_computed": 0, "rows_failed": 0, "fragments_failed": 0}
        for name in FEATURE_NAMES
        if features is None or name in features
    }
    if not wanted:
        return {"run_id": None, "success": True, "features": out}
    project.prepare()
    keys = sorted({k for n in wanted for k in plan.missing[n]}, key=int)
    job = _definitions().resolve_job_def("features_job")
    result = job.execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey(n) for n in wanted],
        tags={**range_tags(keys), RUN_TAG: "1", "fashion/trigger": "cli"},
        raise_on_error=False,
    )
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        name = mat.asset_key.to_user_string()
        meta = {k: _metadata_value(v) for k, v in mat.metadata.items()}
        if name in out and "fragments_computed" in meta:
            out[name] = {
                "fragments_computed": int(meta["fragments_computed"]),
                "rows_computed": int(meta["rows_computed"]),
                "rows_failed": int(meta["rows_failed"]),
                "fragments_failed": int(meta["fragments_failed"]),
                "seconds": meta["seconds"],
                "rows_per_second": meta["rows_per_second"],
            }
    failures = [e.message for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    return {"run_id": result.run_id, "success": result.success, "errors": failures, "features": out}
