"""Tests for streaming a source folder into Arrow batches."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from fashion_assets.catalog.sample import generate_sample
from fashion_assets.catalog.source import (
    PRODUCT_SCHEMA,
    ReadStats,
    Reject,
    SourceError,
    check_source,
    read_source,
)

HEADER = "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"


def _row(row_id: object, name: str = "Nike Men Black Running Shoes", year: str = "2012") -> str:
    return f"{row_id},Men,Footwear,Shoes,Sports Shoes,Black,Summer,{year},Sports,{name}"


def _write_source(
    folder: Path, lines: list[str], images: dict[int, bytes] | None = None, encoding: str = "utf-8"
) -> Path:
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "styles.csv").write_bytes(("\n".join([HEADER, *lines]) + "\n").encode(encoding))
    for row_id, data in (images or {}).items():
        (folder / "images" / f"{row_id}.jpg").write_bytes(data)
    return folder


def _read_all(folder: Path, **kwargs: object) -> tuple[pa.Table, ReadStats]:
    stats = ReadStats()
    batches = list(read_source(folder, stats=stats, **kwargs))  # type: ignore[arg-type]
    return pa.Table.from_batches(batches, schema=PRODUCT_SCHEMA), stats


def test_schema_columns() -> None:
    assert PRODUCT_SCHEMA.names == [
        "id",
        "description",
        "image_bytes",
        "gender",
        "master_category",
        "sub_category",
        "article_type",
        "base_colour",
        "season",
        "year",
        "usage",
    ]
    assert PRODUCT_SCHEMA.field("id").type == pa.int64() and not PRODUCT_SCHEMA.field("id").nullable
    assert PRODUCT_SCHEMA.field("year").type == pa.int32()
    assert PRODUCT_SCHEMA.field("image_bytes").type == pa.binary()


def test_reads_clean_sample_completely(tmp_path: Path) -> None:
    report = generate_sample(tmp_path, rows=300, seed=4, clean=True)
    table, stats = _read_all(tmp_path, batch_rows=64)
    assert table.schema == PRODUCT_SCHEMA
    assert table.num_rows == 300 == stats.rows_read == stats.rows_accepted
    assert stats.rejects == [] and stats.rows_repaired == 0 and stats.rows_already_present == 0
    assert table.column("id").to_pylist() == report.ids
    first = table.slice(0, 1).to_pylist()[0]
    line = (tmp_path / "styles.csv").read_text(encoding="utf-8").splitlines()[1].split(",")
    assert first["id"] == int(line[0])
    assert first["description"] == line[9]
    assert first["gender"] == line[1] and first["master_category"] == line[2]
    assert first["sub_category"] == line[3] and first["article_type"] == line[4]
    assert first["base_colour"] == line[5] and first["season"] == line[6]
    assert first["year"] == (int(line[7]) if line[7] else None) and first["usage"] == (line[8] or None)
    assert first["image_bytes"] == (tmp_path / "images" / f"{line[0]}.jpg").read_bytes()
    assert first["image_bytes"][:2] == b"\xff\xd8"
    assert stats.image_bytes_read == sum(len(b) for b in table.column("image_bytes").to_pylist())


def test_sample_quirks_are_rejected_or_repaired(tmp_path: Path) -> None:
    report = generate_sample(tmp_path, rows=400, seed=9)
    table, stats = _read_all(tmp_path)
    assert stats.rows_read == 400
    assert stats.rows_repaired == len(report.comma_in_name)
    counts = stats.reject_counts()
    assert counts.get("missing image file", 0) == len(report.missing_image)
    assert counts.get("duplicate id", 0) == len(report.duplicate_id)
    assert stats.rows_accepted == table.num_rows == 400 - len(stats.rejects)
    expected_ids = [i for i in dict.fromkeys(report.ids) if i not in report.missing_image]
    assert table.column("id").to_pylist() == expected_ids
    names = dict(zip(table.column("id").to_pylist(), table.column("description").to_pylist(), strict=True))
    assert all("," in names[i] for i in report.comma_in_name)


def test_each_reject_reason_and_repair(tmp_path: Path) -> None:
    lines = [
        _row(1),  # line 2: fine
        "2,Men,Apparel,Topwear",  # line 3: malformed, 4 fields
        _row("abc"),  # line 4: non-numeric id
        _row(3, name="   "),  # line 5: empty name
        _row(4),  # line 6: missing image
        _row(1, name="Puma Men White Shirt"),  # line 7: duplicate of line 2
        _row(5, name="Gini and Jony Girls Pink, White,  Dress "),  # line 8: repaired
        _row(0),  # line 9: id <= 0
        _row(-6),  # line 10: negative id
        _row("7.5"),  # line 11: not an integer
        _row(8, year=""),  # line 12: empty year -> null
        _row(9, year="20x2"),  # line 13: bad year -> null
        _row(10),  # line 14: empty image file, accepted
    ]
    images = {i: b"jpeg-%d" % i for i in (1, 3, 5, 8, 9)} | {10: b""}
    _write_source(tmp_path, lines, images)
    table, stats = _read_all(tmp_path)
    assert stats.rejects == [
        Reject("2", "malformed line: 4 fields, expected 10", 3),
        Reject("abc", "non-numeric id", 4),
        Reject("3", "empty name", 5),
        Reject("4", "missing image file", 6),
        Reject("1", "duplicate id", 7),
        Reject("0", "non-numeric id", 9),
        Reject("-6", "non-numeric id", 10),
        Reject("7.5", "non-numeric id", 11),
    ]
    rows = {r["id"]: r for r in table.to_pylist()}
    assert list(rows) == [1, 5, 8, 9, 10]
    assert rows[1]["description"] == "Nike Men Black Running Shoes"  # the first occurrence wins
    assert rows[5]["description"] == "Gini and Jony Girls Pink, White,  Dress"
    assert rows[5]["usage"] == "Sports" and rows[5]["image_bytes"] == b"jpeg-5"
    assert rows[8]["year"] is None and rows[9]["year"] is None and rows[1]["year"] == 2012
    assert rows[10]["image_bytes"] == b""
    assert stats.rows_repaired == 1
    assert stats.rows_read == 13 == stats.rows_accepted + stats.rows_already_present + stats.rows_rejected


def test_whitespace_blank_lines_and_empty_fields(tmp_path: Path) -> None:
    lines = [
        "  11 , Women ,Apparel,Topwear,Tops, Pink ,Summer, 2013 ,, Biba Women Pink Top  ",
        "",
        "12,Men,Apparel,Topwear,Shirts,,Fall,,Casual,Arrow Men Shirt",
    ]
    _write_source(tmp_path, lines, {11: b"a", 12: b"b"})
    table, stats = _read_all(tmp_path)
    assert stats.rows_read == 2 and not stats.rejects
    first, second = table.to_pylist()
    assert first["id"] == 11 and first["gender"] == "Women" and first["base_colour"] == "Pink"
    assert first["year"] == 2013 and first["usage"] is None and first["description"] == "Biba Women Pink Top"
    assert second["base_colour"] is None and second["year"] is None


def test_quoted_name_with_comma(tmp_path: Path) -> None:
    _write_source(tmp_path, [_row(21, name='"Levis Men Blue, Grey Jeans"')], {21: b"x"})
    table, stats = _read_all(tmp_path)
    assert table.column("description").to_pylist() == ["Levis Men Blue, Grey Jeans"]
    assert stats.rows_repaired == 0


def test_skip_ids_set_and_callable(tmp_path: Path) -> None:
    generate_sample(tmp_path, rows=100, seed=1, clean=True)
    all_ids = [r for b in read_source(tmp_path) for r in b.column("id").to_pylist()]
    present = set(all_ids[:40])
    table, stats = _read_all(tmp_path, skip_ids=present)
    assert table.column("id").to_pylist() == all_ids[40:]
    assert stats.rows_already_present == 40 and stats.rows_accepted == 60 and not stats.rejects
    table, stats = _read_all(tmp_path, skip_ids=lambda i: i % 2 == 0)
    assert table.column("id").to_pylist() == [i for i in all_ids if i % 2]
    assert stats.rows_already_present == sum(1 for i in all_ids if i % 2 == 0)


def test_skipped_rows_do_not_need_their_image(tmp_path: Path) -> None:
    _write_source(tmp_path, [_row(31), _row(32)], {32: b"y"})
    table, stats = _read_all(tmp_path, skip_ids={31})
    assert table.column("id").to_pylist() == [32]
    assert stats.rows_already_present == 1 and not stats.rejects


def test_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(SourceError, match="nope"):
        check_source(missing)
    with pytest.raises(SourceError, match="does not exist"):
        read_source(missing)  # raises on the call, before iteration


def test_missing_csv(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with pytest.raises(SourceError, match=r"styles\.csv"):
        read_source(tmp_path)


def test_wrong_header(tmp_path: Path) -> None:
    (tmp_path / "styles.csv").write_text("id,gender,colour\n1,Men,Black\n", encoding="utf-8")
    with pytest.raises(SourceError) as info:
        check_source(tmp_path)
    message = str(info.value)
    assert str(tmp_path / "styles.csv") in message
    assert "expected" in message and "productDisplayName" in message and "id,gender,colour" in message


def test_empty_csv(tmp_path: Path) -> None:
    (tmp_path / "styles.csv").write_text("", encoding="utf-8")
    with pytest.raises(SourceError, match="empty"):
        check_source(tmp_path)


def test_check_source_returns_csv_path(tmp_path: Path) -> None:
    _write_source(tmp_path, [])
    assert check_source(str(tmp_path)) == tmp_path / "styles.csv"
    assert list(read_source(tmp_path)) == []


def test_batches_respect_batch_rows(tmp_path: Path) -> None:
    generate_sample(tmp_path, rows=250, seed=2, clean=True)
    stats = ReadStats()
    sizes = [b.num_rows for b in read_source(tmp_path, batch_rows=100, stats=stats)]
    assert sizes == [100, 100, 50] and stats.batches == 3
    assert [b.num_rows for b in read_source(tmp_path, batch_rows=250)] == [250]
    with pytest.raises(ValueError, match="batch_rows"):
        read_source(tmp_path, batch_rows=0)


def test_streams_lazily(tmp_path: Path) -> None:
    generate_sample(tmp_path, rows=50, seed=2, clean=True)
    stats = ReadStats()
    batches = read_source(tmp_path, batch_rows=10, stats=stats)
    assert stats.rows_read == 0
    next(batches)
    assert stats.rows_accepted == 10 and stats.rows_read == 10


def test_non_ascii_and_long_names(tmp_path: Path) -> None:
    long_name = "Fabindia Women Red Kurta " + "x" * 10_000
    names = ["Zara Femme Écru Chemisier à Fleurs", "ユニクロ メンズ ブラック Tシャツ", long_name]
    images = {40 + i: b"img" for i in range(len(names))}
    _write_source(tmp_path, [_row(40 + i, name=n) for i, n in enumerate(names)], images)
    table, stats = _read_all(tmp_path)
    assert table.column("description").to_pylist() == names
    assert not stats.rejects


def test_undecodable_bytes_are_replaced_and_kept(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "50.jpg").write_bytes(b"z")
    row = b"50,Men,Apparel,Topwear,Shirts,Black,Fall,2012,Casual,Caf\xe9 Men Shirt\n"
    data = (HEADER + "\n").encode() + row
    (tmp_path / "styles.csv").write_bytes(data)
    table, stats = _read_all(tmp_path)
    assert table.column("description").to_pylist() == ["Caf\ufffd Men Shirt"]
    assert not stats.rejects


def test_bom_header_accepted(tmp_path: Path) -> None:
    _write_source(tmp_path, [_row(60)], {60: b"q"}, encoding="utf-8-sig")
    table, _ = _read_all(tmp_path)
    assert table.column("id").to_pylist() == [60]


def test_image_path_built_from_integer_id(tmp_path: Path) -> None:
    # "007" is the integer 7, so its image is images/7.jpg, never images/007.jpg
    _write_source(tmp_path, [_row("007")], {7: b"seven"})
    (tmp_path / "images" / "007.jpg").write_bytes(b"wrong")
    table, _ = _read_all(tmp_path)
    assert table.to_pylist()[0]["id"] == 7 and table.to_pylist()[0]["image_bytes"] == b"seven"
