"""Issue 3: image_embedding end to end against the bare model, and memory against table size.

Part 1, throughput, with the real ViT-B-32 architecture: random weights written once to a local checkpoint
(``save_random_checkpoint``) and loaded through open_clip's real ``pretrained=<file>`` path
(``FASHION_CLIP_CHECKPOINT``; ``FASHION_MODEL_PROFILE=tiny`` so nothing else wants the network). On a table
ingested from a generated sample (real JPEGs), contenders run interleaved, the order rotating every
repetition, each end-to-end one on a fresh copy of the table:

  ray       run_feature(..., runner=RayRunner(), checkpoint_size=512), as the Dagster asset runs it: Ray is
            started first (like dagster-ray's LocalRay, with the product's ray_resource() options; timed
            apart), the run includes actor start, model load in the actor, compute, checkpoints, commits
  inproc    the same with InProcessRunner (model load in this process included)
  bare      the model's encode_image alone, on the same rows already decoded + preprocessed, same batch
            size (32): the floor
  notebook  one image per call: decode + preprocess + encode_image (+ normalise), a loop over the rows

rows/s = rows / seconds; ratios are per repetition (contender rate / bare rate of the same repetition),
medians reported. A perf_counter breakdown of the in-process run (wrappers around the product's own
functions) says where end-to-end time goes.

Part 2, memory, with the TINY profile (to keep it fast): peak RSS of the whole process tree (this driver,
Ray's GCS/raylet and every worker; sampled every 50 ms in a background thread with psutil) during a
RayRunner run_feature over a 2k-row and an 8k-row table, alternated.

    . .venv/bin/activate && python bench/image_embedding_bench.py --rows 256 --reps 3
    # one full fragment, only the contenders that matter for the target (about 35 min on 2 cores):
    python bench/image_embedding_bench.py --rows 4096 --reps 3 --contenders ray,inproc,bare --skip-memory
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("LANCE_LOG", "error")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ["FASHION_MODEL_PROFILE"] = "tiny"  # BLIP stays offline; CLIP comes from FASHION_CLIP_CHECKPOINT

import warnings  # noqa: E402

import psutil  # noqa: E402
from timing import timed, timed_gen  # noqa: E402  (bench/timing.py)

# Ray starts its services with fork+exec: lance/lancedb warn about fork safety; nothing here forks lance state
warnings.filterwarnings("ignore", message=".*fork.*")

TABLE = "products"
CONTENDERS = ("ray", "ray0", "inproc", "bare", "notebook")
TARGET = 0.85
BATCH = 32  # ImageEmbedding's batch size
CHECKPOINT_SIZE = 512  # what the Dagster asset passes (FashionTable.checkpoint_size)


# ---- helpers ------------------------------------------------------------------------------------------
def ray_options() -> dict:
    """The options the product's ray_resource() gives dagster-ray's LocalRay (no RAY_ADDRESS)."""
    return {"num_cpus": os.cpu_count(), "include_dashboard": False, "log_to_driver": False}


def build_table(work: Path, name: str, rows: int, spec) -> Path:
    from fashion_assets.catalog.sample import generate_sample
    from fashion_assets.ingest import ingest
    from fashion_assets.store.table import ProductTable

    src = work / f"source-{name}"
    generate_sample(src, rows, seed=0, clean=True, images=True)
    db = work / f"base-{name}"
    if db.exists():
        shutil.rmtree(db)
    report = ingest(ProductTable(str(db), TABLE), src, [spec], fragment_rows=4096)
    assert report.rows_added == rows and not report.rejected, report
    return db


def fresh_copy(base: Path, runs: Path, name: str) -> Path:
    dst = runs / name
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(base, dst)
    return dst


def spec_for(feature):
    from fashion_assets.project import column_spec

    return column_spec({feature.name: feature}, feature.name)


def run_e2e(db: Path, feature, spec, runner) -> dict:
    from fashion_assets.execution.driver import run_feature
    from fashion_assets.store.table import ProductTable

    table = ProductTable(str(db), TABLE)
    rows = table.dataset().count_rows()
    with TreeSampler(0.1) as sampler:
        t0 = time.perf_counter()
        summary = run_feature(table, feature, spec, runner=runner, checkpoint_size=CHECKPOINT_SIZE)
        secs = time.perf_counter() - t0
    assert not summary.failures, [f.error for f in summary.failures]
    assert summary.rows_computed == rows and summary.rows_failed == 0, summary.as_dict()
    in_worker = sum(r.seconds for r in summary.results)
    return {
        "s": secs,
        "rows": rows,
        "rate": rows / secs,
        "compute_fragment_s": in_worker,
        "cpu_s": sampler.cpu_seconds,
        "peak_tree": sampler.peak,
        "worker_nice": sorted(sampler.worker_nice),
    }


def run_ray(db: Path, feature, spec, worker_niceness: int | None = None) -> dict:
    """Ray started as the product's LocalRay starts it; ``worker_niceness`` overrides Ray's default (15)."""
    import ray

    from fashion_assets.execution.runners import RayRunner

    if worker_niceness is not None:
        os.environ["RAY_worker_niceness"] = str(worker_niceness)
    t0 = time.perf_counter()
    try:
        ray.init(**ray_options())
    finally:
        os.environ.pop("RAY_worker_niceness", None)
    start = time.perf_counter() - t0
    try:
        out = run_e2e(db, feature, spec, RayRunner())
    finally:
        t1 = time.perf_counter()
        ray.shutdown()
        out_shutdown = time.perf_counter() - t1
    out["ray_shutdown_s"] = out_shutdown
    out["ray_start_s"] = start
    out["rate_incl_ray_start"] = out["rows"] / (out["s"] + start)
    return out


def actor_nice(result: dict) -> list[int]:
    """Niceness seen on the RayRunner's actor process (``ray::_Worker``)."""
    return sorted({nice for name, nice in result["worker_nice"] if name.startswith("ray::_Worker")})


