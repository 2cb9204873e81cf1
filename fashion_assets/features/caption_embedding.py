"""CLIP text embeddings of the BLIP captions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from fashion_assets.features.base import FeatureOutput, RowError
from fashion_assets.features.image_embedding import EMBEDDING_DIM, vectors_to_arrow
from fashion_assets.features.model_feature import ClipFeature
from fashion_assets.models.profiles import ModelProfile

if TYPE_CHECKING:
    pass


class CaptionEmbedding(ClipFeature):
    """CLIP text embedding of `caption`: 512 floats, L2-normalised, in the same space as `image_embedding`
    (text-to-image search). Null where the caption is null (its failure is recorded on `caption`); null
    with an error where the caption is empty."""

    name = "caption_embedding"
    inputs = ("caption",)
    output_type = pa.list_(pa.float32(), EMBEDDING_DIM)
    description = __doc__ or ""

    def __init__(
        self, profile: ModelProfile | None = None, *, batch_size: int = 64, device: str | None = None
    ) -> None:
        super().__init__(profile, batch_size=batch_size, device=device)

    def compute(self, batch: pa.RecordBatch) -> FeatureOutput:
        import torch

        self.setup()
        bundle = self._bundle
        assert bundle is not None
        captions = batch.column("caption").to_pylist()
        n = len(captions)
        vectors = np.zeros((n, EMBEDDING_DIM), dtype=np.float32)
        valid = np.zeros(n, dtype=bool)
        errors: list[RowError] = []
        todo: list[tuple[int, str]] = []
        for index, text in enumerate(captions):
            if text is None:
                continue  # the caption feature already recorded why
            if not text.strip():
                errors.append(RowError(index, "empty caption"))
                continue
            todo.append((index, text.strip()))
        for start in range(0, len(todo), self.batch_size):
            part = todo[start : start + self.batch_size]
            indices = [index for index, _ in part]
            tokens = bundle.tokenizer([text for _, text in part])
            with torch.inference_mode():
                features = bundle.model.encode_text(tokens.to(bundle.device, non_blocking=True))
                features = torch.nn.functional.normalize(features.float(), dim=-1)
            vectors[indices] = features.cpu().numpy()
            valid[indices] = True
        return FeatureOutput(vectors_to_arrow(vectors, valid), errors)
