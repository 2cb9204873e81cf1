"""BLIP captions of the product photos."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pyarrow as pa

from fashion_assets.features.base import FeatureOutput, RowError
from fashion_assets.features.images import decode_chunks
from fashion_assets.features.model_feature import ModelFeature
from fashion_assets.models.profiles import ModelProfile

if TYPE_CHECKING:
    pass

DEFAULT_MAX_LENGTH = 30
DEFAULT_NUM_BEAMS = 3


class Caption(ModelFeature):
    """A one-line English description of `image_bytes` written by BLIP (Salesforce/blip-image-captioning-base
    by default), beam search with 3 beams, at most 30 tokens. Null where the image cannot be decoded, with
    the reason recorded."""

    name = "caption"
    inputs = ("image_bytes",)
    output_type = pa.string()
    description = __doc__ or ""

    def __init__(
        self,
        profile: ModelProfile | None = None,
        max_length: int = DEFAULT_MAX_LENGTH,
        num_beams: int = DEFAULT_NUM_BEAMS,
        *,
        batch_size: int = 16,
        device: str | None = None,
    ) -> None:
        super().__init__(profile, batch_size=batch_size, device=device)
        self.max_length = max_length
        self.num_beams = num_beams
        version = f"1+{self.profile.blip.identity}"
        if (max_length, num_beams) != (DEFAULT_MAX_LENGTH, DEFAULT_NUM_BEAMS):
            version += f"+len{max_length}+beams{num_beams}"
        self.version = version

    def load(self, device: str) -> Any:
        """Load the BLIP model and processor."""
        from fashion_assets.models.blip import load_blip

        return load_blip(self.profile.blip, device)

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
                if text.strip():
                    values[index] = text.strip()
                else:  # an empty caption is no caption: say so here, not as a caption_embedding failure
                    errors.append(RowError(index, "the model generated an empty caption"))
        errors.sort(key=lambda e: e.index)
        return FeatureOutput(pa.array(values, pa.string()), errors)
