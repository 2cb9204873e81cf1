"""Tests for the models layer: profiles from the environment, loading, offline failures, local paths."""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from fashion_assets.models import profiles
from fashion_assets.models.blip import BlipBundle, create_tiny_blip, load_blip
from fashion_assets.models.clip import ClipBundle, create_random_clip, load_clip
from fashion_assets.models.device import pick_device, save_random_checkpoint
from fashion_assets.models.profiles import (
    BLIP_PATH_ENV,
    CLIP_CHECKPOINT_ENV,
    CLIP_MODEL_ENV,
    PROFILE_ENV,
    TINY_CLIP_MODEL,
    BlipSpec,
    ClipSpec,
    ModelProfile,
    ModelUnavailableError,
)

FAST_FAILURE_S = 10.0


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Tiny models are all small ops: on a busy 2-core machine extra threads only wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (PROFILE_ENV, CLIP_CHECKPOINT_ENV, CLIP_MODEL_ENV, BLIP_PATH_ENV):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.fixture(scope="module")
def tiny_clip() -> ClipBundle:
    return load_clip(ClipSpec.tiny())


@pytest.fixture(scope="module")
def tiny_blip() -> BlipBundle:
    return load_blip(BlipSpec.tiny())


# --- profiles --------------------------------------------------------------------------------------------


def test_default_profile_is_pretrained(clean_env: pytest.MonkeyPatch) -> None:
    profile = ModelProfile.from_env()
    assert profile.name == "pretrained"
    assert profile.clip.identity == "ViT-B-32/laion2b_s34b_b79k"
    assert (profile.clip.model_name, profile.clip.pretrained) == ("ViT-B-32", "laion2b_s34b_b79k")
    assert profile.blip.identity == "Salesforce/blip-image-captioning-base"
    assert profile == ModelProfile.named("pretrained")