def read_images(db: Path) -> list[bytes]:
    import lance

    ds = lance.dataset(str(db / f"{TABLE}.lance"))
    return ds.to_table(columns=["image_bytes"]).column("image_bytes").to_pylist()


def decode_for(bundle, data: bytes):
    from fashion_assets.features.images import decode_rgb

    return decode_rgb(data, draft_size=(2 * bundle.image_size, 2 * bundle.image_size))


def preprocess_all(bundle, images: list[bytes]):
    import torch

    from fashion_assets.features.images import decode_rgb

    draft = (2 * bundle.image_size, 2 * bundle.image_size)
    tensors = [bundle.preprocess(decode_rgb(b, draft_size=draft)) for b in images]
    return [torch.stack(tensors[i : i + BATCH]) for i in range(0, len(tensors), BATCH)]


def run_bare(bundle, batches) -> dict:
    import torch

    rows = sum(len(b) for b in batches)
    with torch.inference_mode(), TreeSampler(0.1) as sampler:
        t0 = time.perf_counter()
        for pixels in batches:
            bundle.model.encode_image(pixels)
        secs = time.perf_counter() - t0
    return {"s": secs, "rows": rows, "rate": rows / secs, "cpu_s": sampler.cpu_seconds}


def run_notebook(bundle, images: list[bytes]) -> dict:
    import torch
    from PIL import Image

    t0 = time.perf_counter()
    out = []
    with torch.inference_mode(), TreeSampler(0.1) as sampler:
        for data in images:
            image = Image.open(io.BytesIO(data)).convert("RGB")
            pixels = bundle.preprocess(image).unsqueeze(0)
            vec = torch.nn.functional.normalize(bundle.model.encode_image(pixels), dim=-1)
            out.append(vec[0].numpy())
    secs = time.perf_counter() - t0
    return {"s": secs, "rows": len(images), "rate": len(images) / secs, "cpu_s": sampler.cpu_seconds}


