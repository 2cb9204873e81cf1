"""A deterministic synthetic catalogue in the Kaggle "Fashion Product Images (Small)" layout.

``generate_sample(out_dir, rows, seed)`` writes ``out_dir/styles.csv`` and ``out_dir/images/<id>.jpg``.
Row ``i`` is drawn from its own RNG seeded by ``(seed, i)``, so the first N rows of a larger sample are the
N-row sample: writing a bigger sample into the same folder "adds new rows". Unless ``clean``, about 2% of
rows carry the real file's quirks (an unquoted comma in the name, a missing image, a repeated id).
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from PIL import Image, ImageDraw

from fashion_assets.catalog.source import CSV_NAME, IMAGES_DIR
from fashion_assets.catalog.source import EXPECTED_HEADER as HEADER

T = TypeVar("T")

FIRST_ID = 1000
JPEG_QUALITY = 85

ADULTS = ("Men", "Women")
EVERYONE = ("Men", "Women", "Boys", "Girls", "Unisex")
FEMALE = ("Women", "Girls")

# Colour name -> (RGB, weight). Weights roughly follow the real file (lots of black, white and blue).
COLOURS: dict[str, tuple[tuple[int, int, int], int]] = {
    "Black": ((0, 0, 0), 20),
    "White": ((255, 255, 255), 12),
    "Blue": ((0, 90, 200), 10),
    "Brown": ((120, 72, 30), 7),
    "Grey": ((128, 128, 128), 6),
    "Red": ((200, 20, 30), 6),
    "Green": ((20, 140, 50), 5),
    "Navy Blue": ((0, 0, 110), 5),
    "Pink": ((240, 130, 170), 5),
    "Purple": ((110, 40, 140), 3),
    "Silver": ((192, 192, 192), 3),
    "Yellow": ((240, 210, 20), 2),
    "Beige": ((225, 200, 160), 2),
    "Maroon": ((128, 0, 0), 2),
    "Orange": ((240, 130, 20), 2),
    "Olive": ((110, 110, 30), 1),
    "Gold": ((212, 175, 55), 1),
    "Charcoal": ((54, 69, 79), 1),
    "Cream": ((250, 240, 210), 1),
    "Teal": ((0, 128, 128), 1),
    "Khaki": ((195, 176, 145), 1),
    "Off White": ((245, 245, 235), 1),
}
_COLOUR_NAMES = tuple(COLOURS)
_COLOUR_WEIGHTS = tuple(w for _, w in COLOURS.values())

BRANDS: dict[str, tuple[str, ...]] = {
    "sports": ("Nike", "Puma", "Adidas", "Reebok", "Fila", "Decathlon"),
    "casual": (
        "United Colors of Benetton",
        "Jealous 21",
        "Wrangler",
        "Levis",
        "Lee",
        "Flying Machine",
        "Spykar",
        "Arrow",
        "Peter England",
        "Van Heusen",
        "Mango",
        "Vero Moda",
        "Tokyo Talkies",
    ),
    "ethnic": ("Fabindia", "Biba", "W", "Aurelia", "Satya Paul"),
    "kids": ("Gini and Jony", "Doodle", "Kids Ville", "Madagascar3"),
    "shoes": ("Woodland", "Red Tape", "Catwalk", "Bata", "Carlton London", "Converse", "Vans", "Crocs"),
    "watches": ("Titan", "Fastrack", "Timex", "Q&Q", "Casio", "Fossil"),
    "bags": ("Baggit", "Lavie", "Murcia", "Hidesign", "Wildcraft"),
    "care": ("Lakme", "Revlon", "Davidoff", "Axe", "Elle 18"),
}

SEASONS: tuple[str, ...] = ("Summer", "Fall", "Winter", "Spring")
_SEASON_WEIGHTS = (48, 26, 18, 8)
YEARS: tuple[int, ...] = tuple(range(2010, 2019))
_YEAR_WEIGHTS = (5, 30, 35, 12, 5, 4, 6, 2, 1)
EMPTY_YEAR_SHARE = 0.004
EMPTY_USAGE_SHARE = 0.003

# (width, height) -> weight; the real small set is almost all 60x80.
IMAGE_SIZES: tuple[tuple[int, int], ...] = ((60, 80), (80, 60), (120, 160), (30, 40))
_SIZE_WEIGHTS = (85, 5, 5, 5)

QUIRK_SHARE = 0.02  # total share of quirk rows beyond the first 50 (split evenly across the three quirks)
_GUARANTEED_WINDOW = (5, 50)  # one of each quirk at seed-dependent positions in this range of rows


@dataclass(frozen=True)
class _Article:
    master: str
    sub: str
    article: str
    genders: tuple[str, ...]
    phrases: tuple[str, ...]
    brands: str
    usages: tuple[str, ...]  # most likely first
    weight: int


ARTICLES: tuple[_Article, ...] = (
    _Article(
        "Apparel",
        "Topwear",
        "Tshirts",
        EVERYONE,
        ("T-shirt", "Polo T-shirt", "Printed T-shirt", "Round Neck T-shirt"),
        "sports",
        ("Casual", "Sports"),
        30,
    ),
    _Article(
        "Apparel",
        "Topwear",
        "Shirts",
        ("Men", "Women", "Boys"),
        ("Shirt", "Slim Fit Shirt", "Check Shirt", "Formal Shirt"),
        "casual",
        ("Casual", "Formal"),
        14,
    ),
    _Article(
        "Apparel",
        "Topwear",
        "Tops",
        FEMALE,
        ("Top", "Printed Top", "Sleeveless Top"),
        "casual",
        ("Casual", "Party"),
        7,
    ),
    _Article("Apparel", "Topwear", "Kurtas", ADULTS, ("Kurta", "Printed Kurta"), "ethnic", ("Ethnic",), 6),
    _Article(
        "Apparel",
        "Topwear",
        "Sweatshirts",
        EVERYONE,
        ("Sweatshirt", "Hooded Sweatshirt"),
        "sports",
        ("Casual", "Sports"),
        2,
    ),
    _Article(
        "Apparel",
        "Topwear",
        "Jackets",
        EVERYONE,
        ("Jacket", "Padded Jacket"),
        "casual",
        ("Casual", "Sports"),
        2,
    ),
    _Article(
        "Apparel",
        "Bottomwear",
        "Jeans",
        ("Men", "Women", "Boys", "Girls"),
        ("Jeans", "Slim Fit Jeans", "Skinny Fit Jeans"),
        "casual",
        ("Casual",),
        5,
    ),
    _Article(
        "Apparel",
        "Bottomwear",
        "Trousers",
        ADULTS,
        ("Trousers", "Formal Trousers"),
        "casual",
        ("Formal", "Casual"),
        3,
    ),
    _Article(
        "Apparel",
        "Bottomwear",
        "Shorts",
        EVERYONE,
        ("Shorts", "Sports Shorts"),
        "sports",
        ("Casual", "Sports"),
        3,
    ),
    _Article("Apparel", "Bottomwear", "Track Pants", EVERYONE, ("Track Pants",), "sports", ("Sports",), 2),
    _Article(
        "Apparel",
        "Dress",
        "Dresses",
        FEMALE,
        ("Dress", "Printed Dress", "Maxi Dress"),
        "casual",
        ("Casual", "Party"),
        3,
    ),
    _Article("Apparel", "Saree", "Sarees", ("Women",), ("Saree",), "ethnic", ("Ethnic",), 3),
    _Article("Apparel", "Innerwear", "Briefs", ("Men", "Boys"), ("Briefs",), "casual", ("Casual",), 3),
    _Article("Apparel", "Innerwear", "Bra", ("Women",), ("Bra",), "casual", ("Casual",), 2),
    _Article(
        "Apparel", "Socks", "Socks", EVERYONE, ("Socks", "Pack of 3 Socks"), "sports", ("Casual", "Sports"), 2
    ),
    _Article(
        "Footwear",
        "Shoes",
        "Casual Shoes",
        EVERYONE,
        ("Casual Shoes", "Sneakers", "Canvas Shoes"),
        "shoes",
        ("Casual",),
        12,
    ),
    _Article(
        "Footwear",
        "Shoes",
        "Sports Shoes",
        EVERYONE,
        ("Running Shoes", "Sports Shoes", "Training Shoes"),
        "sports",
        ("Sports",),
        9,
    ),
    _Article(
        "Footwear",
        "Shoes",
        "Formal Shoes",
        ("Men",),
        ("Formal Shoes", "Leather Formal Shoes"),
        "shoes",
        ("Formal",),
        3,
    ),
    _Article(
        "Footwear", "Shoes", "Heels", ("Women",), ("Heels", "Stilettos"), "shoes", ("Casual", "Party"), 4
    ),
    _Article("Footwear", "Shoes", "Flats", FEMALE, ("Flats", "Ballerinas"), "shoes", ("Casual",), 3),
    _Article("Footwear", "Flip Flops", "Flip Flops", EVERYONE, ("Flip Flops",), "shoes", ("Casual",), 4),
    _Article("Footwear", "Sandal", "Sandals", EVERYONE, ("Sandals", "Floaters"), "shoes", ("Casual",), 4),
    _Article(
        "Accessories",
        "Watches",
        "Watches",
        ("Men", "Women", "Unisex"),
        ("Watch", "Analog Watch", "Chronograph Watch", "Digital Watch"),
        "watches",
        ("Casual", "Formal"),
        12,
    ),
    _Article(
        "Accessories",
        "Bags",
        "Handbags",
        ("Women",),
        ("Handbag", "Tote Bag", "Sling Bag"),
        "bags",
        ("Casual",),
        8,
    ),
    _Article(
        "Accessories",
        "Bags",
        "Backpacks",
        ("Men", "Women", "Unisex"),
        ("Backpack", "Laptop Backpack"),
        "bags",
        ("Casual", "Travel"),
        3,
    ),
    _Article(
        "Accessories",
        "Eyewear",
        "Sunglasses",
        ("Men", "Women", "Unisex"),
        ("Sunglasses", "Aviator Sunglasses"),
        "watches",
        ("Casual",),
        5,
    ),
    _Article(
        "Accessories",
        "Wallets",
        "Wallets",
        ADULTS,
        ("Wallet", "Leather Wallet"),
        "bags",
        ("Casual", "Formal"),
        4,
    ),
    _Article(
        "Accessories", "Belts", "Belts", ADULTS, ("Belt", "Leather Belt"), "casual", ("Casual", "Formal"), 3
    ),
    _Article(
        "Accessories", "Jewellery", "Earrings", ("Women",), ("Earrings",), "ethnic", ("Ethnic", "Casual"), 2
    ),
    _Article("Accessories", "Headwear", "Caps", EVERYONE, ("Cap",), "sports", ("Sports", "Casual"), 2),
    _Article("Accessories", "Ties", "Ties", ("Men",), ("Tie", "Silk Tie"), "casual", ("Formal",), 2),
    _Article(
        "Personal Care",
        "Fragrance",
        "Perfume and Body Mist",
        ("Men", "Women", "Unisex"),
        ("Perfume", "Eau de Toilette", "Body Mist"),
        "care",
        ("Casual",),
        4,
    ),
    _Article("Personal Care", "Fragrance", "Deodorant", ADULTS, ("Deodorant",), "care", ("Casual",), 2),
    _Article("Personal Care", "Lips", "Lipstick", ("Women",), ("Lipstick",), "care", ("Casual",), 2),
    _Article("Personal Care", "Nails", "Nail Polish", ("Women",), ("Nail Polish",), "care", ("Casual",), 2),
)
_ARTICLE_WEIGHTS = tuple(a.weight for a in ARTICLES)
EXTRA_USAGES: tuple[str, ...] = (
    "Casual",
    "Formal",
    "Sports",
    "Ethnic",
    "Smart Casual",
    "Travel",
    "Party",
    "Home",
)


@dataclass
class SampleReport:
    """What ``generate_sample`` wrote: row count, ids in row order and the ids carrying each quirk."""

    out_dir: Path
    rows: int
    ids: list[int] = field(default_factory=list)
    images_written: int = 0
    comma_in_name: list[int] = field(default_factory=list)
    missing_image: list[int] = field(default_factory=list)
    duplicate_id: list[int] = field(default_factory=list)

    @property
    def csv_path(self) -> Path:
        """The ``styles.csv`` written."""
        return self.out_dir / CSV_NAME

    @property
    def unique_ids(self) -> set[int]:
        """Distinct ids (a duplicate-id quirk repeats an earlier one)."""
        return set(self.ids)


@dataclass(frozen=True)
class _Row:
    """One generated row, before quirks decide how it is written."""

    own_id: int
    quirk: str | None  # "comma", "missing", "duplicate" or None
    dup_pick: float
    article: _Article
    gender: str
    colour: str
    second_colour: str
    name: str
    comma_name: str
    season: str
    year: str
    usage: str
    size: tuple[int, int]
    shape: str
    box: tuple[float, float, float, float]

    def fields(self, row_id: int, name: str) -> list[str]:
        """The CSV fields of this row under ``row_id`` and ``name``."""
        a = self.article
        return [
            str(row_id),
            self.gender,
            a.master,
            a.sub,
            a.article,
            self.colour,
            self.season,
            self.year,
            self.usage,
            name,
        ]


def _weighted(rng: random.Random, items: Sequence[T], weights: Sequence[int]) -> T:
    return rng.choices(items, weights=weights, k=1)[0]


def _guaranteed_quirks(seed: int) -> dict[int, str]:
    lo, hi = _GUARANTEED_WINDOW
    comma, missing, dup = random.Random(f"{seed}:quirk-positions").sample(range(lo, hi), 3)
    return {comma: "comma", missing: "missing", dup: "duplicate"}


def _draw_row(seed: int, index: int, previous_id: int, guaranteed: dict[int, str]) -> _Row:
    """Draw row ``index`` from its own RNG. Every draw happens whatever the quirks, so rows stay stable."""
    rng = random.Random(f"fashion-sample:{seed}:{index}")
    own_id = previous_id + rng.randint(1, 7)
    roll = rng.random()
    dup_pick = rng.random()
    article = _weighted(rng, ARTICLES, _ARTICLE_WEIGHTS)
    gender = rng.choice(article.genders)
    group = "kids" if gender in ("Boys", "Girls") and rng.random() < 0.6 else article.brands
    brand = rng.choice(BRANDS[group])
    colour = _weighted(rng, _COLOUR_NAMES, _COLOUR_WEIGHTS)
    second = rng.choice([c for c in _COLOUR_NAMES if c != colour])
    style = rng.random()
    phrase = rng.choice(article.phrases)
    if style < 0.08:
        colour_words = ""
    elif style < 0.20:
        colour_words = f"{colour} and {second} "
    else:
        colour_words = f"{colour} "
    name = f"{brand} {gender} {colour_words}{phrase}"
    comma_name = f"{brand} {gender} {colour}, {second} {phrase}"
    season = _weighted(rng, SEASONS, _SEASON_WEIGHTS)
    year = "" if rng.random() < EMPTY_YEAR_SHARE else str(_weighted(rng, YEARS, _YEAR_WEIGHTS))
    usage_roll = rng.random()
    if usage_roll < EMPTY_USAGE_SHARE:
        usage = ""
    elif usage_roll < 0.85:
        usage = article.usages[0]
    else:
        usage = rng.choice(article.usages + EXTRA_USAGES[:4])
    size = _weighted(rng, IMAGE_SIZES, _SIZE_WEIGHTS)
    shape = rng.choice(("rectangle", "ellipse"))
    box = (rng.random(), rng.random(), rng.random(), rng.random())

    if index in guaranteed:
        quirk: str | None = guaranteed[index]
    elif index >= _GUARANTEED_WINDOW[1] and roll < QUIRK_SHARE:
        quirk = ("comma", "missing", "duplicate")[min(int(roll / QUIRK_SHARE * 3), 2)]
    else:
        quirk = None
    return _Row(
        own_id,
        quirk,
        dup_pick,
        article,
        gender,
        colour,
        second,
        name,
        comma_name,
        season,
        year,
        usage,
        size,
        shape,
        box,
    )


def _render_jpeg(row: _Row) -> bytes:
    """A small JPEG filled with the base colour, with a rectangle or ellipse in the second colour."""
    width, height = row.size
    image = Image.new("RGB", row.size, COLOURS[row.colour][0])
    x0, x1 = sorted((row.box[0] * width, row.box[1] * width))
    y0, y1 = sorted((row.box[2] * height, row.box[3] * height))
    x1, y1 = max(x1, x0 + width / 4), max(y1, y0 + height / 4)
    draw = ImageDraw.Draw(image)
    getattr(draw, row.shape)((x0, y0, x1, y1), fill=COLOURS[row.second_colour][0])
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=JPEG_QUALITY)
    return buffer.getvalue()


def generate_sample(
    out_dir: Path | str, rows: int, seed: int = 0, clean: bool = False, images: bool = True
) -> SampleReport:
    """Write ``rows`` products to ``out_dir/styles.csv`` and their images to ``out_dir/images/<id>.jpg``.

    Deterministic in ``(rows, seed, clean)``, and the first N rows never depend on ``rows``. An existing
    ``styles.csv`` is replaced; images are added or overwritten (and removed for missing-image quirk rows).
    ``images=False`` writes the CSV only (for large benchmarks); the ``images`` folder is still created.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    out = Path(out_dir)
    image_dir = out / IMAGES_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    report = SampleReport(out_dir=out, rows=rows)
    guaranteed = {} if clean else _guaranteed_quirks(seed)

    lines = [",".join(HEADER)]
    emitted: list[int] = []  # the id each row was written with
    originals: list[bool] = []  # whether that row owns its id (is not a duplicate)
    previous_id = FIRST_ID
    for index in range(rows):
        row = _draw_row(seed, index, previous_id, guaranteed)
        previous_id = row.own_id
        quirk = None if clean else row.quirk
        row_id, name = row.own_id, row.name
        if quirk == "comma":
            name = row.comma_name
            report.comma_in_name.append(row_id)
        elif quirk == "duplicate":
            target = int(row.dup_pick * index)
            while not originals[target]:
                target -= 1
            row_id = emitted[target]
            report.duplicate_id.append(row_id)
        elif quirk == "missing":
            report.missing_image.append(row_id)
        emitted.append(row_id)
        originals.append(quirk != "duplicate")
        lines.append(",".join(row.fields(row_id, name)))

        if quirk == "missing":
            (image_dir / f"{row_id}.jpg").unlink(missing_ok=True)
        elif images and quirk != "duplicate":  # the image of a repeated id belongs to its first row
            (image_dir / f"{row_id}.jpg").write_bytes(_render_jpeg(row))
            report.images_written += 1
    report.ids = emitted

    tmp = out / f".{CSV_NAME}.tmp"
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8", newline="")
    os.replace(tmp, out / CSV_NAME)
    return report