def test_tiny_profile_from_env(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(PROFILE_ENV, "tiny")
    profile = ModelProfile.from_env()
    assert profile == ModelProfile.named("tiny")
    assert profile.clip.identity == "tiny-clip-v1"
    assert profile.blip.identity == "tiny-blip-v1"


def test_identity_differs_between_profiles() -> None:
    pretrained, tiny = ModelProfile.named("pretrained"), ModelProfile.named("tiny")
    assert pretrained.clip.identity != tiny.clip.identity
    assert pretrained.blip.identity != tiny.blip.identity
    assert pretrained.identity != tiny.identity


def test_unknown_profile_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(PROFILE_ENV, "huge")
    with pytest.raises(ValueError, match="pretrained, tiny"):
        ModelProfile.from_env()
    with pytest.raises(ValueError):
        ModelProfile.named("huge")


def test_profiles_pickle(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    checkpoint = tmp_path / "model.pt"
    checkpoint.write_bytes(b"x" * 10)
    clean_env.setenv(CLIP_CHECKPOINT_ENV, str(checkpoint))
    for profile in (ModelProfile.named("pretrained"), ModelProfile.named("tiny"), ModelProfile.from_env()):
        assert pickle.loads(pickle.dumps(profile)) == profile


def test_local_paths_override_the_profile(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    checkpoint = tmp_path / "clip.pt"
    checkpoint.write_bytes(b"0123456789")
    blip_dir = tmp_path / "blip"
    blip_dir.mkdir()
    (blip_dir / "config.json").write_text("{}")
    clean_env.setenv(CLIP_CHECKPOINT_ENV, str(checkpoint))
    clean_env.setenv(BLIP_PATH_ENV, str(blip_dir))
    profile = ModelProfile.from_env()
    assert profile.name == "pretrained"
    assert (profile.clip.kind, profile.clip.model_name, profile.clip.pretrained) == (
        "local",
        "ViT-B-32",
        str(checkpoint),
    )
    assert profile.clip.identity.startswith("local:clip.pt+10+")
    assert (profile.blip.kind, profile.blip.source) == ("local", str(blip_dir))
    assert profile.blip.identity.startswith("local:blip+2+")
    assert ModelProfile.from_env() == profile

    checkpoint.write_bytes(b"9876543210")  # same name and size, other weights: features must go stale
    assert ModelProfile.from_env().clip.identity.startswith("local:clip.pt+10+")
    assert ModelProfile.from_env().clip.identity != profile.clip.identity
    (blip_dir / "config.json").write_text("[]")
    assert ModelProfile.from_env().blip.identity != profile.blip.identity
    clean_env.setenv(CLIP_MODEL_ENV, TINY_CLIP_MODEL)
    assert ModelProfile.from_env().clip.identity.startswith(f"local:{TINY_CLIP_MODEL}/clip.pt+10+")


def test_missing_local_paths_name_the_variable(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv(CLIP_CHECKPOINT_ENV, str(tmp_path / "nope.pt"))
    with pytest.raises(ModelUnavailableError, match=CLIP_CHECKPOINT_ENV):
        ModelProfile.from_env()
    clean_env.delenv(CLIP_CHECKPOINT_ENV)
    clean_env.setenv(BLIP_PATH_ENV, str(tmp_path))
    with pytest.raises(ModelUnavailableError, match=BLIP_PATH_ENV):
        ModelProfile.from_env()


# --- pretrained loading fails fast and clearly without the network -----------------------------------------


def _assert_ways_out(error: ModelUnavailableError, path_env: str, model: str) -> None:
    message = str(error)
    assert model in message
    assert f"{PROFILE_ENV}=tiny" in message
    assert path_env in message


@pytest.mark.parametrize("what", ["clip", "blip"])
def test_pretrained_offline_fails_fast(what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(profiles, "hub_reachable", lambda *a, **k: pytest.fail("must not touch the network"))
    profile = ModelProfile.named("pretrained")
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError) as info:
        if what == "clip":
            load_clip(profile.clip, cache_dir=str(tmp_path))
        else:
            load_blip(profile.blip, cache_dir=str(tmp_path))
    assert time.monotonic() - start < FAST_FAILURE_S
    if what == "clip":
        _assert_ways_out(info.value, CLIP_CHECKPOINT_ENV, "ViT-B-32")
    else:
        _assert_ways_out(info.value, BLIP_PATH_ENV, "Salesforce/blip-image-captioning-base")
    assert "HF_HUB_OFFLINE" in str(info.value)


@pytest.mark.parametrize("what", ["clip", "blip"])
def test_unreachable_hub_fails_fast(what: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(profiles, "hub_reachable", lambda *a, **k: False)
    profile = ModelProfile.named("pretrained")
    start = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="cannot be reached") as info:
        if what == "clip":
            load_clip(profile.clip, cache_dir=str(tmp_path))
        else:
            load_blip(profile.blip, cache_dir=str(tmp_path))
    assert time.monotonic() - start < FAST_FAILURE_S
    _assert_ways_out(info.value, CLIP_CHECKPOINT_ENV if what == "clip" else BLIP_PATH_ENV, "")


def test_unknown_hub_model_is_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="no-such-org/no-such-blip"):
        load_blip(BlipSpec.hub("no-such-org/no-such-blip"), cache_dir=str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="no_such_tag"):
        load_clip(ClipSpec.hub("ViT-B-32", "no_such_tag"), cache_dir=str(tmp_path))


def test_hub_probe_answers_quickly() -> None:
    start = time.monotonic()
    assert profiles.hub_reachable(timeout=2.0) in (True, False)
    assert time.monotonic() - start < 5.0


# --- tiny models -------------------------------------------------------------------------------------------


def test_tiny_clip_loads_eval_512d(tiny_clip: ClipBundle) -> None:
    assert not tiny_clip.model.training
    assert tiny_clip.embed_dim == 512
    assert tiny_clip.device == "cpu"
    tokens = tiny_clip.tokenizer(["a red dress"])
    with torch.inference_mode():
        text = tiny_clip.model.encode_text(tokens)
        image = tiny_clip.model.encode_image(torch.zeros(1, 3, tiny_clip.image_size, tiny_clip.image_size))
    assert text.shape == image.shape == (1, 512)


def test_tiny_weights_are_deterministic(tiny_clip: ClipBundle, tiny_blip: BlipBundle) -> None:
    rng_before = torch.random.get_rng_state()
    assert _same_weights(load_clip(ClipSpec.tiny()).model, tiny_clip.model)
    assert _same_weights(load_blip(BlipSpec.tiny()).model, tiny_blip.model)
    assert torch.equal(torch.random.get_rng_state(), rng_before), "loading must not move the global RNG"
    other, _ = create_random_clip(TINY_CLIP_MODEL, seed=1)
    assert not _same_weights(other, tiny_clip.model)


def test_tiny_blip_generates_words(tiny_blip: BlipBundle) -> None:
    assert not tiny_blip.model.training
    pixels = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        tokens = tiny_blip.model.generate(pixel_values=pixels, max_length=12, num_beams=2)
    texts = tiny_blip.processor.batch_decode(tokens, skip_special_tokens=True)
    assert len(texts) == 2 and all(isinstance(t, str) and t.strip() for t in texts)


# --- local paths -------------------------------------------------------------------------------------------


def test_local_clip_checkpoint_loads_through_open_clip(tmp_path: Path, clean_env: pytest.MonkeyPatch) -> None:
    path = save_random_checkpoint(TINY_CLIP_MODEL, tmp_path / "ckpt" / "model.pt", seed=3)
    clean_env.setenv(CLIP_CHECKPOINT_ENV, str(path))
    clean_env.setenv(CLIP_MODEL_ENV, TINY_CLIP_MODEL)
    spec = ModelProfile.from_env().clip
    assert spec.kind == "local" and spec.pretrained == str(path)
    normal = torch.nn.init.normal_
    bundle = load_clip(spec)  # built without open_clip's random init: every weight must come from the file
    assert torch.nn.init.normal_ is normal, "torch's init functions must be restored after the load"
    expected, _ = create_random_clip(TINY_CLIP_MODEL, seed=3)
    assert _same_weights(bundle.model, expected)
    assert not bundle.model.training


def test_broken_local_clip_checkpoint_is_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "model.pt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelUnavailableError) as info:
        load_clip(ClipSpec.local(path, TINY_CLIP_MODEL))
    _assert_ways_out(info.value, CLIP_CHECKPOINT_ENV, "model.pt")


def test_local_blip_folder(tmp_path: Path, tiny_blip: BlipBundle, clean_env: pytest.MonkeyPatch) -> None:
    model, processor = create_tiny_blip()
    model.save_pretrained(tmp_path / "blip")
    processor.save_pretrained(tmp_path / "blip")
    clean_env.setenv(BLIP_PATH_ENV, str(tmp_path / "blip"))
    spec = ModelProfile.from_env().blip
    assert spec.kind == "local" and spec.identity.startswith("local:blip+")
    bundle = load_blip(spec)
    assert _same_weights(bundle.model, tiny_blip.model)
    pixels = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        ours = bundle.model.generate(pixel_values=pixels, max_length=10, num_beams=3)
        theirs = tiny_blip.model.generate(pixel_values=pixels, max_length=10, num_beams=3)
    assert torch.equal(ours, theirs)
    assert bundle.processor.tokenizer.tokenize("a red dress") == ["a", "red", "dress"]


def test_broken_local_blip_folder_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ModelUnavailableError) as info:
        load_blip(BlipSpec.local(tmp_path))
    _assert_ways_out(info.value, BLIP_PATH_ENV, str(tmp_path))


# --- device ------------------------------------------------------------------------------------------------


def test_pick_device() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert pick_device() == expected
    assert pick_device() is pick_device()