@contextlib.contextmanager
def instrumented(acc: dict[str, float]):
    """Time the product's stages, in this process only, by wrapping its own functions."""
    import fashion_assets.features.image_embedding as ie
    import fashion_assets.models.clip as clip_mod
    from fashion_assets.execution.checkpoints import CheckpointStore
    from fashion_assets.store.table import ProductTable

    def timed_(label, fn):
        return timed(acc, label, fn)

    def timed_gen_(label, fn):
        return timed_gen(acc, label, fn)

    orig_load = clip_mod.load_clip

    def load_and_wrap(*a, **k):
        t = time.perf_counter()
        bundle = orig_load(*a, **k)
        acc["model load (setup)"] += time.perf_counter() - t
        bundle.preprocess = timed_("preprocess (open_clip transforms)", bundle.preprocess)
        bundle.model.encode_image = timed_("infer (encode_image)", bundle.model.encode_image)
        return bundle

    saved = [
        (clip_mod, "load_clip", load_and_wrap),
        (ie, "decode_chunks", timed_gen_("decode (decode_chunks)", ie.decode_chunks)),
        (ProductTable, "read_fragment", timed_gen_("read fragment batches", ProductTable.read_fragment)),
        (ProductTable, "write_column_file", timed_("write column files", ProductTable.write_column_file)),
        (ProductTable, "commit_column_files", timed_("commit", ProductTable.commit_column_files)),
        (CheckpointStore, "save", timed_("checkpoint save", CheckpointStore.save)),
        (CheckpointStore, "load", timed_("checkpoint load", CheckpointStore.load)),
        (CheckpointStore, "clear", timed_("checkpoint clear", CheckpointStore.clear)),
    ]
    originals = [(obj, name, getattr(obj, name)) for obj, name, _ in saved]
    for obj, name, new in saved:
        setattr(obj, name, new)
    try:
        yield acc
    finally:
        for obj, name, old in originals:
            setattr(obj, name, old)


class TreeSampler:
    """Peak summed RSS of this process and all its descendants, sampled in a background thread; also the
    CPU seconds (user + system) the tree spent between enter and exit (last sample of each process)."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak = 0
        self.peak_procs = 0
        self.peak_by_kind: dict[str, int] = defaultdict(int)
        self.worker_nice: set[tuple[str, int]] = set()
        self._cpu_start: dict[int, float] = {}
        self._cpu_last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    @staticmethod
    def _kind(p: psutil.Process) -> str:
        try:
            name = p.name()
            if p.pid == os.getpid():
                return "driver"
            if name.startswith("ray::") or "default_worker" in " ".join(p.cmdline()[:3]):
                return "ray workers"
            return "ray services"
        except psutil.Error:
            return "gone"

    def sample(self) -> int:
        me = psutil.Process()
        total = 0
        kinds: dict[str, int] = defaultdict(int)
        procs = [me, *me.children(recursive=True)]
        for p in procs:
            try:
                rss = p.memory_info().rss
            except psutil.Error:
                continue
            total += rss
            kind = self._kind(p)
            kinds[kind] += rss
            with contextlib.suppress(psutil.Error):
                t = p.cpu_times()
                self._cpu_last[p.pid] = t.user + t.system
            if kind == "ray workers":
                with contextlib.suppress(psutil.Error):
                    self.worker_nice.add((p.name()[:24], p.nice()))
        if total > self.peak:
            self.peak, self.peak_procs = total, len(procs)
        for k, v in kinds.items():
            self.peak_by_kind[k] = max(self.peak_by_kind[k], v)
        return total

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(self.interval)

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds spent by the tree while sampled (processes born meanwhile count from zero)."""
        return sum(v - self._cpu_start.get(pid, 0.0) for pid, v in self._cpu_last.items())

    def __enter__(self) -> TreeSampler:
        self.sample()
        self._cpu_start = dict(self._cpu_last)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()


