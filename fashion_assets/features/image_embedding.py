"""CLIP image embeddings of the product photos."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from fashion_assets.features.base import FeatureOutput, RowError
from fashion_assets.features.images import decode_chunks
from fashion_assets.features.model_feature import ClipFeature
from fashion_assets.models.profiles import ModelProfile

if TYPE_CHECKING:
    from fashion_assets.models.clip import ClipBundle

EMBEDDING_DIM = 512


def vectors_to_arrow(vectors: np.ndarray, valid: np.ndarray) -> pa.FixedSizeListArray:
    """Rows of ``vectors`` (n x dim) as a fixed-size float32 list array, null where ``valid`` is False."""
    n, dim = vectors.shape
    flat = pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(n * dim))
    return pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(~valid))


def check_embed_dim(bundle: ClipBundle) -> None:
    """Refuse a CLIP whose embeddings would not fit the 512-float column."""
    if bundle.embed_dim != EMBEDDING_DIM:
        raise ValueError(
            f"CLIP {bundle.spec.identity} makes {bundle.embed_dim}-d embeddings; "
            f"the column holds {EMBEDDING_DIM}"
        )


class ImageEmbedding(ClipFeature):
    """CLIP image embedding of `image_bytes`: 512 floats, L2-normalised (cosine similarity = dot product).
    Computed by the profile's open_clip model (ViT-B-32 laion2b_s34b_b79k by default). Null where the
    image cannot be decoded (empty, not an image, truncated, too large), with the reason recorded."""

    name = "image_embedding"
    inputs = ("image_bytes",)
    output_type = pa.list_(pa.float32(), EMBEDDING_DIM)
    description = __doc__ or ""

    def __init__(
        self, profile: ModelProfile | None = None, *, batch_size: int = 32, device: str | None = None
    ) -> None:
        super().__init__(profile, batch_size=batch_size, device=device)

    def compute(self, batch: pa.RecordBatch) -> FeatureOutput:
        return self.infer(self.prepare(batch))

    def prepare(self, batch: pa.RecordBatch) -> _Prepared:
        """Decode and preprocess the images (runs beside the model, on the previous batch)."""
        self.setup()
        bundle = self._bundle
        assert bundle is not None
        prepared = _Prepared(batch.num_rows, [], [], [])
        draft = (2 * bundle.image_size, 2 * bundle.image_size)
        for chunk in decode_chunks(batch.column("image_bytes"), self.batch_size, draft_size=draft):
            prepared.errors.extend(chunk.errors)
            for index, image in zip(chunk.indices, chunk.images, strict=True):
                try:
                    prepared.tensors.append(bundle.preprocess(image))
                    prepared.indices.append(index)
                except Exception as exc:  # a picture the transforms cannot take: that row only
                    prepared.errors.append(
                        RowError(index, f"preprocessing failed: {type(exc).__name__}: {exc}")
                    )
        return prepared

    def infer(self, prepared: _Prepared) -> FeatureOutput:
        """Embed the preprocessed images, ``batch_size`` at a time, and L2-normalise."""
        import torch

        self.setup()
        bundle = self._bundle
        assert bundle is not None
        vectors = np.zeros((prepared.rows, EMBEDDING_DIM), dtype=np.float32)
        valid = np.zeros(prepared.rows, dtype=bool)
        for start in range(0, len(prepared.tensors), self.batch_size):
            indices = prepared.indices[start : start + self.batch_size]
            with torch.inference_mode():
                pixels = torch.stack(prepared.tensors[start : start + self.batch_size])
                features = bundle.model.encode_image(pixels.to(bundle.device, non_blocking=True))
                features = torch.nn.functional.normalize(features.float(), dim=-1)
            vectors[indices] = features.cpu().numpy()
            valid[indices] = True
        errors = sorted(prepared.errors, key=lambda e: e.index)
        return FeatureOutput(vectors_to_arrow(vectors, valid), errors)


@dataclass
class _Prepared:
    """Preprocessed pixels of a batch: which rows they belong to, and the rows that failed."""

    rows: int
    indices: list[int]
    tensors: list[Any]
    errors: list[RowError]
