"""Which models the features use: a profile naming one CLIP and one BLIP, read from the environment.

Profiles:

- ``pretrained`` (default): open_clip ``ViT-B-32`` with the ``laion2b_s34b_b79k`` weights and BLIP
  ``Salesforce/blip-image-captioning-base``, downloaded from the Hugging Face Hub on first use and cached.
- ``tiny``: the same model classes built from small configs shipped in ``configs/``, with random weights
  seeded so every load gives the same model. Offline and fast: for tests and trying things out.

Local paths override the profile, model by model: ``FASHION_CLIP_CHECKPOINT`` (an open_clip checkpoint
file, loaded through open_clip's ``pretrained=<file>``, architecture ``FASHION_CLIP_MODEL``, default
``ViT-B-32``) and ``FASHION_BLIP_PATH`` (a folder written by ``save_pretrained`` for the model and processor).

Every spec has an ``identity`` that feature versions include, so switching model makes features stale.
Importing this module imports no ML library: profiles are cheap to build and to pickle (they travel to
Ray workers). The Hub helpers at the end (used by the loaders) import huggingface_hub when called.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

PROFILE_ENV = "FASHION_MODEL_PROFILE"
CLIP_CHECKPOINT_ENV = "FASHION_CLIP_CHECKPOINT"
CLIP_MODEL_ENV = "FASHION_CLIP_MODEL"
BLIP_PATH_ENV = "FASHION_BLIP_PATH"

PRETRAINED = "pretrained"
TINY = "tiny"
PROFILE_NAMES: tuple[str, ...] = (PRETRAINED, TINY)
DEFAULT_PROFILE = PRETRAINED

CLIP_MODEL = "ViT-B-32"
CLIP_PRETRAINED_TAG = "laion2b_s34b_b79k"
BLIP_MODEL_ID = "Salesforce/blip-image-captioning-base"

CONFIG_DIR = Path(__file__).parent / "configs"
TINY_CLIP_MODEL = "fashion-tiny-clip"  # open_clip model name = stem of configs/fashion-tiny-clip.json
TINY_CLIP_IDENTITY = "tiny-clip-v1"  # bump when the tiny config or seed changes
TINY_BLIP_IDENTITY = "tiny-blip-v1"
TINY_SEED = 0

# Which kind of source a spec loads from.
HUB = "hub"  # download by name (open_clip tag / Hugging Face id), cached
RANDOM = "random"  # random weights from a config, seeded
LOCAL = "local"  # a file or folder on disk


class ModelUnavailableError(RuntimeError):
    """A model could not be loaded (no network, unknown name, missing or broken local file).

    The message names the model and the ways out: the ``tiny`` profile and the local-path variable.
    """


def ways_out(path_env: str, what: str) -> str:
    """The sentence every load failure ends with: how to run without this download."""
    return (
        f"To run without it, set {PROFILE_ENV}=tiny (small random-weight models, offline) "
        f"or point {path_env} at {what}."
    )


_SAMPLE_BYTES = 1 << 20


def fingerprint(files: list[Path], root: Path | None = None) -> str:
    """A short hash of files' names, sizes and first and last MiB: tells two same-sized checkpoints apart
    (weights differ everywhere) in milliseconds, without reading gigabytes, and survives copying."""
    digest = hashlib.sha256()
    for file in sorted(files):
        size = file.stat().st_size
        digest.update(f"{file.relative_to(root) if root else file.name}:{size}\n".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(_SAMPLE_BYTES))
            if size > 2 * _SAMPLE_BYTES:
                handle.seek(size - _SAMPLE_BYTES)
                digest.update(handle.read(_SAMPLE_BYTES))
    return digest.hexdigest()[:10]


@dataclass(frozen=True)
class ClipSpec:
    """One open_clip model: the architecture (``model_name``), where its weights come from, its identity.

    ``pretrained`` is what open_clip's ``pretrained=`` gets: a tag for ``hub``, a file path for ``local``,
    None for ``random``.
    """

    kind: str
    model_name: str
    pretrained: str | None
    identity: str

    @classmethod
    def hub(cls, model_name: str = CLIP_MODEL, tag: str = CLIP_PRETRAINED_TAG) -> ClipSpec:
        """Weights published under an open_clip tag (downloaded on first use)."""
        return cls(HUB, model_name, tag, f"{model_name}/{tag}")

    @classmethod
    def tiny(cls) -> ClipSpec:
        """A small CLIP (512-d embeddings like ViT-B-32) with seeded random weights."""
        return cls(RANDOM, TINY_CLIP_MODEL, None, TINY_CLIP_IDENTITY)

    @classmethod
    def local(cls, path: str | os.PathLike[str], model_name: str = CLIP_MODEL) -> ClipSpec:
        """An open_clip checkpoint file for ``model_name``; identity ``local:<file name>+<size>+<fingerprint>``."""
        file = Path(path)
        if not file.is_file():
            raise ModelUnavailableError(
                f"CLIP checkpoint {str(file)!r} ({CLIP_CHECKPOINT_ENV}) is not a file. "
                + ways_out(CLIP_CHECKPOINT_ENV, f"an open_clip {model_name} checkpoint file")
            )
        arch = "" if model_name == CLIP_MODEL else f"{model_name}/"
        identity = f"local:{arch}{file.name}+{file.stat().st_size}+{fingerprint([file])}"
        return cls(LOCAL, model_name, str(file), identity)


@dataclass(frozen=True)
class BlipSpec:
    """One BLIP captioning model: where it comes from (Hub id, folder, None for tiny) and its identity."""

    kind: str
    source: str | None
    identity: str

    @classmethod
    def hub(cls, model_id: str = BLIP_MODEL_ID) -> BlipSpec:
        """A model on the Hugging Face Hub (downloaded on first use)."""
        return cls(HUB, model_id, model_id)

    @classmethod
    def tiny(cls) -> BlipSpec:
        """A small BlipForConditionalGeneration with seeded random weights and a small vocabulary."""
        return cls(RANDOM, None, TINY_BLIP_IDENTITY)

    @classmethod
    def local(cls, path: str | os.PathLike[str]) -> BlipSpec:
        """A folder holding a model and processor written by ``save_pretrained``; identity
        ``local:<folder name>+<total size>+<fingerprint>``."""
        folder = Path(path)
        if not (folder / "config.json").is_file():
            raise ModelUnavailableError(
                f"BLIP folder {str(folder)!r} ({BLIP_PATH_ENV}) holds no config.json. "
                + ways_out(BLIP_PATH_ENV, "a folder written by save_pretrained (model and processor)")
            )
        files = [f for f in folder.rglob("*") if f.is_file()]
        size = sum(f.stat().st_size for f in files)
        return cls(LOCAL, str(folder), f"local:{folder.name}+{size}+{fingerprint(files, folder)}")


@dataclass(frozen=True)
class ModelProfile:
    """The models every feature of a run uses. Frozen and picklable; loads nothing itself."""

    name: str
    clip: ClipSpec
    blip: BlipSpec

    @property
    def identity(self) -> str:
        """Both models' identities, for run metadata."""
        return f"clip={self.clip.identity};blip={self.blip.identity}"

    @classmethod
    def named(cls, name: str) -> ModelProfile:
        """The ``pretrained`` or ``tiny`` profile, without local-path overrides."""
        if name == PRETRAINED:
            return cls(PRETRAINED, ClipSpec.hub(), BlipSpec.hub())
        if name == TINY:
            return cls(TINY, ClipSpec.tiny(), BlipSpec.tiny())
        raise ValueError(f"unknown model profile {name!r}: expected one of {', '.join(PROFILE_NAMES)}")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ModelProfile:
        """The profile named by ``FASHION_MODEL_PROFILE`` (default ``pretrained``), with the models given by
        ``FASHION_CLIP_CHECKPOINT`` / ``FASHION_BLIP_PATH`` (when set) replacing the profile's."""
        env = os.environ if environ is None else environ
        name = env.get(PROFILE_ENV, "").strip().lower() or DEFAULT_PROFILE
        if name not in PROFILE_NAMES:
            raise ValueError(
                f"{PROFILE_ENV}={env.get(PROFILE_ENV)!r} is not a model profile: "
                f"expected one of {', '.join(PROFILE_NAMES)}"
            )
        profile = cls.named(name)
        clip, blip = profile.clip, profile.blip
        if checkpoint := env.get(CLIP_CHECKPOINT_ENV, "").strip():
            clip = ClipSpec.local(checkpoint, env.get(CLIP_MODEL_ENV, "").strip() or CLIP_MODEL)
        if folder := env.get(BLIP_PATH_ENV, "").strip():
            blip = BlipSpec.local(folder)
        return cls(name, clip, blip)


