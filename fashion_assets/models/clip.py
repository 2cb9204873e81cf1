"""Loading an open_clip model for a ClipSpec: the image and text encoders behind the embedding features."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import open_clip
import torch
from PIL import Image

from fashion_assets.models.profiles import (
    CLIP_CHECKPOINT_ENV,
    CONFIG_DIR,
    HUB,
    LOCAL,
    RANDOM,
    TINY_CLIP_MODEL,
    TINY_SEED,
    ClipSpec,
    ModelUnavailableError,
    fetch_from_hub,
    ways_out,
)

_register_lock = threading.Lock()


@dataclass
class ClipBundle:
    """A loaded CLIP: the model (eval mode, on ``device``), its image preprocessing and its tokenizer."""

    model: torch.nn.Module
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    device: str
    spec: ClipSpec

    @property
    def image_size(self) -> int:
        """The side, in pixels, of the square images the model sees."""
        size = self.model.visual.image_size
        return int(size[0] if isinstance(size, tuple | list) else size)

    @property
    def embed_dim(self) -> int:
        """Length of the image and text embeddings (512 for ViT-B-32 and the tiny model)."""
        return int(self.model.visual.output_dim)


def register_tiny_config() -> None:
    """Make open_clip know the tiny model's config (``configs/fashion-tiny-clip.json``). Idempotent."""
    with _register_lock:
        if TINY_CLIP_MODEL not in open_clip.list_models():
            open_clip.add_model_config(CONFIG_DIR / f"{TINY_CLIP_MODEL}.json")


def create_random_clip(model_name: str, seed: int = TINY_SEED) -> tuple[torch.nn.Module, Callable]:
    """(model, eval preprocess) for ``model_name`` with random weights from ``seed``, on the CPU.

    The global torch RNG is left as it was.
    """
    register_tiny_config()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=None, device="cpu"
        )
    return model, preprocess


def _create_pretrained(spec: ClipSpec, cache_dir: str | None) -> tuple[torch.nn.Module, Callable]:
    # open_clip initialises every weight at random, then loads the checkpoint over them with strict=True (a
    # weight the file lacks is an error, never left as it was). That initialisation is wasted: about 0.9 s of
    # ViT-B-32 on 2 CPU cores, paid by every Ray worker of every run. transformers' no_init_weights makes
    # torch's init functions no-ops while the model is built, and puts them back after.
    from transformers.initialization import no_init_weights

    with no_init_weights():
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec.model_name, pretrained=spec.pretrained, device="cpu", cache_dir=cache_dir
        )
    return model, preprocess


def load_clip(spec: ClipSpec, device: str = "cpu", *, cache_dir: str | None = None) -> ClipBundle:
    """Load the CLIP ``spec`` names onto ``device``, in eval mode.

    Hub weights come from the cache when present, otherwise are downloaded (to ``cache_dir`` if given).
    Raises ModelUnavailableError (never falls back to another model) when they cannot be had.
    """
    if spec.kind == RANDOM:
        model, preprocess = create_random_clip(spec.model_name)
    elif spec.kind == LOCAL:
        register_tiny_config()  # a local checkpoint may be of the tiny architecture (tests, benchmarks)
        try:
            model, preprocess = _create_pretrained(spec, cache_dir)
        except Exception as exc:
            raise ModelUnavailableError(
                f"CLIP checkpoint {spec.pretrained!r} could not be loaded as {spec.model_name} "
                f"({type(exc).__name__}: {exc}). "
                + ways_out(CLIP_CHECKPOINT_ENV, f"an open_clip {spec.model_name} checkpoint file")
            ) from exc
    elif spec.kind == HUB:
        model, preprocess = fetch_from_hub(
            lambda: _create_pretrained(spec, cache_dir),
            what=f"open_clip model {spec.model_name} with pretrained weights {spec.pretrained!r}",
            path_env=CLIP_CHECKPOINT_ENV,
            path_what=f"a local open_clip {spec.model_name} checkpoint file",
        )
    else:
        raise ValueError(f"unknown CLIP spec kind {spec.kind!r}")
    model = model.to(device).eval()
    tokenizer = open_clip.get_tokenizer(spec.model_name)
    return ClipBundle(model, preprocess, tokenizer, device, spec)