def memory_run(db: Path, feature, spec) -> dict:
    import ray

    from fashion_assets.execution.runners import RayRunner

    before = TreeSampler().sample()
    ray.init(**ray_options())
    try:
        time.sleep(1.0)
        idle = TreeSampler().sample()
        with TreeSampler() as s:
            out = run_e2e(db, feature, spec, RayRunner())
    finally:
        ray.shutdown()
    return {
        "before": before,
        "ray_idle": idle,
        "peak": s.peak,
        "procs": s.peak_procs,
        "by_kind": dict(s.peak_by_kind),
        "s": out["s"],
        "rows": out["rows"],
    }


def print_breakdowns(breakdowns: list[dict[str, float]], bare: list[float], rows: int) -> None:
    """The instrumented in-process runs: seconds per stage, medians over repetitions."""
    print("  InProcessRunner, instrumented (wrappers around the product's own functions):")
    other = "other (Arrow glue, normalise, numpy)"
    for bd in breakdowns:  # per repetition: total minus the named stages
        bd[other] = bd["total run_feature"] - sum(v for k, v in bd.items() if k != "total run_feature")
    keys = sorted(
        {k for b in breakdowns for k in b},
        key=lambda k: -statistics.median(b.get(k, 0) for b in breakdowns),
    )
    total = statistics.median(b["total run_feature"] for b in breakdowns)
    for key in keys:
        v = statistics.median(b.get(key, 0.0) for b in breakdowns)
        print(f"    {key:<40} {v:7.2f} s  {100 * v / total:5.1f}%  (medians per stage)")
    steady = [
        (rows / (bd["total run_feature"] - bd.get("model load (setup)", 0.0))) / b
        for bd, b in zip(breakdowns, bare, strict=True)
    ]
    print(
        f"  in-process, without its one-off model load: {statistics.median(steady):.2f}x bare "
        "(per repetition, median)"
    )


def mb(n: float) -> str:
    return f"{n / 2**20:,.0f}"


