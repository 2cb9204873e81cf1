"""Loading a BLIP captioning model (BlipForConditionalGeneration + BlipProcessor) for a BlipSpec."""

from __future__ import annotations

import json
from dataclasses import dataclass

import torch
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForConditionalGeneration,
    BlipImageProcessor,
    BlipProcessor,
)

from fashion_assets.models.profiles import (
    BLIP_PATH_ENV,
    CONFIG_DIR,
    HUB,
    LOCAL,
    RANDOM,
    TINY_SEED,
    BlipSpec,
    ModelUnavailableError,
    fetch_from_hub,
    ways_out,
)

TINY_CONFIG = CONFIG_DIR / "tiny-blip.json"
TINY_VOCAB = CONFIG_DIR / "tiny-blip-vocab.txt"
LOCAL_WHAT = "a folder written by save_pretrained (BlipForConditionalGeneration and BlipProcessor)"

# BLIP's own normalisation (the CLIP one), as in Salesforce/blip-image-captioning-base.
_MEAN = [0.48145466, 0.4578275, 0.40821073]
_STD = [0.26862954, 0.26130258, 0.27577711]


@dataclass
class BlipBundle:
    """A loaded BLIP: the model (eval mode, on ``device``) and its processor (images in, text out)."""

    model: BlipForConditionalGeneration
    processor: BlipProcessor
    device: str
    spec: BlipSpec


def tiny_blip_processor() -> BlipProcessor:
    """The tiny model's processor: a BERT tokenizer over a small fashion vocabulary, ``[DEC]`` as BOS."""
    config = json.loads(TINY_CONFIG.read_text())
    size = config["vision_config"]["image_size"]
    tokenizer = BertTokenizer(vocab=str(TINY_VOCAB), do_lower_case=True, bos_token="[DEC]")
    image_processor = BlipImageProcessor(
        size={"height": size, "width": size}, image_mean=_MEAN, image_std=_STD, do_convert_rgb=True
    )
    return BlipProcessor(image_processor=image_processor, tokenizer=tokenizer)


def tiny_blip_config(processor: BlipProcessor) -> BlipConfig:
    """The tiny model's config (``configs/tiny-blip.json``) with token ids taken from its tokenizer."""
    config = json.loads(TINY_CONFIG.read_text())
    tokenizer = processor.tokenizer
    config["text_config"].update(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        sep_token_id=tokenizer.sep_token_id,
        eos_token_id=tokenizer.sep_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return BlipConfig(**config)


def create_tiny_blip(seed: int = TINY_SEED) -> tuple[BlipForConditionalGeneration, BlipProcessor]:
    """(model, processor) of the tiny BLIP with random weights from ``seed``, on the CPU.

    The global torch RNG is left as it was.
    """
    processor = tiny_blip_processor()
    config = tiny_blip_config(processor)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = BlipForConditionalGeneration(config)
    # Random weights like special tokens: keep them out so captions are (gibberish) words, never empty.
    tokenizer = processor.tokenizer
    special = [tokenizer.pad_token, tokenizer.unk_token, tokenizer.cls_token, tokenizer.mask_token]
    special += ["[DEC]", "[ENC]"]
    model.generation_config.suppress_tokens = tokenizer.convert_tokens_to_ids(special)
    model.generation_config.min_new_tokens = 1
    return model, processor


def _from_pretrained(
    source: str, cache_dir: str | None, local_only: bool = False
) -> tuple[BlipForConditionalGeneration, BlipProcessor]:
    kwargs = {"cache_dir": cache_dir, "local_files_only": local_only}
    processor = BlipProcessor.from_pretrained(source, **kwargs)
    model = BlipForConditionalGeneration.from_pretrained(source, **kwargs)
    return model, processor


def load_blip(spec: BlipSpec, device: str = "cpu", *, cache_dir: str | None = None) -> BlipBundle:
    """Load the BLIP ``spec`` names onto ``device``, in eval mode.

    Hub models come from the cache when present, otherwise are downloaded (to ``cache_dir`` if given).
    Raises ModelUnavailableError (never falls back to another model) when they cannot be had.
    """
    if spec.kind == RANDOM:
        model, processor = create_tiny_blip()
    elif spec.kind == LOCAL:
        try:
            model, processor = _from_pretrained(str(spec.source), None, local_only=True)
        except Exception as exc:
            raise ModelUnavailableError(
                f"BLIP folder {spec.source!r} could not be loaded ({type(exc).__name__}: {exc}). "
                + ways_out(BLIP_PATH_ENV, LOCAL_WHAT)
            ) from exc
    elif spec.kind == HUB:
        model, processor = fetch_from_hub(
            lambda: _from_pretrained(str(spec.source), cache_dir),
            what=f"BLIP model {spec.source!r}",
            path_env=BLIP_PATH_ENV,
            path_what=LOCAL_WHAT,
        )
    else:
        raise ValueError(f"unknown BLIP spec kind {spec.kind!r}")
    model = model.to(device).eval()
    return BlipBundle(model, processor, device, spec)
