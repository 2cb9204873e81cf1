"""Security: no code loaded from the table, the web UI bound to 127.0.0.1, image paths from integer ids."""

from __future__ import annotations

import re
from pathlib import Path

from fashion_assets.catalog.source import read_source

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "fashion_assets"
UNSAFE = re.compile(
    r"\bpickle\.loads?\(|\bcloudpickle\.loads?\(|\bdill\.loads?\(|(?<![.\w])eval\(|(?<![.\w])exec\(|marshal\.loads"
)


def test_no_code_is_loaded_from_data():
    """Features are code in the package; nothing deserializes code from the table or the checkpoints."""
    hits = [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in PACKAGE.rglob("*.py")
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if UNSAFE.search(line)
    ]
    assert hits == []


def test_torch_load_is_weights_only_everywhere():
    for p in PACKAGE.rglob("*.py"):
        for n, line in enumerate(p.read_text().splitlines(), 1):
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{p}:{n}"


def test_webserver_binds_localhost():
    ui = ROOT.joinpath("Makefile").read_text().split("\nui:", 1)[1].split("\n\n", 1)[0]
    assert "dagster dev" in ui and "-h 127.0.0.1" in ui
    e2e = ROOT.joinpath("tests", "e2e_helpers.py").read_text()  # how the UI tests start `dagster dev`
    assert '"dev", "-w", "workspace.yaml", "-h", "127.0.0.1"' in e2e and "0.0.0.0" not in e2e


def test_image_path_comes_from_the_integer_id_only(tmp_path):
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    header = (
        "id,gender,masterCategory,subCategory,articleType,baseColour,season,year,usage,productDisplayName"
    )
    (tmp_path / "secret.jpg").write_bytes(b"secret")
    (src / "images" / "7.jpg").write_bytes(b"x")
    lines = [
        header,
        "../secret,Men,A,T,T,Blue,S,2012,C,Evil",
        "007,Men,A,T,T,Blue,S,2012,C,Padded id",
    ]
    (src / "styles.csv").write_text("\n".join(lines) + "\n")
    rows = [r for b in read_source(src) for r in b.to_pylist()]
    assert [(r["id"], r["image_bytes"]) for r in rows] == [(7, b"x")]  # "007" -> 7 -> images/7.jpg
