"""Vector search benchmark: the shipped index (fashion_assets.indexes) against a flat scan, in one run.

Builds a LanceDB table of N synthetic unit vectors (512-d, drawn around random cluster centres like real
embeddings, which are clustered; uniformly random vectors have no meaningful neighbours), builds the vector
index exactly as the ``search_index`` asset does (``update_vector_index``), then runs the same queries
(held-out points of the same distribution) through the search code path (``vector_hits``) with the index
and as a flat scan (``bypass_vector_index``, exact). Prints latency p50/p95 of both and recall@10 of the
index against the exact result, for a few nprobes settings (the search default is marked).

    python bench/search_bench.py                      # 100k rows, 200 queries
    python bench/search_bench.py --rows 20000 --queries 50
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import lancedb
import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LANCE_LOG", "error")

from fashion_assets.indexes import update_vector_index  # noqa: E402
from fashion_assets.search import DEFAULT_NPROBES, DEFAULT_REFINE_FACTOR, vector_hits  # noqa: E402
from fashion_assets.store.table import ProductTable  # noqa: E402

DIM = 512
COLUMN = "embedding"


def clustered_unit_vectors(
    n: int, centres: np.ndarray, spread: float, rng: np.random.Generator
) -> np.ndarray:
    """``n`` unit vectors, each a random centre plus Gaussian noise of norm about ``spread``."""
    pick = rng.integers(0, len(centres), size=n)
    noise = rng.standard_normal((n, DIM), dtype=np.float32) * (spread / np.sqrt(DIM))
    v = centres[pick] + noise
    return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def build_table(path: str, rows: int, centres: np.ndarray, spread: float, rng: np.random.Generator) -> None:
    db = lancedb.connect(path)
    schema = pa.schema([pa.field("id", pa.int64()), pa.field(COLUMN, pa.list_(pa.float32(), DIM))])
    table = db.create_table("vectors", schema=schema)
    chunk = 20_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        v = clustered_unit_vectors(n, centres, spread, rng)
        data = pa.table(
            {
                "id": pa.array(range(start, start + n), pa.int64()),
                COLUMN: pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), DIM),
            },
            schema=schema,
        )
        table.add(data)


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return (time.perf_counter() - started) * 1000.0, out


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument(
        "--spread", type=float, default=1.0, help="noise norm around a centre (1.0: cos ~0.7)"
    )
    parser.add_argument("--nprobes", type=int, nargs="*", default=sorted({4, 8, DEFAULT_NPROBES, 32}))
    parser.add_argument("--refine-factor", type=int, default=DEFAULT_REFINE_FACTOR)
    parser.add_argument("--dir", help="where to build the table (default: a temp dir, removed after)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.clusters, DIM), dtype=np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    workdir = args.dir or tempfile.mkdtemp(prefix="search_bench_")
    try:
        t0 = time.perf_counter()
        build_table(workdir, args.rows, centres, args.spread, rng)
        load_s = time.perf_counter() - t0
        store = ProductTable(workdir, "vectors")
        t0 = time.perf_counter()
        result = update_vector_index(store, COLUMN)
        index_s = time.perf_counter() - t0
        assert result.indexed_rows == args.rows, result
        table = store.lancedb_table()
        queries = clustered_unit_vectors(args.queries, centres, args.spread, rng)

        def flat(q: np.ndarray) -> list[int]:
            builder = (
                table.search(q, vector_column_name=COLUMN)
                .distance_type("cosine")
                .bypass_vector_index()
                .limit(args.k)
            )
            return builder.select(["id", "_distance"]).to_arrow()["id"].to_pylist()

        def indexed(q: np.ndarray, nprobes: int) -> list[int]:
            hits = vector_hits(
                table,
                q,
                args.k,
                column=COLUMN,
                columns=["id"],
                nprobes=nprobes,
                refine_factor=args.refine_factor,
            )
            return hits["id"].to_pylist()

        for q in queries[:5]:  # warm caches for both paths
            flat(q)
            indexed(q, args.nprobes[0])
        flat_ms, truth = [], []
        for q in queries:
            ms, ids = timed(lambda q=q: flat(q))
            flat_ms.append(ms)
            truth.append(set(ids))
        rows_out = []
        for nprobes in args.nprobes:
            lat, recalls = [], []
            for q, exact in zip(queries, truth, strict=True):
                ms, ids = timed(lambda q=q, nprobes=nprobes: indexed(q, nprobes))
                lat.append(ms)
                recalls.append(len(exact & set(ids)) / args.k)
            rows_out.append((nprobes, lat, statistics.mean(recalls)))

        flat_p50, flat_p95 = pct(flat_ms, 0.5), pct(flat_ms, 0.95)
        print(
            f"rows={args.rows:,} dim={DIM} queries={args.queries} k={args.k} clusters={args.clusters}"
            f" spread={args.spread} cpus={os.cpu_count()}"
        )
        print(
            f"index: {result.index_type}, {result.num_partitions} partitions, {result.num_sub_vectors} sub-vectors,"
            f" refine_factor={args.refine_factor}; built in {index_s:.1f} s (table written in {load_s:.1f} s)"
        )
        print()
        print("| search | nprobes | p50 ms | p95 ms | p50 speed-up vs flat | recall@10 |")
        print("|---|---|---|---|---|---|")
        print(f"| flat scan (exact) | - | {flat_p50:.1f} | {flat_p95:.1f} | 1.0x | 1.000 |")
        for nprobes, lat, recall in rows_out:
            p50, p95 = pct(lat, 0.5), pct(lat, 0.95)
            mark = " (default)" if nprobes == DEFAULT_NPROBES else ""
            print(
                f"| {result.index_type}{mark} | {nprobes} | {p50:.1f} | {p95:.1f} | {flat_p50 / p50:.1f}x |"
                f" {recall:.3f} |"
            )
        default = next((r for r in rows_out if r[0] == DEFAULT_NPROBES), rows_out[-1])
        ok = default[2] >= 0.95 and flat_p50 / pct(default[1], 0.5) >= 5.0
        print()
        print(f"targets (recall@10 >= 0.95, p50 >= 5x flat) at the default: {'MET' if ok else 'NOT MET'}")
        return 0 if ok else 1
    finally:
        if not args.dir:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
