"""What every model feature shares: a model profile, a batch size, a device, a model loaded once per worker."""

from __future__ import annotations

import abc
from typing import Any

from fashion_assets.features.base import Feature
from fashion_assets.models.profiles import ModelProfile


class ModelFeature(Feature):
    """A feature holding a model. Pickles without the model (Ray ships the recipe); ``setup()`` loads it."""

    uses_model = True

    def __init__(
        self, profile: ModelProfile | None = None, *, batch_size: int = 32, device: str | None = None
    ) -> None:
        self.profile = profile or ModelProfile.from_env()
        self.batch_size = batch_size
        self.device = device
        self._bundle: Any = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_bundle"] = None  # ship the recipe, not the model: the worker's setup() loads it
        return state

    @abc.abstractmethod
    def load(self, device: str) -> Any:
        """Load and return the model bundle for ``device``."""

    def setup(self) -> None:
        """Load the model once (on CUDA when present)."""
        if self._bundle is not None:
            return
        from fashion_assets.models.device import pick_device

        self._bundle = self.load(self.device or pick_device())


class ClipFeature(ModelFeature):
    """A feature computed by the profile's CLIP model (image or text tower)."""

    def __init__(
        self, profile: ModelProfile | None = None, *, batch_size: int = 32, device: str | None = None
    ) -> None:
        super().__init__(profile, batch_size=batch_size, device=device)
        self.version = f"1+{self.profile.clip.identity}"

    def load(self, device: str) -> Any:
        from fashion_assets.features.image_embedding import check_embed_dim
        from fashion_assets.models.clip import load_clip

        bundle = load_clip(self.profile.clip, device)
        check_embed_dim(bundle)
        return bundle
