"""The features this project computes, and the version of each including what it is computed from."""

from __future__ import annotations

from collections.abc import Mapping

from fashion_assets.features.base import Feature
from fashion_assets.features.caption import Caption
from fashion_assets.features.caption_embedding import CaptionEmbedding
from fashion_assets.features.color_tags import ColorTags
from fashion_assets.features.image_embedding import ImageEmbedding
from fashion_assets.models.profiles import ModelProfile

# Dependency order: a feature comes after every feature it reads.
FEATURE_NAMES: tuple[str, ...] = ("color_tags", "image_embedding", "caption", "caption_embedding")


def build_features(profile: ModelProfile | None = None) -> dict[str, Feature]:
    """Every feature, in dependency order, with its models taken from ``profile`` (default: from env)."""
    profile = profile or ModelProfile.from_env()
    features: list[Feature] = [
        ColorTags(),
        ImageEmbedding(profile),
        Caption(profile),
        CaptionEmbedding(profile),
    ]
    return {f.name: f for f in features}


def lineage_version(features: Mapping[str, Feature], name: str) -> str:
    """The feature's own version plus, recursively, those of the features it reads.

    A new ``caption`` version changes ``caption_embedding``'s lineage version, so its values go stale too.
    """
    feature = features[name]
    parts = [feature.version]
    for dep in feature.inputs:
        if dep in features:
            parts.append(f"{dep}={lineage_version(features, dep)}")
    return "|".join(parts)


def upstream_features(features: Mapping[str, Feature], name: str) -> list[str]:
    """Features that ``name`` reads directly."""
    return [dep for dep in features[name].inputs if dep in features]
