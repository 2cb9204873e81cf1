"""Issue 2: the product's refresh of ``color_tags`` against the floor (one read, one compute, one add_columns).

Contenders, each on a fresh copy of the same table (the directory is copied before every repetition and the
copy is not timed), run interleaved (the order rotates every repetition) so that noise from other work on
the machine hits all of them alike:

  (a)  run_feature(table, ColorTags(), spec, runner=InProcessRunner())   -- the product, compute + commit
  (a') the same with checkpoint_size=512, as the Dagster asset calls it (FashionTable.checkpoint_size)
  (b)  floor: read `description` of the whole table in one go, ColorTags() on it as one batch, then ONE
       pylance ``add_columns`` with a RecordBatchReader of the precomputed column (one commit)
  (b') floor, other way: ONE pylance ``add_columns`` with a batch UDF calling ColorTags().compute
  (c)  run_feature again right after (a): nothing to do; seconds and whether a table version was written
  (c') ``fashion_assets.refresh.run_refresh(features=["color_tags"])`` with nothing to do, on a Dagster
       instance already synced with the table: what ``fashion-assets refresh`` does before deciding

The floor is the cheaper of (b) and (b'). Ratios are computed per repetition (contender / floor of the same
repetition) and the median is reported.

    . .venv/bin/activate && LANCE_LOG=error python bench/color_tags_bench.py --rows 100000 --reps 5
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("LANCE_LOG", "error")
os.environ.setdefault("FASHION_MODEL_PROFILE", "tiny")  # no feature here loads a model; keep it offline

import lance  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.csv as pacsv  # noqa: E402
from timing import timed, timed_gen  # noqa: E402  (bench/timing.py)

from fashion_assets.catalog.sample import generate_sample  # noqa: E402
from fashion_assets.catalog.source import PRODUCT_SCHEMA  # noqa: E402
from fashion_assets.execution import runners as runners_mod  # noqa: E402
from fashion_assets.execution.driver import run_feature  # noqa: E402
from fashion_assets.execution.runners import InProcessRunner  # noqa: E402
from fashion_assets.features.color_tags import ColorTags  # noqa: E402
from fashion_assets.project import column_spec  # noqa: E402
from fashion_assets.store.table import ColumnSpec, ProductTable  # noqa: E402

TABLE = "products"
TARGET_RATIO = 3.0
TARGET_NOOP_S = 1.0
GENEVA = "LanceDB Geneva 0.17 (NOTES.md): 20-40x the floor; 3 s and new versions for nothing to do"


# ---- data ---------------------------------------------------------------------------------------------
def product_table_from_csv(csv_path: Path) -> pa.Table:
    """The sample CSV as PRODUCT_SCHEMA rows, with empty image bytes (color_tags never reads them)."""
    strings = {
        c: pa.string()
        for c in (
            "gender",
            "masterCategory",
            "subCategory",
            "articleType",
            "baseColour",
            "season",
            "usage",
            "productDisplayName",
        )
    }
    raw = pacsv.read_csv(
        csv_path,
        convert_options=pacsv.ConvertOptions(column_types={"id": pa.int64(), "year": pa.int32(), **strings}),
    )
    n = raw.num_rows
    cols = {
        "id": raw["id"],
        "description": raw["productDisplayName"],
        "image_bytes": pa.array([b""] * n, pa.binary()),
        "gender": raw["gender"],
        "master_category": raw["masterCategory"],
        "sub_category": raw["subCategory"],
        "article_type": raw["articleType"],
        "base_colour": raw["baseColour"],
        "season": raw["season"],
        "year": raw["year"],
        "usage": raw["usage"],
    }
    return pa.table([cols[f.name] for f in PRODUCT_SCHEMA], schema=PRODUCT_SCHEMA)


def build_tables(work: Path, rows: int, fragment_rows: int, spec: ColumnSpec) -> tuple[Path, Path]:
    """Two base tables: ``plain`` (product columns only) and ``declared`` (plain + the feature columns
    declared, metadata only, as ``fashion-assets ingest`` leaves them)."""
    src = work / "source"
    generate_sample(src, rows, seed=0, clean=True, images=False)
    data = product_table_from_csv(src / "styles.csv")
    plain = work / "base_plain"
    t = ProductTable(str(plain), TABLE)
    t.create(PRODUCT_SCHEMA)
    t.append(data.to_batches(max_chunksize=8192), PRODUCT_SCHEMA, fragment_rows)
    declared = work / "base_declared"
    shutil.copytree(plain, declared)
    ProductTable(str(declared), TABLE).ensure_columns([spec])
    return plain, declared


def fresh_copy(base: Path, runs: Path, name: str) -> Path:
    dst = runs / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(base, dst)
    return dst


# ---- contenders ---------------------------------------------------------------------------------------
def run_product(db: Path, spec: ColumnSpec, checkpoint_size: int) -> dict:
    table = ProductTable(str(db), TABLE)
    v0 = table.dataset().version
    t0 = time.perf_counter()
    summary = run_feature(table, ColorTags(), spec, runner=InProcessRunner(), checkpoint_size=checkpoint_size)
    secs = time.perf_counter() - t0
    assert not summary.failures, summary.failures
    assert summary.rows_computed == table.dataset().count_rows(), "not every row computed"
    return {"s": secs, "versions": table.dataset().version - v0, "fragments": len(summary.committed)}


def run_noop(db: Path, spec: ColumnSpec) -> dict:
    table = ProductTable(str(db), TABLE)
    v0 = table.dataset().version
    t0 = time.perf_counter()
    summary = run_feature(table, ColorTags(), spec, runner=InProcessRunner())
    secs = time.perf_counter() - t0
    assert summary.rows_computed == 0 and not summary.failures
    return {"s": secs, "versions": table.dataset().version - v0, "fragments": len(summary.committed)}


def run_refresh_noop(db: Path, src: Path, fragment_rows: int) -> dict:
    import dagster as dg

    from fashion_assets.models.profiles import ModelProfile
    from fashion_assets.project import Project
    from fashion_assets.refresh import run_refresh
    from fashion_assets.settings import Settings

    project = Project(Settings(str(db), TABLE, str(src), fragment_rows), ModelProfile.named("tiny"))
    table = ProductTable(str(db), TABLE)
    with dg.DagsterInstance.ephemeral() as instance:
        first = run_refresh(project, instance, features=["color_tags"])  # syncs partitions: not timed
        assert first["run_id"] is None, first
        v0 = table.dataset().version
        t0 = time.perf_counter()
        out = run_refresh(project, instance, features=["color_tags"])
        secs = time.perf_counter() - t0
    assert out["run_id"] is None, out
    return {"s": secs, "versions": table.dataset().version - v0, "fragments": 0}


def floor_reader(db: Path, parts: dict | None = None) -> dict:
    """One read of the column, ColorTags over it as one batch, one add_columns of the precomputed column."""
    uri = str(db / f"{TABLE}.lance")
    feature = ColorTags()
    t0 = time.perf_counter()
    ds = lance.dataset(uri)
    v0 = ds.version
    text = ds.to_table(columns=["description"]).combine_chunks()
    t1 = time.perf_counter()
    batch = text.to_batches()[0]
    values = feature(batch).values
    t2 = time.perf_counter()
    schema = pa.schema([pa.field("color_tags", pa.string())])
    reader = pa.RecordBatchReader.from_batches(schema, [pa.record_batch([values], schema=schema)])
    ds.add_columns(reader, reader_schema=schema)
    t3 = time.perf_counter()
    if parts is not None:
        parts["read"].append(t1 - t0)
        parts["compute"].append(t2 - t1)
        parts["add_columns"].append(t3 - t2)
    return {"s": t3 - t0, "versions": lance.dataset(uri).version - v0, "fragments": 0}


def floor_udf(db: Path) -> dict:
    """One add_columns with a batch UDF calling the same compute: pylance reads, computes and writes."""
    uri = str(db / f"{TABLE}.lance")
    feature = ColorTags()

    @lance.batch_udf()
    def tags(batch: pa.RecordBatch) -> pa.RecordBatch:
        return pa.record_batch([feature(batch).values], names=["color_tags"])

    t0 = time.perf_counter()
    ds = lance.dataset(uri)
    v0 = ds.version
    ds.add_columns(tags, read_columns=["description"])
    secs = time.perf_counter() - t0
    return {"s": secs, "versions": lance.dataset(uri).version - v0, "fragments": 0}


# ---- checks and profile -------------------------------------------------------------------------------
def same_values(a: Path, b: Path) -> bool:
    ta = lance.dataset(str(a / f"{TABLE}.lance")).to_table(columns=["id", "color_tags"]).sort_by("id")
    tb = lance.dataset(str(b / f"{TABLE}.lance")).to_table(columns=["id", "color_tags"]).sort_by("id")
    return ta.num_rows == tb.num_rows and ta.column("color_tags").equals(tb.column("color_tags"))


@contextlib.contextmanager
def patched(obj, name, make):
    orig = getattr(obj, name)
    setattr(obj, name, make(orig))
    try:
        yield
    finally:
        setattr(obj, name, orig)


def profile_product(db: Path, spec: ColumnSpec, checkpoint_size: int) -> dict[str, float]:
    """One instrumented run of (a): seconds in each stage (wrappers around the product's own functions)."""
    acc: dict[str, float] = defaultdict(float)

    def timed_(label):
        return lambda orig: timed(acc, label, orig)

    def timed_gen_(label):
        return lambda orig: timed_gen(acc, label, orig)

    with contextlib.ExitStack() as stack:
        stack.enter_context(
            patched(ProductTable, "materialized", timed_("plan: materialized() per fragment"))
        )
        stack.enter_context(patched(ProductTable, "read_fragment", timed_gen_("read fragment batches")))
        stack.enter_context(patched(ColorTags, "compute", timed_("compute (ColorTags)")))
        stack.enter_context(patched(ProductTable, "write_column_file", timed_("write column files")))
        stack.enter_context(patched(ProductTable, "commit_column_files", timed_("commit (DataReplacement)")))
        stack.enter_context(patched(runners_mod, "compute_fragment", timed_("_total compute_fragment")))
        table = ProductTable(str(db), TABLE)
        t0 = time.perf_counter()
        run_feature(table, ColorTags(), spec, runner=InProcessRunner(), checkpoint_size=checkpoint_size)
        total = time.perf_counter() - t0
    inner = acc["read fragment batches"] + acc["compute (ColorTags)"] + acc["write column files"]
    acc["other in compute_fragment (open ds, Arrow glue)"] = acc.pop("_total compute_fragment") - inner
    acc["total run_feature"] = total
    return dict(acc)


# ---- main ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--fragment-rows", type=int, default=4096)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir, removed after)")
    ap.add_argument("--no-refresh", action="store_true", help="skip (c'), the Dagster refresh no-op")
    args = ap.parse_args(argv)

    feature = ColorTags()
    spec = column_spec({feature.name: feature}, feature.name)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="color_tags_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    runs = work / "runs"
    runs.mkdir(exist_ok=True)
    print(
        f"python {sys.version.split()[0]}, pylance {lance.__version__}, pyarrow {pa.__version__}, "
        f"cpus {os.cpu_count()}, load avg {os.getloadavg()[0]:.2f}"
    )
    t = time.perf_counter()
    plain, declared = build_tables(work, args.rows, args.fragment_rows, spec)
    ds = lance.dataset(str(declared / f"{TABLE}.lance"))
    print(
        f"table: {ds.count_rows()} rows in {len(ds.get_fragments())} fragments of <= {args.fragment_rows} "
        f"rows (built in {time.perf_counter() - t:.1f} s, not timed)\n"
    )

    results: dict[str, list[dict]] = defaultdict(list)
    floor_parts: dict[str, list[float]] = defaultdict(list)
    contenders = ["a", "a512", "b", "budf"]
    for rep in range(args.reps):
        k = rep % len(contenders)
        order = contenders[k:] + contenders[:k]
        copies = {}
        for name in order:
            if name == "a":
                db = copies["a"] = fresh_copy(declared, runs, f"a-{rep}")
                results["a"].append(run_product(db, spec, 1024))
                results["c"].append(run_noop(db, spec))  # right after (a), on its table
            elif name == "a512":
                db = copies["a512"] = fresh_copy(declared, runs, f"a512-{rep}")
                results["a512"].append(run_product(db, spec, 512))
            elif name == "b":
                db = copies["b"] = fresh_copy(plain, runs, f"b-{rep}")
                results["b"].append(floor_reader(db, floor_parts))
            else:
                db = copies["budf"] = fresh_copy(plain, runs, f"budf-{rep}")
                results["budf"].append(floor_udf(db))
        if rep == 0:
            for other in ("a512", "b", "budf"):
                assert same_values(copies["a"], copies[other]), f"{other} differs from the product's values"
            print("check: (a), (a'), (b), (b') wrote the same color_tags for every row")
        if not args.no_refresh:
            results["c2"].append(run_refresh_noop(copies["a"], work / "source", args.fragment_rows))
        for db in copies.values():
            shutil.rmtree(db)
        line = ", ".join(
            f"{n} {results[n][-1]['s']:.3f}s" for n in ("a", "a512", "b", "budf", "c", "c2") if results[n]
        )
        print(f"rep {rep + 1}/{args.reps}: {line}")

    # floor of each repetition: the cheaper of the two real pylance ways
    floors = [min(b["s"], u["s"]) for b, u in zip(results["b"], results["budf"], strict=True)]
    floor_med = statistics.median(floors)
    labels = {
        "a": "(a)  product: run_feature, InProcessRunner, checkpoint_size=1024 (default)",
        "a512": "(a') product: run_feature, checkpoint_size=512 (as the Dagster asset calls it)",
        "b": "(b)  floor: read column + compute once + add_columns(reader)",
        "budf": "(b') floor: add_columns(batch UDF)",
        "c": "(c)  run_feature with nothing to do",
        "c2": "(c') run_refresh(['color_tags']) with nothing to do",
    }
    print(
        f"\n{args.rows} rows, {len(ds.get_fragments())} fragments, {args.reps} repetitions "
        f"(medians; ratio = median of per-repetition contender / floor)"
    )
    print(f"{'contender':<82} {'median s':>9} {'min s':>7} {'x floor':>8} {'new versions':>13}")
    for name, label in labels.items():
        if not results[name]:
            continue
        secs = [r["s"] for r in results[name]]
        ratio = statistics.median(s / f for s, f in zip(secs, floors, strict=True))
        versions = sorted({r["versions"] for r in results[name]})
        print(
            f"{label:<82} {statistics.median(secs):>9.4f} {min(secs):>7.4f} {ratio:>7.1f}x "
            f"{'/'.join(map(str, versions)):>13}"
        )
    floor_label = "floor (per repetition: cheaper of (b), (b'))"
    print(f"{floor_label:<82} {floor_med:>9.4f}")
    print(
        "\nfloor (b) breakdown, medians: "
        + ", ".join(f"{k} {statistics.median(v):.3f}s" for k, v in floor_parts.items())
    )

    db = fresh_copy(declared, runs, "profile")
    prof = profile_product(db, spec, 1024)
    shutil.rmtree(db)
    print("\n(a) breakdown, one instrumented run:")
    for k, v in sorted(prof.items(), key=lambda kv: -kv[1]):
        print(f"  {k:<52} {v:7.3f} s")

    a_ratio = statistics.median(a["s"] / f for a, f in zip(results["a"], floors, strict=True))
    noop = statistics.median(r["s"] for r in results["c"])
    noop_versions = max(r["versions"] for r in results["c"])
    print("\ntargets:")
    print(
        f"  (a) within {TARGET_RATIO:.0f}x of the floor: {a_ratio:.1f}x -> "
        f"{'MET' if a_ratio <= TARGET_RATIO else 'MISSED'}"
    )
    print(
        f"  (c) nothing to do under {TARGET_NOOP_S:.0f} s, no new version: {noop:.4f} s, "
        f"{noop_versions} new versions -> "
        f"{'MET' if noop < TARGET_NOOP_S and noop_versions == 0 else 'MISSED'}"
    )
    if results["c2"]:
        c2 = statistics.median(r["s"] for r in results["c2"])
        c2v = max(r["versions"] for r in results["c2"])
        print(
            f"  (c') refresh with nothing to do: {c2:.4f} s, {c2v} new versions -> "
            f"{'MET' if c2 < TARGET_NOOP_S and c2v == 0 else 'MISSED'}"
        )
    print(f"  reference: {GENEVA}")
    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
