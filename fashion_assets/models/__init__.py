"""Models layer: which CLIP and BLIP to use (profiles) and how to load them.

Importing this package is cheap (no torch). Loaders live in ``fashion_assets.models.clip`` (``load_clip``)
and ``fashion_assets.models.blip`` (``load_blip``); the device choice in ``fashion_assets.models.device``.
"""

from __future__ import annotations

from fashion_assets.models.profiles import (
    BLIP_PATH_ENV,
    CLIP_CHECKPOINT_ENV,
    CLIP_MODEL_ENV,
    PROFILE_ENV,
    BlipSpec,
    ClipSpec,
    ModelProfile,
    ModelUnavailableError,
)

__all__ = [
    "BLIP_PATH_ENV",
    "CLIP_CHECKPOINT_ENV",
    "CLIP_MODEL_ENV",
    "PROFILE_ENV",
    "BlipSpec",
    "ClipSpec",
    "ModelProfile",
    "ModelUnavailableError",
]
