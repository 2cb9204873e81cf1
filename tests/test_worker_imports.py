"""What a Ray worker imports before its model: every import there is paid again by every run's actor."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("lancedb", "dagster", "dagster_ray", "torch", "open_clip", "transformers")


def test_worker_code_path_imports_no_heavy_library() -> None:
    """Unpickling a worker's job loads the runners, the store and the feature classes. None of them may pull
    in LanceDB (about 0.9 s), Dagster, or a model library: the model is imported once, when it is loaded."""
    code = (
        "import sys\n"
        "import fashion_assets.execution.runners, fashion_assets.features.registry\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == [], f"imported on the worker's path: {out.stdout}"
