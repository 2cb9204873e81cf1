"""Data-quality asset checks on the features and the search index (shown on each asset's Checks tab).

Each check reads the table as it is now, over every fragment where the feature is materialized at its
current version (fragments still to compute are not judged). The measurements are plain functions
(``*_finding``) so they can be used and tested without Dagster; the asset checks wrap them.

- ``embedding_shape_and_norm`` (image_embedding, caption_embedding): 512 float32 dims, unit L2 norm.
- ``nulls_match_failures`` (every feature): a null value has a recorded failure reason, or a null input
  (whose own failure is recorded upstream); a value never comes with a failure reason.
- ``failure_rate`` (every feature): recorded failures / rows under a threshold (``FASHION_MAX_FAILURE_RATE``,
  default 0.05).
- ``captions_non_empty`` (caption): no empty or blank caption.
- ``index_coverage`` (search_index): every index exists, holds rows and covers every row of the table.
"""

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fashion_assets.defs.resources import FashionTable
from fashion_assets.features.image_embedding import EMBEDDING_DIM
from fashion_assets.features.registry import FEATURE_NAMES
from fashion_assets.indexes import TEXT_COLUMNS, VECTOR_COLUMNS, index_status
from fashion_assets.project import Project
from fashion_assets.store.table import error_column

FAILURE_RATE_ENV = "FASHION_MAX_FAILURE_RATE"
DEFAULT_MAX_FAILURE_RATE = 0.05
NORM_TOLERANCE = 1e-3
SAMPLE = 20  # offending ids shown in the metadata
EMBEDDING_FEATURES: tuple[str, ...] = ("image_embedding", "caption_embedding")


def max_failure_rate() -> float:
    """The failure-rate threshold: ``FASHION_MAX_FAILURE_RATE`` (a fraction, e.g. 0.05), else 0.05."""
    raw = os.environ.get(FAILURE_RATE_ENV, "").strip()
    return float(raw) if raw else DEFAULT_MAX_FAILURE_RATE