# --- Hub access ------------------------------------------------------------------------------------------
# Hugging Face Hub downloads retry for ~25 s per file when the network is down (~50 s for one open_clip
# model). A load therefore tries the local cache first (no network at all), then checks once, with a short
# timeout, that the Hub answers, and only then downloads; otherwise it fails at once, naming the ways out.

HUB_PROBE_TIMEOUT_S = 5.0
_TRUE = {"1", "ON", "YES", "TRUE"}

T = TypeVar("T")


def hub_offline_requested() -> bool:
    """True when ``HF_HUB_OFFLINE`` (or ``TRANSFORMERS_OFFLINE``) asks for cache-only loading."""
    import huggingface_hub.constants as hub_constants

    flags = (os.environ.get("HF_HUB_OFFLINE", ""), os.environ.get("TRANSFORMERS_OFFLINE", ""))
    return bool(hub_constants.HF_HUB_OFFLINE) or any(f.strip().upper() in _TRUE for f in flags)


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether the Hub endpoint answers one request within ``timeout`` seconds (any HTTP status counts)."""
    import urllib.error
    import urllib.request

    import huggingface_hub.constants as hub_constants

    try:
        request = urllib.request.Request(hub_constants.ENDPOINT, method="HEAD")
        with urllib.request.urlopen(request, timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (OSError, ValueError):
        return False


_cache_only_lock = threading.Lock()


class _CacheOnly:
    """Within this block, Hugging Face Hub calls use the local cache and never the network.

    It flips huggingface_hub's process-wide offline flag, so blocks are serialised by a lock (two threads
    interleaving the save and restore could leave the process offline).
    """

    def __enter__(self) -> None:
        import huggingface_hub.constants as hub_constants

        _cache_only_lock.acquire()
        self._constants = hub_constants
        self._saved = hub_constants.HF_HUB_OFFLINE
        hub_constants.HF_HUB_OFFLINE = True

    def __exit__(self, *exc: object) -> None:
        self._constants.HF_HUB_OFFLINE = self._saved
        _cache_only_lock.release()


def fetch_from_hub(load: Callable[[], T], what: str, path_env: str, path_what: str) -> T:
    """Run ``load`` (which may download ``what``) from the cache if possible, else from the Hub.

    Raises ModelUnavailableError, quickly, when the model is neither cached nor downloadable.
    """
    try:
        with _CacheOnly():
            return load()
    except Exception as exc:  # not cached (or cache unusable): try the network if we may
        cache_error: Exception = exc
    reason = None
    if hub_offline_requested():
        reason = "it is not in the local cache and HF_HUB_OFFLINE is set"
    elif not hub_reachable():
        reason = "it is not in the local cache and the Hugging Face Hub cannot be reached (no network?)"
    if reason:
        cause = (str(cache_error).strip().splitlines() or [type(cache_error).__name__])[0][:200]
        message = f"{what} is unavailable: {reason}. {ways_out(path_env, path_what)} Cause: {cause}"
        raise ModelUnavailableError(message) from cache_error
    try:
        return load()
    except Exception as exc:
        raise ModelUnavailableError(
            f"{what} could not be downloaded ({type(exc).__name__}: {exc}). " + ways_out(path_env, path_what)
        ) from exc
