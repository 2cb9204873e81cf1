"""Tests for image decoding and the model features (tiny profile: offline, random weights, fast)."""

from __future__ import annotations

import io
import pickle
import time
from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from fashion_assets.features.base import FeatureOutput
from fashion_assets.features.caption import Caption
from fashion_assets.features.caption_embedding import CaptionEmbedding
from fashion_assets.features.image_embedding import ImageEmbedding
from fashion_assets.features.images import MAX_PIXELS, ImageDecodeError, decode_chunks, decode_rgb
from fashion_assets.models.profiles import PROFILE_ENV, ModelProfile
from tests.images import (
    BAD_IMAGES,
    GOOD_IMAGES,
    bomb_png,
    i16_png,
    la_png,
    palette_transparent_png,
    rgb_jpeg,
    rgba_png,
)

TINY = ModelProfile.named("tiny")
EMBEDDING_TYPE = pa.list_(pa.float32(), 512)


def image_batch(images: list[bytes | None]) -> pa.RecordBatch:
    return pa.record_batch(
        {"id": pa.array(range(len(images)), pa.int64()), "image_bytes": pa.array(images, pa.binary())}
    )


def caption_batch(captions: list[str | None]) -> pa.RecordBatch:
    return pa.record_batch(
        {"id": pa.array(range(len(captions)), pa.int64()), "caption": pa.array(captions, pa.string())}
    )


def vectors(out: FeatureOutput) -> list[np.ndarray | None]:
    return [None if v is None else np.asarray(v, dtype=np.float32) for v in out.values.to_pylist()]


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models are all small ops: on a busy 2-core machine extra threads only wait on each other
    (beam search ran 6x slower with 2 threads under load)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def image_embedding() -> ImageEmbedding:
    feature = ImageEmbedding(TINY)
    feature.setup()
    return feature


@pytest.fixture(scope="module")
def caption() -> Caption:
    feature = Caption(TINY)
    feature.setup()
    return feature


@pytest.fixture(scope="module")
def caption_embedding() -> CaptionEmbedding:
    feature = CaptionEmbedding(TINY)
    feature.setup()
    return feature


# --- decoding ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(GOOD_IMAGES))
def test_every_good_image_decodes_to_rgb(case: str) -> None:
    image = decode_rgb(GOOD_IMAGES[case]())
    assert image.mode == "RGB"
    assert image.width >= 1 and image.height >= 1


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_every_bad_image_is_refused_with_a_reason(case: str) -> None:
    with pytest.raises(ImageDecodeError) as info:
        decode_rgb(BAD_IMAGES[case]())
    assert info.value.reason


def test_none_is_refused() -> None:
    with pytest.raises(ImageDecodeError, match="no image bytes"):
        decode_rgb(None)


@pytest.mark.parametrize("maker", [rgba_png, la_png, palette_transparent_png])
def test_transparency_is_composited_on_white(maker: Callable[[], bytes]) -> None:
    source = Image.open(io.BytesIO(maker())).convert("RGBA")
    image = decode_rgb(maker())
    transparent = [
        xy
        for xy in ((x, y) for x in range(source.width) for y in range(source.height))
        if source.getpixel(xy)[3] == 0
    ]
    assert transparent, "the fixture must have fully transparent pixels"
    assert all(image.getpixel(xy) == (255, 255, 255) for xy in transparent[:50])


def test_sixteen_bit_grey_is_scaled_not_clipped() -> None:
    pixels = np.asarray(decode_rgb(i16_png()))
    assert pixels.min() == 0 and pixels.max() == 255
    assert len(np.unique(pixels[..., 0])) > 100  # a ramp, not a black-and-white cliff


def test_bomb_is_refused_from_the_header() -> None:
    start = time.monotonic()
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_rgb(bomb_png())  # 48M pixels: 2.3 GB as RGB if it were decoded
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_rgb(bomb_png(20_000, 20_000))
    assert time.monotonic() - start < 1.0
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_rgb(rgb_jpeg(), max_pixels=64 * 48 - 1)
    assert 8000 * 6000 > MAX_PIXELS > 4000 * 3000


def test_draft_decodes_large_jpegs_smaller_but_big_enough() -> None:
    image = decode_rgb(GOOD_IMAGES["large_4000x3000"](), draft_size=(448, 448))
    assert image.mode == "RGB" and min(image.size) >= 448 and image.size[0] < 4000


