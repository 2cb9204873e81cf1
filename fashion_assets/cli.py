"""`fashion-assets`: make a sample catalogue, ingest it, refresh features, show status, search."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from pathlib import Path

from fashion_assets.settings import Settings


def _print(data: object, as_json: bool, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if as_json else text)


def cmd_sample(args: argparse.Namespace) -> int:
    from fashion_assets.catalog.sample import generate_sample

    report = generate_sample(Path(args.out_dir), args.rows, seed=args.seed, clean=args.clean)
    data = {
        "out_dir": str(report.out_dir),
        "rows": report.rows,
        "comma_in_name": report.comma_in_name,
        "missing_image": report.missing_image,
        "duplicate_id": report.duplicate_id,
    }
    _print(data, args.json, f"wrote {report.rows} rows to {report.out_dir} (styles.csv + images/)")
    return 0


def _instance():
    import dagster as dg

    from fashion_assets.refresh import ensure_dagster_home

    ensure_dagster_home()
    return dg.DagsterInstance.get()


def cmd_ingest(args: argparse.Namespace) -> int:
    from fashion_assets.catalog.source import SourceError, check_source
    from fashion_assets.refresh import run_ingest

    if args.source:
        os.environ["FASHION_SOURCE_DIR"] = args.source
    source = Settings.from_env().source_dir
    try:
        check_source(source)  # a clear error before any run is started
    except SourceError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with _instance() as instance:
        meta = run_ingest(instance)
    data = {
        "rows_added": meta["rows_added"],
        "fragments_added": meta["fragments_added"],
        "rows_already_present": meta["rows_already_present"],
        "rows_repaired": meta["rows_repaired"],
        "rejected": meta["rejected"],
        "rows": meta["dagster/row_count"],
    }
    _print(
        data,
        args.json,
        f"added {data['rows_added']} rows in {len(data['fragments_added'])} fragments;"
        f" {data['rows_already_present']} already present; {meta['rows_rejected']} rejected"
        " (see `fashion-assets status --rejects`)",
    )
    return 0


def _all_rejects() -> list[dict]:
    from fashion_assets.ingest import read_rejects
    from fashion_assets.project import Project

    rows = read_rejects(Project().table).to_pylist()
    return [{"id": r["id"], "reason": r["reason"], "line": r["line"]} for r in rows]


def cmd_refresh(args: argparse.Namespace) -> int:
    from fashion_assets.project import Project
    from fashion_assets.refresh import run_refresh

    project = Project()
    if not project.table.exists():
        print(f"error: no table at {project.table.uri}: run `fashion-assets ingest` first", file=sys.stderr)
        return 2
    with _instance() as instance:
        data = run_refresh(project, instance, args.feature or None)
    lines = [
        f"{name}: {v['fragments_computed']} fragments, {v['rows_computed']} rows computed,"
        f" {v['rows_failed']} rows failed"
        for name, v in data["features"].items()
    ]
    lines += [f"error: {e}" for e in data.get("errors", [])]
    _print(data, args.json, "\n".join(lines) or "nothing to do")
    return 0 if data["success"] else 1


def cmd_status(args: argparse.Namespace) -> int:
    from fashion_assets.project import Project

    project = Project()
    data = project.status(verify=True if args.verify else None).as_dict()
    if args.rejects:
        data["rejected"] = _all_rejects()
    from fashion_assets.indexes import index_status

    data["indexes"] = index_status(project.table)
    lines = [f"{project.table.uri}: {data['rows']} rows in {data['fragments']} fragments"]
    for name, f in data["features"].items():
        lines.append(
            f"  {name:18} {f['materialized']:>5} materialized {f['missing']:>5} missing"
            f" {f['failed_rows']:>6} failed rows  (version {f['version']})"
        )
    if data["indexes"]:
        lines.append(
            "  indexes: "
            + ", ".join(
                f"{n} {i['indexed_rows']}/{data['rows']}" if i["present"] else f"{n} missing"
                for n, i in data["indexes"].items()
            )
        )
    for r in data.get("rejected", []):
        lines.append(f"  rejected id={r['id']!r} line {r['line']}: {r['reason']}")
    _print(data, args.json, "\n".join(lines))
    return 0


def cmd_search(args: argparse.Namespace) -> int:
    from fashion_assets.project import Project
    from fashion_assets.search import SearchError, search

    if not args.query and not args.image:
        print("error: give QUERY words, --image PATH, or both", file=sys.stderr)
        return 2
    try:
        hits = search(Project(), args.query, k=args.k, mode=args.mode, image=args.image, where=args.where)
    except SearchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    lines = []
    for h in hits:
        extra = ", ".join(str(h[c]) for c in ("gender", "article_type", "base_colour") if h.get(c))
        lines.append(f"{h['rank']:>3}. {h['score']:.4f}  [{h['id']}] {h['description']}  ({extra})")
        if h.get("caption"):
            lines.append(f"       caption: {h['caption']}")
    _print(hits, args.json, "\n".join(lines) or "no results")
    return 0


def cmd_index(args: argparse.Namespace) -> int:
    from fashion_assets.project import Project
    from fashion_assets.refresh import _definitions, _metadata_value

    if not Project().table.exists():
        print("error: no table yet: run `fashion-assets ingest` first", file=sys.stderr)
        return 2
    with _instance() as instance:
        job = _definitions().resolve_job_def("index_job")
        result = job.execute_in_process(
            instance=instance,
            run_config={"ops": {"search_index": {"config": {"rebuild": args.rebuild}}}},
            tags={"fashion/trigger": "cli"},
            raise_on_error=False,
        )
    events = result.get_asset_materialization_events()
    if not result.success or not events:
        errors = [e.message for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
        print("error: index run failed: " + "; ".join(errors), file=sys.stderr)
        return 1
    meta = {k: _metadata_value(v) for k, v in events[0].materialization.metadata.items()}
    data = {
        "run_id": result.run_id,
        "rows": meta["dagster/row_count"],
        "indexed_rows": meta["indexed_rows"],
        "unindexed_rows": meta["unindexed_rows"],
        "actions": meta["actions"],
        "build_seconds": meta["build_seconds"],
    }
    lines = [
        f"{name}: {data['actions'][name]}, {rows} rows indexed, {data['unindexed_rows'][name]} not"
        for name, rows in data["indexed_rows"].items()
    ]
    lines.append(f"{data['rows']} rows; {data['build_seconds']} s")
    _print(data, args.json, "\n".join(lines))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fashion-assets", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress to stderr")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("sample", help="write a deterministic sample catalogue (Kaggle layout)")
    p.add_argument("out_dir")
    p.add_argument("--rows", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--clean", action="store_true", help="no quirk rows (bad lines, missing images, dups)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_sample)

    p = sub.add_parser("ingest", help="append the source folder's new rows (a run on the Dagster instance)")
    p.add_argument("--source", help="source folder (default $FASHION_SOURCE_DIR or data/source)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("refresh", help="materialize every missing partition of every feature")
    p.add_argument("--feature", action="append", help="only this feature (repeatable)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_refresh)

    p = sub.add_parser("status", help="rows, fragments and per-feature materialized/missing fragments")
    p.add_argument("--rejects", action="store_true", help="also list rows the ingest rejected")
    p.add_argument(
        "--verify", action="store_true", help="check every feature file exists (default only on local disks)"
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("index", help="bring the search indexes up to date (a run of index_job)")
    p.add_argument("--rebuild", action="store_true", help="rebuild every index instead of folding new rows")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_index)

    p = sub.add_parser("search", help="search the catalogue by words and/or a photo")
    p.add_argument("query", nargs="?", default=None, help="words to search for")
    p.add_argument("--k", type=int, default=10, help="results to return (default 10)")
    p.add_argument("--mode", choices=["hybrid", "vector", "fts"], default="hybrid", help="default: hybrid")
    p.add_argument("--image", help="search by this photo (its CLIP image embedding)")
    p.add_argument("--where", help="SQL filter on catalogue columns, e.g. \"gender = 'Women'\"")
    p.add_argument("--json", action="store_true", help="print the hits as a JSON list")
    p.set_defaults(func=cmd_search)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # Dagster flags the (stable here) backfill-policy API as beta on every import: noise for CLI users.
    warnings.filterwarnings("ignore", message=r".*is currently in beta")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("LANCE_LOG", "error")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
