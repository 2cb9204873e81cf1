"""BLIP captions of the product photos."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from fashion_assets.features.base import Feature, FeatureOutput, RowError
from fashion_assets.features.images import decode_chunks
from fashion_assets.models.profiles import ModelProfile

if TYPE_CHECKING:
    from fashion_assets.models.blip import BlipBundle

DEFAULT_MAX_LENGTH = 30
DEFAULT_NUM_BEAMS = 3


class Caption(Feature):
    """A one-line English description of `image_bytes` written by BLIP (Salesforce/blip-image-captioning-base
    by default), beam search with 3 beams, at most 30 tokens. Null where the image cannot be decoded, with
    the reason recorded."""

    name = "caption"
    inputs = ("image_bytes",)
    output_type = pa.string()
    description = __doc__ or ""
    uses_model = True

    def __init__(
        self,
        profile: ModelProfile | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        num_beams: int = DEFAULT_NUM_BEAMS,
        *,
        batch_size: int = 16,
        device: str | None = None,
    ) -> None:
        self.profile = profile or ModelProfile.from_env()
        self.max_length = max_length
        self.num_beams = num_beams
        version = f"1+{self.profile.blip.identity}"
        if (max_length, num_beams) != (DEFAULT_MAX_LENGTH, DEFAULT_NUM_BEAMS):
            version += f"+len{max_length}+beams{num_beams}"
        self.version = version
        self.batch_size = batch_size
        self.device = device
        self._bundle: BlipBundle | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_bundle"] = None  # ship the recipe, not the model: the worker's setup() loads it
        return state

    def setup(self) -> None:
        """Load the BLIP model and processor once (on CUDA when present)."""
        if self._bundle is not None:
            return
        from fashion_assets.models.blip import load_blip
        from fashion_assets.models.device import pick_device

        self._bundle = load_blip(self.profile.blip, self.device or pick_device())

    def _image_side(self) -> int:
        """The side of the square the processor resizes images to (384 for BLIP base)."""
        assert self._bundle is not None
        size = self._bundle.processor.image_processor.size
        return int(size.get("height") or size.get("shortest_edge") or 384)

    def compute(self, batch: pa.RecordBatch) -> FeatureOutput:
        import torch

        self.setup()
        bundle = self._bundle
        assert bundle is not None
        values: list[str | None] = [None] * batch.num_rows
        errors: list[RowError] = []
        side = self._image_side()
        draft = (2 * side, 2 * side)
        for chunk in decode_chunks(batch.column("image_bytes"), self.batch_size, draft_size=draft):
            errors.extend(chunk.errors)
            if not chunk.images:
                continue
            inputs = bundle.processor(
                images=chunk.images, return_tensors="pt", input_data_format="channels_last"
            )
            pixels = inputs["pixel_values"].to(bundle.device, dtype=bundle.model.dtype, non_blocking=True)
            with torch.inference_mode():
                tokens = bundle.model.generate(
                    pixel_values=pixels, max_length=self.max_length, num_beams=self.num_beams
                )
            texts = bundle.processor.batch_decode(tokens, skip_special_tokens=True)
            for index, text in zip(chunk.indices, texts, strict=True):
                values[index] = text.strip()
        errors.sort(key=lambda e: e.index)
        return FeatureOutput(pa.array(values, pa.string()), errors)