# ---- main ---------------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=256, help="rows for the ViT-B-32 throughput comparison")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument(
        "--notebook-rows",
        type=int,
        default=64,
        help="rows (the first ones of the same table) for the one-image-a-call loop, which is slow",
    )
    ap.add_argument("--mem-rows", default="2000,8000", help="table sizes for the memory part (TINY profile)")
    ap.add_argument("--mem-reps", type=int, default=2)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--skip-memory", action="store_true")
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temp dir, removed after)")
    ap.add_argument("--json-out", default=None, help="write the raw throughput results here")
    ap.add_argument(
        "--contenders",
        default=",".join(CONTENDERS),
        help="which contenders to run (ray and bare always run): fewer makes a long run at 4096 rows affordable",
    )
    args = ap.parse_args(argv)
    chosen = set(args.contenders.split(",")) | {"ray", "bare"}
    unknown = chosen - set(CONTENDERS)
    if unknown:
        ap.error(f"unknown contenders {sorted(unknown)}; choose from {','.join(CONTENDERS)}")

    import torch

    from fashion_assets.features.image_embedding import ImageEmbedding
    from fashion_assets.models.clip import load_clip
    from fashion_assets.models.device import save_random_checkpoint
    from fashion_assets.models.profiles import CLIP_CHECKPOINT_ENV, ModelProfile

    work = Path(args.workdir or tempfile.mkdtemp(prefix="image_embedding_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    runs = work / "runs"
    runs.mkdir(exist_ok=True)
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), cpus {os.cpu_count()}, "
        f"cuda {torch.cuda.is_available()}, load avg {os.getloadavg()[0]:.2f}"
    )

    if not args.skip_throughput:
        ckpt = work / "vit-b-32-random.pt"
        if not ckpt.exists():
            t = time.perf_counter()
            save_random_checkpoint("ViT-B-32", ckpt)
            print(f"wrote {ckpt} ({ckpt.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - t:.1f} s")
        os.environ[CLIP_CHECKPOINT_ENV] = str(ckpt)
        profile = ModelProfile.from_env()
        assert profile.clip.kind == "local" and profile.clip.model_name == "ViT-B-32", profile
        feature = ImageEmbedding(profile)
        spec = spec_for(feature)
        print(f"profile {profile.name}, clip {profile.clip.identity}, feature version {spec.version}")

        t = time.perf_counter()
        bundle = load_clip(profile.clip, "cpu")
        load_s = time.perf_counter() - t
        saved = torch.load(ckpt, map_location="cpu")
        loaded = bundle.model.state_dict()
        assert all(torch.equal(saved[k], loaded[k]) for k in saved), "checkpoint weights were not loaded"
        del saved, loaded
        print(
            f"model loaded through pretrained=<file> in {load_s:.1f} s, weights checked equal to the file; "
            f"image size {bundle.image_size}, embed dim {bundle.embed_dim}"
        )

        base = build_table(work, "throughput", args.rows, spec)
        images = read_images(base)
        t = time.perf_counter()
        batches = preprocess_all(bundle, images)
        print(
            f"table: {len(images)} rows (generated JPEGs), decode+preprocess of all rows for 'bare' "
            f"{time.perf_counter() - t:.2f} s (not timed)\n"
        )

        results: dict[str, list[dict]] = defaultdict(list)
        breakdowns: list[dict[str, float]] = []
        contenders = [c for c in CONTENDERS if c in chosen]
        for rep in range(args.reps):
            k = rep % len(contenders)
            order = contenders[k:] + contenders[:k]
            for name in order:
                if name == "ray":
                    db = fresh_copy(base, runs, f"ray-{rep}")
                    results["ray"].append(run_ray(db, ImageEmbedding(profile), spec))
                    shutil.rmtree(db)
                elif name == "ray0":
                    db = fresh_copy(base, runs, f"ray0-{rep}")
                    results["ray0"].append(run_ray(db, ImageEmbedding(profile), spec, worker_niceness=0))
                    shutil.rmtree(db)
                elif name == "inproc":
                    from fashion_assets.execution.runners import InProcessRunner

                    db = fresh_copy(base, runs, f"inproc-{rep}")
                    acc: dict[str, float] = defaultdict(float)
                    with instrumented(acc):
                        r = run_e2e(db, ImageEmbedding(profile), spec, InProcessRunner())
                    acc["total run_feature"] = r["s"]
                    breakdowns.append(dict(acc))
                    results["inproc"].append(r)
                    shutil.rmtree(db)
                elif name == "bare":
                    results["bare"].append(run_bare(bundle, batches))
                else:
                    results["notebook"].append(run_notebook(bundle, images[: args.notebook_rows]))
            print(
                f"rep {rep + 1}/{args.reps} (order {','.join(order)}): "
                + ", ".join(f"{n} {results[n][-1]['rate']:.2f} rows/s" for n in contenders)
                + f"; ray start {results['ray'][-1]['ray_start_s']:.1f} s; actor nice "
                + (
                    f"(default / RAY_worker_niceness=0) {actor_nice(results['ray'][-1])} / "
                    f"{actor_nice(results['ray0'][-1])}"
                    if "ray0" in chosen
                    else f"{actor_nice(results['ray'][-1])}"
                )
                + f"; load avg {os.getloadavg()[0]:.1f}"
            )

        bare = [r["rate"] for r in results["bare"]]
        bare_cpu = [r["rows"] / r["cpu_s"] for r in results["bare"]]
        labels = {
            "ray": "end to end: run_feature + RayRunner (Ray already up, as in the asset)",
            "ray+start": "end to end: the same + ray.init (dagster-ray LocalRay start)",
            "ray0": "end to end: RayRunner, Ray workers at nice 0 (RAY_worker_niceness=0)",
            "inproc": "end to end: run_feature + InProcessRunner",
            "bare": "bare model: encode_image on preprocessed batches of 32 (floor)",
            "notebook": f"notebook loop: decode + preprocess + encode, 1 image a call ({min(args.notebook_rows, args.rows)} rows)",
        }
        print(
            f"\nViT-B-32 (random weights, real architecture), {args.rows} rows, {args.reps} repetitions, "
            f"batch {BATCH}, checkpoint_size {CHECKPOINT_SIZE}; medians; x bare = median of per-repetition "
            "rate ratios. rows/CPU-s: rows per CPU second of the whole process tree (driver + Ray "
            "services + workers), less sensitive than wall time to other work on the machine"
        )
        print(f"{'contender':<72} {'rows/s':>7} {'s':>7} {'x bare':>7} {'rows/CPU-s':>11} {'x bare':>7}")
        for key, label in labels.items():
            if key.split("+")[0] not in chosen:
                continue
            rows = results["ray"] if key == "ray+start" else results[key]
            if key == "ray+start":
                rates = [r["rate_incl_ray_start"] for r in rows]
                secs = [r["s"] + r["ray_start_s"] for r in rows]
            else:
                rates = [r["rate"] for r in rows]
                secs = [r["s"] for r in rows]
            ratio = statistics.median(a / b for a, b in zip(rates, bare, strict=True))
            cpu = [r["rows"] / r["cpu_s"] for r in rows]
            cpu_ratio = statistics.median(a / b for a, b in zip(cpu, bare_cpu, strict=True))
            cpu_note = "" if key != "ray+start" else "  (ray.init CPU not counted)"
            print(
                f"{label:<72} {statistics.median(rates):>7.2f} {statistics.median(secs):>7.1f} {ratio:>6.2f}x"
                f" {statistics.median(cpu):>11.2f} {cpu_ratio:>6.2f}x{cpu_note}"
            )

        print("\nwhere the end-to-end seconds go (medians over repetitions):")
        for key in [k for k in ("ray", "ray0") if k in chosen]:
            rr = results[key]
            tot = statistics.median(r["s"] for r in rr)
            frag = statistics.median(r["compute_fragment_s"] for r in rr)
            print(
                f"  {key:<5} run_feature {tot:.1f} s = compute_fragment in the actor {frag:.1f} s "
                f"({args.rows / frag:.2f} rows/s, "
                f"{statistics.median(args.rows / r['compute_fragment_s'] / b for r, b in zip(rr, bare, strict=True)):.2f}x bare)"
                f" + the rest (actor start, model load, Ray calls, commits) {tot - frag:.1f} s; "
                f"peak RSS of the process tree {mb(statistics.median(r['peak_tree'] for r in rr))} MiB"
            )
        ray_rows = results["ray"] + results.get("ray0", [])
        print(
            f"  ray.init {statistics.median(r['ray_start_s'] for r in ray_rows):.1f} s (dagster-ray LocalRay, "
            f"before the asset body), ray.shutdown {statistics.median(r['ray_shutdown_s'] for r in ray_rows):.1f} s"
        )
        if breakdowns:
            print_breakdowns(breakdowns, bare, args.rows)
        bare_s = statistics.median(r["s"] for r in results["bare"])
        n = 4096
        for key in [k for k in ("ray", "ray0") if k in chosen and args.rows < n]:
            rr = results[key]
            fixed = [r["s"] - r["compute_fragment_s"] for r in rr]
            est = [
                (n / (f + r["compute_fragment_s"] / args.rows * n)) / b
                for f, r, b in zip(fixed, rr, bare, strict=True)
            ]
            print(
                f"  {key:<5} extrapolated to one full {n}-row fragment (its fixed {statistics.median(fixed):.1f} s "
                f"+ {n} x its per-row cost in the actor, per repetition): {statistics.median(est):.2f}x bare"
            )

        print("\npreprocessing, open_clip transforms on the decoded images, ms per image (3 alternations):")
        decoded = [decode_for(bundle, b) for b in images]
        timings: dict[int, list[float]] = defaultdict(list)
        saved_threads = torch.get_num_threads()
        for _ in range(3):
            for threads in (saved_threads, 1):
                torch.set_num_threads(threads)
                t = time.perf_counter()
                for image in decoded:
                    bundle.preprocess(image)
                timings[threads].append((time.perf_counter() - t) / len(decoded) * 1000)
        torch.set_num_threads(saved_threads)
        for threads, ms in timings.items():
            print(
                f"  torch threads {threads}: {statistics.median(ms):.2f} ms/image (runs: "
                + ", ".join(f"{m:.2f}" for m in ms)
                + ")"
            )
        if args.json_out:
            import json

            Path(args.json_out).write_text(
                json.dumps({"results": results, "breakdowns": breakdowns, "preprocess_ms": timings}, indent=1)
            )
        ratio_ray = statistics.median(r["rate"] / b for r, b in zip(results["ray"], bare, strict=True))
        print(
            f"\ntarget: end to end (RayRunner, as the product runs it) >= {TARGET}x bare: {ratio_ray:.2f}x -> "
            f"{'MET' if ratio_ray >= TARGET else 'MISSED'} (bare {bare_s:.1f} s for {args.rows} rows)"
        )
        del bundle, batches

    if not args.skip_memory and not args.skip_throughput:
        # a fresh interpreter: this one has held ViT-B-32 models, which its allocator does not give back
        import subprocess

        cmd = [
            sys.executable,
            __file__,
            "--skip-throughput",
            "--mem-rows",
            args.mem_rows,
            "--mem-reps",
            str(args.mem_reps),
            "--workdir",
            str(work),
        ]
        env = {k: v for k, v in os.environ.items() if k != CLIP_CHECKPOINT_ENV}
        print(flush=True)
        subprocess.run(cmd, check=True, env=env)
    elif not args.skip_memory:
        os.environ.pop(CLIP_CHECKPOINT_ENV, None)
        tiny = ModelProfile.named("tiny")
        feature = ImageEmbedding(tiny)
        spec = spec_for(feature)
        sizes = [int(x) for x in args.mem_rows.split(",")]
        bases = {n: build_table(work, f"mem{n}", n, spec) for n in sizes}
        mem: dict[int, list[dict]] = defaultdict(list)
        for rep in range(args.mem_reps):
            for n in sizes if rep % 2 == 0 else sizes[::-1]:
                db = fresh_copy(bases[n], runs, f"mem{n}-{rep}")
                mem[n].append(memory_run(db, ImageEmbedding(tiny), spec))
                shutil.rmtree(db)
                m = mem[n][-1]
                print(
                    f"memory rep {rep + 1}: {n} rows: peak {mb(m['peak'])} MiB over {m['procs']} processes "
                    f"({m['s']:.1f} s)"
                )
        print(
            f"\nmemory, TINY profile (fashion-tiny-clip), RayRunner, fragments of 4096 rows; RSS summed over "
            f"the process tree (driver + Ray services + workers; shared pages counted in every process mapping them, so an over-estimate); "
            f"medians of {args.mem_reps}"
        )
        print(
            f"{'rows':>6} {'fragments':>9} {'driver before Ray':>18} {'Ray idle':>9} {'peak tree':>10} "
            f"{'peak driver':>12} {'peak workers':>13} {'peak services':>14} {'run s':>6}"
        )
        for n in sizes:
            rs = mem[n]

            def med(f, rs=rs):
                return statistics.median(f(r) for r in rs)

            print(
                f"{n:>6} {(n + 4095) // 4096:>9} {mb(med(lambda r: r['before'])):>18} "
                f"{mb(med(lambda r: r['ray_idle'])):>9} {mb(med(lambda r: r['peak'])):>10} "
                f"{mb(med(lambda r: r['by_kind'].get('driver', 0))):>12} "
                f"{mb(med(lambda r: r['by_kind'].get('ray workers', 0))):>13} "
                f"{mb(med(lambda r: r['by_kind'].get('ray services', 0))):>14} {med(lambda r: r['s']):>6.1f}"
            )
        lo, hi = sizes[0], sizes[-1]
        growth = statistics.median(r["peak"] for r in mem[hi]) - statistics.median(r["peak"] for r in mem[lo])
        print(
            f"peak growth from {lo} to {hi} rows: {growth / 2**20:+,.0f} MiB "
            f"({growth / statistics.median(r['peak'] for r in mem[lo]) * 100:+.1f}%)"
        )

    if not args.workdir:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
