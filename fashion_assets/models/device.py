"""Where models run (CUDA when present, else CPU) and a random-weight checkpoint writer for benchmarks."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from fashion_assets.models.profiles import TINY_SEED


@functools.cache
def pick_device() -> str:
    """``"cuda"`` when torch sees a GPU, else ``"cpu"``. Decided once per process."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def save_random_checkpoint(model_name: str, path: str | os.PathLike[str], seed: int = TINY_SEED) -> Path:
    """Write a state dict of the open_clip ``model_name`` with seeded random weights to ``path``.

    The file loads through open_clip's real ``pretrained=<file>`` path (``FASHION_CLIP_CHECKPOINT``), so a
    benchmark can run the full ViT-B-32 architecture offline. The tiny architecture works too.
    """
    import torch

    from fashion_assets.models.clip import create_random_clip

    model, _ = create_random_clip(model_name, seed)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), target)
    return target
