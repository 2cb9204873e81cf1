"""Colour tags: which of ten basic colours the product description names."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from fashion_assets.features.base import Feature, FeatureOutput

COLORS: tuple[str, ...] = (
    "black",
    "white",
    "red",
    "blue",
    "green",
    "yellow",
    "pink",
    "brown",
    "grey",
    "silver",
)
SEPARATOR = ", "


class ColorTags(Feature):
    """Colours named in `description` (black, white, red, blue, green, yellow, pink, brown, grey, silver),
    whole words, case-insensitive, comma-separated in that order; empty string when none."""

    name = "color_tags"
    version = "1"
    inputs = ("description",)
    output_type = pa.string()
    description = __doc__ or ""
    batch_size = 65536

    def compute(self, batch: pa.RecordBatch) -> FeatureOutput:
        text = pc.utf8_lower(batch.column("description"))
        masks = [
            pc.fill_null(pc.match_substring_regex(text, rf"\b{color}\b"), False).to_numpy(
                zero_copy_only=False
            )
            for color in COLORS
        ]
        nulls = text.is_null().to_numpy(zero_copy_only=False)
        values = [
            None if nulls[i] else SEPARATOR.join(c for c, m in zip(COLORS, masks, strict=True) if m[i])
            for i in range(len(text))
        ]
        return FeatureOutput(pa.array(values, pa.string()))