def test_decode_chunks_skips_nulls_and_records_failures() -> None:
    column = pa.array([rgb_jpeg(), None, b"", rgb_jpeg(seed=1), b"junk"], pa.binary())
    chunks = list(decode_chunks(column, 2))
    assert [c.indices for c in chunks] == [[0], [3], []]
    assert [e.index for c in chunks for e in c.errors] == [2, 4]


# --- image_embedding ---------------------------------------------------------------------------------------


def test_image_embedding_declaration() -> None:
    feature = ImageEmbedding(TINY)
    assert feature.name == "image_embedding"
    assert feature.inputs == ("image_bytes",)
    assert feature.output_type == EMBEDDING_TYPE
    assert feature.uses_model and feature.description
    assert feature.version == "1+tiny-clip-v1"
    assert ImageEmbedding(ModelProfile.named("pretrained")).version == "1+ViT-B-32/laion2b_s34b_b79k"


def test_model_features_pickle_before_and_after_setup(
    image_embedding: ImageEmbedding, caption: Caption
) -> None:
    for feature in (ImageEmbedding(TINY), Caption(TINY), CaptionEmbedding(TINY), image_embedding, caption):
        data = pickle.dumps(feature)
        assert len(data) < 10_000, "the model must not travel with the feature"
        clone = pickle.loads(data)
        assert (clone.name, clone.version, clone.profile) == (feature.name, feature.version, feature.profile)


def test_default_profile_comes_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PROFILE_ENV, "tiny")
    assert ImageEmbedding().version == "1+tiny-clip-v1"
    assert Caption().version == "1+tiny-blip-v1"
    assert CaptionEmbedding().version == "1+tiny-clip-v1"


def test_image_embeddings_are_512d_unit_and_deterministic(image_embedding: ImageEmbedding) -> None:
    batch = image_batch([rgb_jpeg(seed=s) for s in range(4)])
    first, second = image_embedding(batch), image_embedding(batch)
    assert first.values.type == EMBEDDING_TYPE and first.errors == []
    rows = vectors(first)
    assert all(v is not None and v.shape == (512,) for v in rows)
    assert np.allclose([np.linalg.norm(v) for v in rows], 1.0, atol=1e-5)
    assert first.values.equals(second.values)
    assert not np.allclose(rows[0], rows[1]), "different pictures, different embeddings"
    reloaded = ImageEmbedding(TINY)
    assert np.allclose(vectors(reloaded(batch))[0], rows[0], atol=1e-6)


def test_image_batch_equals_one_by_one(image_embedding: ImageEmbedding) -> None:
    images = [GOOD_IMAGES[name]() for name in sorted(GOOD_IMAGES)]
    together = vectors(image_embedding(image_batch(images)))
    for image, expected in zip(images, together, strict=True):
        alone = vectors(image_embedding(image_batch([image])))[0]
        assert np.allclose(alone, expected, atol=1e-5)


def test_image_embedding_chunks_by_batch_size() -> None:
    small = ImageEmbedding(TINY, batch_size=3)
    images = [rgb_jpeg(seed=s) for s in range(7)] + [b""]
    chunked = small(image_batch(images))
    whole = ImageEmbedding(TINY, batch_size=64)(image_batch(images))
    assert [e.index for e in chunked.errors] == [7]
    assert np.allclose(np.stack(vectors(chunked)[:7]), np.stack(vectors(whole)[:7]), atol=1e-5)


def test_every_image_mode_embeds(image_embedding: ImageEmbedding) -> None:
    names = sorted(GOOD_IMAGES)
    out = image_embedding(image_batch([GOOD_IMAGES[n]() for n in names]))
    assert out.errors == []
    assert out.values.null_count == 0
    assert np.allclose([np.linalg.norm(v) for v in vectors(out)], 1.0, atol=1e-5)


def test_bad_images_give_null_and_error_while_others_compute(image_embedding: ImageEmbedding) -> None:
    bad = sorted(BAD_IMAGES)
    images: list[bytes | None] = []
    for name in bad:
        images += [rgb_jpeg(seed=len(images)), BAD_IMAGES[name]()]
    images.append(None)
    out = image_embedding(image_batch(images))
    rows = vectors(out)
    bad_rows = [2 * i + 1 for i in range(len(bad))]
    assert [e.index for e in out.errors] == bad_rows, "a null input is not an error of this feature"
    assert all(e.reason for e in out.errors)
    assert all(rows[i] is None for i in bad_rows) and rows[-1] is None
    assert all(rows[2 * i] is not None for i in range(len(bad)))
    reasons = {bad[i]: out.errors[i].reason for i in range(len(bad))}
    assert "empty" in reasons["empty"]
    assert "not an image" in reasons["text"]
    assert "truncated" in reasons["truncated_jpeg"]
    assert "too large" in reasons["bomb"] and "too large" in reasons["huge_bomb"]


