"""Scenario 7: bad input through ingest + image_embedding (tiny profile, in process) on a real table.

One catalogue holds every bad and unusual case; it is ingested and embedded once (module fixture) and each
case is its own test: a clear per-row record (``image_embedding_error`` or an ingest reject), the run goes
on, nothing valid is lost.
"""

from __future__ import annotations

import csv

import pytest

from fashion_assets.catalog.source import (
    EXPECTED_HEADER,
    REASON_DUPLICATE_ID,
    REASON_EMPTY_NAME,
    REASON_MALFORMED_PREFIX,
    REASON_NON_NUMERIC_ID,
)
from fashion_assets.execution.driver import run_feature
from fashion_assets.execution.runners import InProcessRunner
from fashion_assets.ingest import ingest, read_rejects
from fashion_assets.project import Project
from fashion_assets.settings import Settings
from tests import images

LONG_NAME = "Long " + "x" * 9995  # 10,000 characters
UNICODE_NAME = "Chaussure à talon – 赤い靴 👠 Ünïcödé"

# id -> (image maker, name, expected: None = embeds, else a substring of the recorded error)
IMAGE_CASES: dict[str, tuple[int, object, str | None]] = {
    "rgb_jpeg": (1, images.rgb_jpeg, None),
    "zero_bytes": (2, images.empty, "empty image bytes"),
    "truncated_jpeg": (3, images.truncated_jpeg, "truncated"),
    "text_named_jpg": (4, images.text_as_image, "not an image"),
    "cmyk": (5, images.cmyk_jpeg, None),
    "grayscale": (6, images.grey_jpeg, None),
    "alpha_png_named_jpg": (7, images.rgba_png, None),
    "one_pixel": (8, images.one_pixel_png, None),
    "large_4000x3000": (9, images.large_jpeg, None),
    "bomb_48M_pixels": (10, images.bomb_png, "too large"),
    "huge_bomb_2500M_pixels": (11, images.huge_bomb_png, "too large"),
    "corrupt_jpeg": (12, images.corrupt_jpeg, ""),
}
NAME_CASES = {"long_name": (20, LONG_NAME), "non_ascii_name": (21, UNICODE_NAME)}
# raw CSV lines that must be rejected, with the reject reason expected
REJECT_LINES = {
    "malformed_short_line": ("30,Men,Apparel", REASON_MALFORMED_PREFIX),
    "non_numeric_id": (
        "abc,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Blue Tee",
        REASON_NON_NUMERIC_ID,
    ),
    "negative_id": ("-5,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,Blue Tee", REASON_NON_NUMERIC_ID),
    "path_in_id": ("../../etc/passwd,Men,A,T,T,Blue,S,2012,C,Evil", REASON_NON_NUMERIC_ID),
    "duplicate_id": (
        "1,Men,Apparel,Topwear,Tshirts,Red,Summer,2012,Casual,Red Tee again",
        REASON_DUPLICATE_ID,
    ),
    "empty_name": ("31,Men,Apparel,Topwear,Tshirts,Blue,Summer,2012,Casual,", REASON_EMPTY_NAME),
}


def row(pid: int, name: str) -> list[str]:
    return [str(pid), "Men", "Apparel", "Topwear", "Tshirts", "Blue", "Summer", "2012", "Casual", name]


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    base = tmp_path_factory.mktemp("bad_input")
    source = base / "source"
    (source / "images").mkdir(parents=True)
    with (source / "styles.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(EXPECTED_HEADER)
        for case, (pid, make, _) in IMAGE_CASES.items():
            w.writerow(row(pid, f"Blue {case}"))
            (source / "images" / f"{pid}.jpg").write_bytes(make())
        for pid, name in NAME_CASES.values():
            w.writerow(row(pid, name))
            (source / "images" / f"{pid}.jpg").write_bytes(images.rgb_jpeg(seed=pid))
        (source / "images" / "31.jpg").write_bytes(images.rgb_jpeg())
    with (source / "styles.csv").open("a", encoding="utf-8") as f:
        for line, _ in REJECT_LINES.values():
            f.write(line + "\n")
    project = Project(Settings(str(base / "db"), "products", str(source), 8))
    report = ingest(project.table, source, project.specs(), 8)
    spec = project.spec("image_embedding")
    summary = run_feature(project.table, project.features["image_embedding"], spec, runner=InProcessRunner())
    rows = project.table.dataset().to_table().to_pylist()
    return {
        "project": project,
        "report": report,
        "summary": summary,
        "rows": {r["id"]: r for r in rows},
        "rejects": read_rejects(project.table).to_pylist(),
    }


def test_run_goes_on_and_nothing_valid_is_lost(result):
    summary, project = result["summary"], result["project"]
    assert summary.failures == []  # no fragment failed: bad rows are per-row records
    assert project.status().features["image_embedding"].missing == []
    expected_ids = {pid for pid, _, _ in IMAGE_CASES.values()} | {pid for pid, _ in NAME_CASES.values()}
    assert set(result["rows"]) == expected_ids
    bad = sum(1 for _, _, e in IMAGE_CASES.values() if e is not None)
    assert summary.rows_failed == bad and project.table.count_errors("image_embedding") == bad


@pytest.mark.parametrize("case", list(IMAGE_CASES))
def test_image_case(result, case):
    pid, _, expected = IMAGE_CASES[case]
    r = result["rows"][pid]
    if expected is None:
        assert r["image_embedding"] is not None and len(r["image_embedding"]) == 512
        assert r["image_embedding_error"] is None
    else:
        assert r["image_embedding"] is None
        error = r["image_embedding_error"]
        assert error and expected in error, error


@pytest.mark.parametrize("case", list(NAME_CASES))
def test_name_case_is_kept_exactly(result, case):
    pid, name = NAME_CASES[case]
    r = result["rows"][pid]
    assert r["description"] == name and r["image_embedding"] is not None


@pytest.mark.parametrize("case", list(REJECT_LINES))
def test_reject_case_is_recorded(result, case):
    line, reason = REJECT_LINES[case]
    pid = line.split(",")[0]
    hits = [r for r in result["rejects"] if r["id"] == pid and r["reason"].startswith(reason)]
    assert len(hits) == 1, result["rejects"]
    assert hits[0]["line"] > 1