@dataclass
class Finding:
    """The outcome of one quality measurement: passed or not, a one-line description, numbers to show."""

    passed: bool
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def result(self, severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
        meta = {
            k: (dg.MetadataValue.json(v) if isinstance(v, list | dict) else v)
            for k, v in self.metadata.items()
        }
        return dg.AssetCheckResult(
            passed=self.passed, severity=severity, description=self.description, metadata=meta
        )


def _current_fragments(project: Project, name: str, ds: lance.LanceDataset) -> list[lance.LanceFragment]:
    """Fragments holding ``name`` at its current version."""
    if project.table.column_versions(ds).get(name) != project.spec(name).version:
        return []
    present = project.table.materialized(name, ds)
    return [f for f in ds.get_fragments() if present.get(f.fragment_id)]


def _rows(fragments: Sequence[lance.LanceFragment]) -> int:
    return sum(f.count_rows() for f in fragments)


def embedding_finding(project: Project, name: str, tolerance: float = NORM_TOLERANCE) -> Finding:
    """Every non-null ``name`` vector has EMBEDDING_DIM finite float32 values and an L2 norm within
    ``tolerance`` of 1."""
    ds = project.table.dataset()
    ftype = ds.schema.field(name).type
    dims = getattr(ftype, "list_size", None)
    if dims != EMBEDDING_DIM or ftype.value_type != pa.float32():
        return Finding(False, f"{name} is {ftype}, not {EMBEDDING_DIM} float32 values", {"type": str(ftype)})
    fragments = _current_fragments(project, name, ds)
    checked = bad = 0
    worst = 0.0
    sample: list[Any] = []
    if fragments:
        scanner = ds.scanner(columns=["id", name], filter=f"{name} IS NOT NULL", fragments=fragments)
        for batch in scanner.to_batches():
            if batch.num_rows == 0:
                continue
            column = batch.column(name)
            flat = pc.list_flatten(column).to_numpy(zero_copy_only=False)
            vectors = flat.reshape(len(column), dims).astype(np.float64)
            norms = np.linalg.norm(vectors, axis=1)
            off = ~np.isfinite(norms) | (np.abs(norms - 1.0) > tolerance)
            checked += len(norms)
            finite = np.abs(norms[np.isfinite(norms)] - 1.0)
            worst = max(worst, float(finite.max()) if finite.size else float("inf"))
            if off.any():
                bad += int(off.sum())
                ids = batch.column("id").to_numpy(zero_copy_only=False)[off]
                sample += [int(i) for i in ids[: SAMPLE - len(sample)]]
    meta = {
        "vectors_checked": checked,
        "not_unit_norm": bad,
        "max_norm_error": round(worst, 6),
        "dims": dims,
        "fragments_checked": len(fragments),
        "bad_ids_sample": sample,
    }
    if bad:
        return Finding(False, f"{bad} of {checked} {name} vectors are not unit-norm (ids {sample[:5]})", meta)
    return Finding(True, f"{checked} vectors: {dims} float32 dims, unit norm (max error {worst:.1e})", meta)


def nulls_finding(project: Project, name: str) -> Finding:
    """Nulls equal recorded failures: no null value with no reason and a non-null input; no value that
    also has a failure reason."""
    ds = project.table.dataset()
    err = error_column(name)
    inputs = list(project.features[name].inputs)
    fragments = _current_fragments(project, name, ds)
    unexplained: list[int] = []
    contradicted: list[int] = []
    if fragments:
        # Inputs are read only for rows whose value and reason are both null (usually none).
        nulls = ds.scanner(
            columns=["id", *inputs], filter=f"{name} IS NULL AND {err} IS NULL", fragments=fragments
        ).to_table()
        has_input = np.ones(nulls.num_rows, dtype=bool)
        for column in inputs:
            has_input &= ~nulls.column(column).is_null().to_numpy(zero_copy_only=False)
        unexplained = [int(i) for i, ok in zip(nulls.column("id").to_pylist(), has_input, strict=True) if ok]
        both = ds.scanner(
            columns=["id"], filter=f"{name} IS NOT NULL AND {err} IS NOT NULL", fragments=fragments
        ).to_table()
        contradicted = both.column("id").to_pylist()
    meta = {
        "fragments_checked": len(fragments),
        "null_without_reason": len(unexplained),
        "value_with_reason": len(contradicted),
        "null_without_reason_ids": unexplained[:SAMPLE],
        "value_with_reason_ids": contradicted[:SAMPLE],
    }
    if unexplained or contradicted:
        return Finding(
            False,
            f"{len(unexplained)} null {name} values with a non-null input and no recorded failure;"
            f" {len(contradicted)} values that also record a failure",
            meta,
        )
    return Finding(True, f"every null {name} has a recorded failure or a null input", meta)


def failure_rate_finding(project: Project, name: str, threshold: float | None = None) -> Finding:
    """Rows with a recorded failure / rows, over fragments where ``name`` is materialized, is at most
    ``threshold`` (default :func:`max_failure_rate`)."""
    limit = max_failure_rate() if threshold is None else threshold
    ds = project.table.dataset()
    fragments = _current_fragments(project, name, ds)
    rows = _rows(fragments)
    failed = 0
    if fragments:
        failed = ds.scanner(
            columns=["id"], filter=f"{error_column(name)} IS NOT NULL", fragments=fragments
        ).count_rows()
    rate = failed / rows if rows else 0.0
    meta = {"rows": rows, "failed_rows": failed, "failure_rate": round(rate, 6), "threshold": limit}
    passed = rate <= limit
    verdict = "within" if passed else "over"
    return Finding(
        passed, f"{failed} of {rows} rows failed ({rate:.2%}), {verdict} the {limit:.2%} limit", meta
    )


def captions_finding(project: Project) -> Finding:
    """No caption is an empty or blank string (a null caption is a recorded failure, judged elsewhere)."""
    ds = project.table.dataset()
    fragments = _current_fragments(project, "caption", ds)
    blank: list[int] = []
    rows = 0
    if fragments:
        t = ds.scanner(
            columns=["id", "caption"], filter="caption IS NOT NULL", fragments=fragments
        ).to_table()
        rows = t.num_rows
        empty = pc.equal(pc.utf8_trim_whitespace(t.column("caption")), "")
        blank = pc.filter(t.column("id"), empty).to_pylist()
    meta = {"captions_checked": rows, "blank_captions": len(blank), "blank_ids_sample": blank[:SAMPLE]}
    if blank:
        return Finding(False, f"{len(blank)} of {rows} captions are empty or blank", meta)
    return Finding(True, f"{rows} captions, none blank", meta)


def coverage_finding(project: Project) -> Finding:
    """Every search index exists and covers every row (indexed rows = table rows, none unindexed).

    Rows outside an index are still searched (flat), so a shortfall costs latency, not results."""
    table = project.table
    rows = table.dataset().count_rows() if table.exists() else 0
    status = index_status(table)
    coverage = {}
    problems = []
    for name, s in status.items():
        indexed = s["indexed_rows"] or 0
        coverage[name] = round(indexed / rows, 4) if rows else 1.0
        if not s["present"]:
            problems.append(f"{name} missing")
        elif rows and indexed == 0:
            problems.append(f"{name} holds 0 rows")
        elif s["unindexed_rows"]:
            problems.append(f"{name}: {s['unindexed_rows']} rows not indexed")
    meta = {
        "rows": rows,
        "coverage": coverage,
        "indexed_rows": {n: s["indexed_rows"] for n, s in status.items()},
        "unindexed_rows": {n: s["unindexed_rows"] for n, s in status.items()},
    }
    if problems:
        return Finding(False, "; ".join(problems), meta)
    return Finding(True, f"{len(status)} indexes cover all {rows} rows", meta)


def _guarded(measure: Any) -> Finding:
    """Run a measurement; a crash is a failed check with the reason, never a failed run."""
    try:
        return measure()
    except Exception as exc:
        return Finding(False, f"check could not run: {type(exc).__name__}: {exc}", {"error": str(exc)[:2000]})


def _feature_check(
    name: str, check: str, description: str, measure: Callable[[Project, str], Finding]
) -> dg.AssetChecksDefinition:
    """A non-blocking check ``check`` on feature ``name`` that reports ``measure(project, name)``."""

    @dg.asset_check(asset=name, name=check, description=description, blocking=False)
    def _check(table: FashionTable) -> dg.AssetCheckResult:
        return _guarded(lambda: measure(table.project(), name)).result()

    return _check


def _embedding_check(name: str) -> dg.AssetChecksDefinition:
    return _feature_check(
        name,
        "embedding_shape_and_norm",
        f"Every {name} vector has {EMBEDDING_DIM} float32 dims and unit L2 norm (within {NORM_TOLERANCE}).",
        embedding_finding,
    )


def _nulls_check(name: str) -> dg.AssetChecksDefinition:
    return _feature_check(
        name,
        "nulls_match_failures",
        f"A null {name} always has a recorded failure reason (or a null input); a value never has one.",
        nulls_finding,
    )


def _failure_rate_check(name: str) -> dg.AssetChecksDefinition:
    return _feature_check(
        name,
        "failure_rate",
        f"Rows of {name} with a recorded failure stay under ${FAILURE_RATE_ENV}"
        f" (default {DEFAULT_MAX_FAILURE_RATE:.0%}).",
        failure_rate_finding,
    )


@dg.asset_check(
    asset="caption",
    name="captions_non_empty",
    description="No caption is an empty or blank string.",
    blocking=False,
)
def captions_non_empty(table: FashionTable) -> dg.AssetCheckResult:
    """No caption is an empty or blank string."""
    return _guarded(lambda: captions_finding(table.project())).result()


@dg.asset_check(
    asset="search_index",
    name="index_coverage",
    description=f"Indexes on {', '.join((*TEXT_COLUMNS, *VECTOR_COLUMNS))} exist, hold rows and cover every row.",
    blocking=False,
)
def index_coverage(table: FashionTable) -> dg.AssetCheckResult:
    """Indexed rows vs rows for every search index (a warning: unindexed rows are still searched flat)."""
    return _guarded(lambda: coverage_finding(table.project())).result(dg.AssetCheckSeverity.WARN)


def build_checks() -> list[dg.AssetChecksDefinition]:
    """Every data-quality check of the project."""
    checks = [_embedding_check(n) for n in EMBEDDING_FEATURES]
    checks += [_nulls_check(n) for n in FEATURE_NAMES]
    checks += [_failure_rate_check(n) for n in FEATURE_NAMES]
    return [*checks, captions_non_empty, index_coverage]