def test_all_bad_batch(image_embedding: ImageEmbedding) -> None:
    out = image_embedding(image_batch([b"", None]))
    assert out.values.null_count == 2 and out.values.type == EMBEDDING_TYPE
    assert [e.index for e in out.errors] == [0]


# --- caption -----------------------------------------------------------------------------------------------


def test_caption_declaration() -> None:
    feature = Caption(TINY)
    assert (feature.name, feature.inputs, feature.output_type) == ("caption", ("image_bytes",), pa.string())
    assert feature.uses_model and feature.description
    assert (feature.max_length, feature.num_beams) == (30, 3)
    assert feature.version == "1+tiny-blip-v1"
    assert Caption(TINY, max_length=20, num_beams=1).version == "1+tiny-blip-v1+len20+beams1"
    assert Caption(ModelProfile.named("pretrained")).version == "1+Salesforce/blip-image-captioning-base"


def test_captions_are_stripped_strings(caption: Caption) -> None:
    names = sorted(GOOD_IMAGES)
    out = caption(image_batch([GOOD_IMAGES[n]() for n in names]))
    assert out.errors == [] and out.values.type == pa.string()
    texts = out.values.to_pylist()
    assert all(isinstance(t, str) and t and t == t.strip() for t in texts)
    assert caption(image_batch([GOOD_IMAGES[n]() for n in names])).values.equals(out.values)


def test_caption_batch_equals_one_by_one(caption: Caption) -> None:
    images = [rgb_jpeg(seed=s) for s in range(3)]
    together = caption(image_batch(images)).values.to_pylist()
    assert together == [caption(image_batch([image])).values.to_pylist()[0] for image in images]


def test_caption_failures(caption: Caption) -> None:
    images = [rgb_jpeg(), BAD_IMAGES["truncated_jpeg"](), None, BAD_IMAGES["text"](), rgb_jpeg(seed=1)]
    out = caption(image_batch(images))
    texts = out.values.to_pylist()
    assert [e.index for e in out.errors] == [1, 3]
    assert texts[1] is None and texts[2] is None and texts[3] is None
    assert isinstance(texts[0], str) and isinstance(texts[4], str)


# --- caption_embedding -------------------------------------------------------------------------------------


def test_caption_embedding_declaration() -> None:
    feature = CaptionEmbedding(TINY)
    assert (feature.name, feature.inputs, feature.output_type) == (
        "caption_embedding",
        ("caption",),
        EMBEDDING_TYPE,
    )
    assert feature.uses_model and feature.version == "1+tiny-clip-v1"


def test_caption_embedding_nulls_and_empties(caption_embedding: CaptionEmbedding) -> None:
    out = caption_embedding(caption_batch(["a red dress", None, "", "   ", "blue jeans"]))
    rows = vectors(out)
    assert [e.index for e in out.errors] == [2, 3]
    assert all(e.reason == "empty caption" for e in out.errors)
    assert rows[1] is None and rows[2] is None and rows[3] is None
    assert np.allclose([np.linalg.norm(rows[0]), np.linalg.norm(rows[4])], 1.0, atol=1e-5)
    assert not np.allclose(rows[0], rows[4])


def test_caption_embedding_is_positional_and_chunked() -> None:
    feature = CaptionEmbedding(TINY, batch_size=2)
    texts = ["a red dress", "black shoes", "a red dress", "white shirt", "a red dress"]
    rows = vectors(feature(caption_batch(texts)))
    assert np.allclose(rows[0], rows[2], atol=1e-5) and np.allclose(rows[0], rows[4], atol=1e-5)
    assert np.allclose(rows[1], vectors(feature(caption_batch(["black shoes"])))[0], atol=1e-5)


def test_captions_feed_caption_embedding(caption: Caption, caption_embedding: CaptionEmbedding) -> None:
    captions = caption(image_batch([rgb_jpeg(), b"", rgb_jpeg(seed=2)]))
    out = caption_embedding(caption_batch(captions.values.to_pylist()))
    assert out.errors == []  # the failed image was recorded by caption, not again here
    assert [v is None for v in vectors(out)] == [False, True, False]
