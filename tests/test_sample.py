"""Tests for the deterministic sample catalogue."""

from __future__ import annotations

import io
import itertools
import re
from pathlib import Path

import pytest
from PIL import Image

from fashion_assets.catalog.sample import COLOURS, HEADER, SampleReport, generate_sample

EXPECTED_HEADER = (
    "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
)


def _lines(folder: Path) -> list[str]:
    return (folder / "styles.csv").read_text(encoding="utf-8").splitlines()


def _files(folder: Path) -> dict[str, bytes]:
    paths = sorted(p for p in folder.rglob("*") if p.is_file())
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in paths}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SampleReport]:
    folder = tmp_path_factory.mktemp("sample")
    return folder, generate_sample(folder, rows=600, seed=3)


def test_header(sample: tuple[Path, SampleReport]) -> None:
    folder, report = sample
    lines = _lines(folder)
    assert lines[0] == EXPECTED_HEADER == ",".join(HEADER)
    assert len(lines) == 1 + report.rows == 601
    assert (folder / "styles.csv").read_bytes().endswith(b"\n")


def test_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    generate_sample(a, rows=120, seed=7)
    generate_sample(b, rows=120, seed=7)
    assert _files(a) == _files(b)
    c = tmp_path / "c"
    generate_sample(c, rows=120, seed=8)
    assert _lines(c) != _lines(a)


@pytest.mark.parametrize("clean", [False, True])
def test_prefix_property(tmp_path: Path, clean: bool) -> None:
    small, big = tmp_path / "small", tmp_path / "big"
    report_small = generate_sample(small, rows=80, seed=5, clean=clean)
    report_big = generate_sample(big, rows=200, seed=5, clean=clean)
    assert _lines(big)[: 1 + 80] == _lines(small)
    assert report_big.ids[:80] == report_small.ids
    small_images = _files(small / "images")
    big_images = _files(big / "images")
    assert small_images and all(big_images[name] == data for name, data in small_images.items())
    for quirk in ("comma_in_name", "missing_image", "duplicate_id"):
        big_ids = getattr(report_big, quirk)
        assert big_ids[: len(getattr(report_small, quirk))] == getattr(report_small, quirk)


def test_growing_a_folder_gives_a_superset(tmp_path: Path) -> None:
    generate_sample(tmp_path, rows=60, seed=1)
    before_lines, before_images = _lines(tmp_path), _files(tmp_path / "images")
    generate_sample(tmp_path, rows=150, seed=1)
    after_lines, after_images = _lines(tmp_path), _files(tmp_path / "images")
    assert after_lines[: len(before_lines)] == before_lines
    assert len(after_lines) == 151
    assert before_images.items() <= after_images.items()
    assert not (tmp_path / ".styles.csv.tmp").exists()


def test_ids_positive_and_not_contiguous(sample: tuple[Path, SampleReport]) -> None:
    _, report = sample
    assert all(i > 0 for i in report.ids)
    firsts = list(dict.fromkeys(report.ids))
    assert firsts == sorted(firsts)
    gaps = {b - a for a, b in itertools.pairwise(firsts)}
    assert min(gaps) >= 1 and len(gaps) > 1


def test_quirks_present(sample: tuple[Path, SampleReport]) -> None:
    folder, report = sample
    assert report.comma_in_name and report.missing_image and report.duplicate_id
    lines = _lines(folder)[1:]
    by_count = {line.split(",", 1)[0] for line in lines if line.count(",") > 9}
    assert set(map(str, report.comma_in_name)) == by_count
    for row_id in report.missing_image:
        assert not (folder / "images" / f"{row_id}.jpg").exists()
    ids = [int(line.split(",", 1)[0]) for line in lines]
    repeated = [i for n, i in enumerate(ids) if i in ids[:n]]
    assert repeated == report.duplicate_id
    for row_id in report.duplicate_id:  # the repeated rows differ from the first occurrence
        rows = [line for line in lines if line.startswith(f"{row_id},")]
        assert len(rows) == 2 and rows[0] != rows[1]
    share = (len(report.comma_in_name) + len(report.missing_image) + len(report.duplicate_id)) / report.rows
    assert share < 0.06


