"""Compaction: merge small fragments into bigger ones, only where every feature is already there. No Dagster.

Appends of a few rows at a time (a frequent ingest schedule) leave many small fragments, and each is a
partition, a unit of scheduling and a file to open. Lance's ``compact_files`` rewrites runs of adjacent
small fragments into fragments of about ``target_rows`` rows with NEW fragment ids, and writes every
column out in full: a feature column not yet written in a source fragment becomes a real column of nulls,
which the store's "is it materialized" test (a data file holds the column's field id) would then report as
present. So only fragments holding every feature at its current version are compacted; all others are passed
as ``excluded_fragment_ids`` (they stay as they are and bound the runs Lance merges).

Afterwards the new fragments hold every feature, so the orchestration records them as materialized without
recomputing anything (``defs/sync.py``). Indexes are remapped to the new fragments by Lance itself. Lance
checks the compaction commit against concurrent ones: a feature write to a compacted fragment (there should
be none: they are all materialized) or a column reset (a new feature version) makes it fail, and
:func:`compact` plans again on the new version.

Never use LanceDB's ``Table.optimize()`` on this table: it compacts every fragment, finished or not.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import lance

from fashion_assets.features.registry import FEATURE_NAMES
from fashion_assets.project import Project

log = logging.getLogger(__name__)

COMMIT_ATTEMPTS = 3


@dataclass
class CompactionPlan:
    """Which fragments may be compacted (every feature materialized) and which are kept out, with why."""

    table_version: int
    target_rows: int
    eligible: list[int] = field(default_factory=list)
    small: list[int] = field(default_factory=list)  # eligible and under target_rows
    deletions: list[int] = field(default_factory=list)  # eligible and holding deleted rows
    excluded: dict[int, str] = field(default_factory=dict)  # fragment -> why it is kept out

    @property
    def worth_running(self) -> bool:
        """Two small eligible fragments to merge, or deleted rows to drop."""
        return len(self.small) >= 2 or bool(self.deletions)


@dataclass
class CompactionReport:
    """What a compaction did."""

    table_version_before: int
    table_version_after: int | None
    target_rows: int
    eligible: list[int]
    excluded: dict[int, str]
    fragments_removed: int = 0
    fragments_added: int = 0
    removed_ids: list[int] = field(default_factory=list)
    added_ids: list[int] = field(default_factory=list)
    fragments_before: int = 0
    fragments_after: int = 0
    seconds: float = 0.0
    skipped: str | None = None  # why nothing was done

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["excluded"] = {str(k): v for k, v in self.excluded.items()}
        return d


def plan_compaction(
    project: Project, target_rows: int | None = None, ds: lance.LanceDataset | None = None
) -> CompactionPlan:
    """Fragments that hold every feature at its current version are eligible; the rest are excluded."""
    ds = ds or project.table.dataset()
    target = int(target_rows or project.settings.fragment_rows)
    versions = project.table.column_versions(ds)
    present: dict[str, dict[int, bool]] = {}
    for name in FEATURE_NAMES:
        current = versions.get(name) == project.spec(name).version
        present[name] = project.table.materialized(name, ds) if current else {}
    plan = CompactionPlan(ds.version, target)
    for frag in project.table.fragments(ds):
        missing = [n for n in FEATURE_NAMES if not present[n].get(frag.id, False)]
        if missing:
            plan.excluded[frag.id] = "not materialized: " + ", ".join(missing)
            continue
        plan.eligible.append(frag.id)
        if frag.live_rows < target:
            plan.small.append(frag.id)
        if frag.live_rows < frag.physical_rows:
            plan.deletions.append(frag.id)
    return plan


def compact(
    project: Project,
    target_rows: int | None = None,
    *,
    num_threads: int | None = None,
    dry_run: bool = False,
    attempts: int = COMMIT_ATTEMPTS,
) -> CompactionReport:
    """Compact the fully materialized fragments of the table into fragments of about ``target_rows`` rows
    (default: the project's fragment size). Fragments missing any feature are never touched.

    The plan is made on the very table version the compaction reads. If another writer commits to the same
    fragments or resets a column meanwhile, Lance rejects the compaction (a retryable conflict, checked:
    a Rewrite preempted by a DataReplacement or a Merge); the plan is then made again on the new version.
    """
    started = time.perf_counter()
    table = project.table
    for attempt in range(1, attempts + 1):
        ds = table.dataset()
        plan = plan_compaction(project, target_rows, ds)
        before = [f.fragment_id for f in ds.get_fragments()]
        report = CompactionReport(
            table_version_before=ds.version,
            table_version_after=ds.version,
            target_rows=plan.target_rows,
            eligible=plan.eligible,
            excluded=plan.excluded,
            fragments_before=len(before),
            fragments_after=len(before),
        )
        if not plan.worth_running:
            report.skipped = f"nothing to merge: {len(plan.small)} small fully materialized fragment(s)"
        elif dry_run:
            report.skipped = "dry run"
        if report.skipped:
            report.seconds = time.perf_counter() - started
            return report
        try:
            metrics = ds.optimize.compact_files(
                target_rows_per_fragment=plan.target_rows,
                excluded_fragment_ids=sorted(plan.excluded),
                num_threads=num_threads,
            )
        except OSError as exc:
            if "conflict" not in str(exc).lower() or attempt == attempts:
                raise
            log.info("compaction conflicted with a concurrent commit (attempt %d): re-planning", attempt)
            time.sleep(0.1 * attempt)
            continue
        after_ds = table.dataset()
        after = [f.fragment_id for f in after_ds.get_fragments()]
        report.table_version_after = after_ds.version
        report.fragments_removed = metrics.fragments_removed
        report.fragments_added = metrics.fragments_added
        report.removed_ids = sorted(set(before) - set(after))
        report.added_ids = sorted(set(after) - set(before))  # compacted (or appended meanwhile)
        report.fragments_after = len(after)
        report.seconds = time.perf_counter() - started
        log.info(
            "compaction: %d fragments -> %d (%d removed, %d added) in %.1f s",
            report.fragments_before,
            report.fragments_after,
            report.fragments_removed,
            report.fragments_added,
            report.seconds,
        )
        return report
    raise AssertionError("unreachable")
