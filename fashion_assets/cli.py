"""`fashion-assets`: make a sample catalogue, ingest it, refresh features, show status, search."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
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
    data = project.status().as_dict()
    if args.rejects:
        data["rejected"] = _all_rejects()
    lines = [f"{project.table.uri}: {data['rows']} rows in {data['fragments']} fragments"]
    for name, f in data["features"].items():
        lines.append(
            f"  {name:18} {f['materialized']:>5} materialized {f['missing']:>5} missing"
            f" {f['failed_rows']:>6} failed rows  (version {f['version']})"
        )
    for r in data.get("rejected", []):
        lines.append(f"  rejected id={r['id']!r} line {r['line']}: {r['reason']}")
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
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, stream=sys.stderr)
    os.environ.setdefault("LANCE_LOG", "error")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