def test_quirks_at_least_one_each_from_50_rows(tmp_path: Path) -> None:
    for seed in range(5):
        report = generate_sample(tmp_path / str(seed), rows=50, seed=seed, images=False)
        assert len(report.comma_in_name) >= 1
        assert len(report.missing_image) >= 1
        assert len(report.duplicate_id) >= 1


def test_quirks_absent_when_clean(tmp_path: Path) -> None:
    report = generate_sample(tmp_path, rows=600, seed=3, clean=True)
    assert not report.comma_in_name and not report.missing_image and not report.duplicate_id
    lines = _lines(tmp_path)[1:]
    assert all(line.count(",") == 9 for line in lines)
    ids = [int(line.split(",", 1)[0]) for line in lines]
    assert len(set(ids)) == len(ids) == 600
    assert all((tmp_path / "images" / f"{i}.jpg").is_file() for i in ids)
    assert report.images_written == 600


def test_images_are_decodable_jpegs_of_varied_sizes(sample: tuple[Path, SampleReport]) -> None:
    folder, report = sample
    lines = _lines(folder)[1:]
    colour_of = {}
    for line in lines:
        fields = line.split(",")
        colour_of.setdefault(int(fields[0]), fields[5])
    sizes = {}
    for path in sorted((folder / "images").glob("*.jpg")):
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            assert image.format == "JPEG"
            image.load()
            sizes[image.size] = sizes.get(image.size, 0) + 1
    assert len(sizes) >= 3
    assert max(sizes, key=lambda size: sizes[size]) == (60, 80)
    assert sum(sizes.values()) == report.images_written


def test_image_filled_with_base_colour(tmp_path: Path) -> None:
    generate_sample(tmp_path, rows=30, seed=2, clean=True)
    for line in _lines(tmp_path)[1:]:
        fields = line.split(",")
        with Image.open(tmp_path / "images" / f"{fields[0]}.jpg") as image:
            corners = [image.getpixel((0, 0)), image.getpixel((image.width - 1, image.height - 1))]
        expected = COLOURS[fields[5]][0]
        # the shape may cover one corner; at least one corner shows the base colour (JPEG is lossy)
        assert any(all(abs(a - b) <= 24 for a, b in zip(c, expected, strict=True)) for c in corners), line


def test_descriptions_contain_colour_words(sample: tuple[Path, SampleReport]) -> None:
    folder, _ = sample
    lines = _lines(folder)[1:]
    with_colour = 0
    two_colours = 0
    for line in lines:
        fields = line.split(",")
        colour, name = fields[5], ",".join(fields[9:])
        assert colour in COLOURS
        if re.search(rf"\b{re.escape(colour)}\b", name):
            with_colour += 1
        if re.search(r"\b\w+ and \w+\b", name) and sum(c in name for c in COLOURS) >= 2:
            two_colours += 1
    assert with_colour / len(lines) > 0.85
    assert two_colours > 0


def test_realistic_values(sample: tuple[Path, SampleReport]) -> None:
    folder, _ = sample
    rows = [line.split(",") for line in _lines(folder)[1:]]
    assert {r[1] for r in rows} == {"Men", "Women", "Boys", "Girls", "Unisex"}
    assert {r[6] for r in rows} == {"Summer", "Winter", "Fall", "Spring"}
    assert {int(r[7]) for r in rows if r[7]} <= set(range(2010, 2019))
    assert ("Apparel", "Topwear", "Tshirts") in {(r[2], r[3], r[4]) for r in rows}
    assert {"Casual", "Sports"} <= {r[8] for r in rows}
    for r in rows:
        assert r[1] in r[9]  # the gender word is in the name


def test_images_false_writes_csv_only(tmp_path: Path) -> None:
    report = generate_sample(tmp_path, rows=200, seed=0, images=False)
    assert report.images_written == 0
    assert not list((tmp_path / "images").iterdir())
    with_images = generate_sample(tmp_path / "w", rows=200, seed=0)
    assert _lines(tmp_path) == _lines(tmp_path / "w")
    assert with_images.ids == report.ids


def test_negative_rows_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rows"):
        generate_sample(tmp_path, rows=-1)
