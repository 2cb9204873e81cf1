"""Search in every mode on a tiny-profile table: image embeddings from the real (tiny) ImageEmbedding,
caption embeddings from the real CaptionEmbedding over captions planted here (the captioner is not needed)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from fashion_assets.catalog.sample import generate_sample
from fashion_assets.execution.driver import run_feature
from fashion_assets.indexes import index_status, update_indexes
from fashion_assets.ingest import ingest
from fashion_assets.project import Project
from fashion_assets.search import SearchError, rrf, search
from fashion_assets.settings import Settings
from tests.test_indexes import write_feature

ROWS = 80
FRAGMENT_ROWS = 40
PLANTED = "a striped quokka jumper on a wooden hanger"  # the one caption with these words


def plant_captions(project: Project, fragments: list[int], special: dict[int, str]) -> None:
    """Captions for ``fragments``: ``special[id]`` where given, else a plain one; plus caption_embedding and
    colour tags computed by the real features, so every feature of those fragments is materialized."""
    spec = project.spec("caption")
    for f in fragments:
        write_feature(
            project.table,
            spec,
            f,
            lambda ids: pa.array([special.get(i, f"a product photo number {i}") for i in ids]),
        )
    for name in ("caption_embedding", "color_tags"):
        summary = run_feature(project.table, project.features[name], project.spec(name), fragments)
        assert not summary.failures


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An 80-row tiny-profile table in two fragments with every feature, and its search indexes."""
    root = tmp_path_factory.mktemp("search")
    generate_sample(root / "source", ROWS, seed=11, clean=True)
    settings = Settings(str(root / "db"), "products", str(root / "source"), FRAGMENT_ROWS)
    project = Project(settings)
    ingest(project.table, settings.source_dir, project.specs(), FRAGMENT_ROWS)
    frags = [f.id for f in project.table.fragments()]
    rows = (
        project.table.dataset().to_table(columns=["id", "description", "image_bytes", "gender"]).to_pylist()
    )
    special = rows[17]["id"]
    assert not run_feature(
        project.table, project.features["image_embedding"], project.spec("image_embedding")
    ).failures
    plant_captions(project, frags, {special: PLANTED})
    update_indexes(project.table)
    return {"project": project, "rows": rows, "special": special, "root": root, "settings": settings}


def unique_image_row(rows: list[dict], start: int = 0) -> dict:
    counts: dict[bytes, int] = {}
    for r in rows:
        counts[r["image_bytes"]] = counts.get(r["image_bytes"], 0) + 1
    return next(r for r in rows[start:] if counts[r["image_bytes"]] == 1)


def test_fts_exact_text_match_comes_first(world):
    project = world["project"]
    descriptions = [r["description"] for r in world["rows"]]
    target = next(r for r in world["rows"][5:] if descriptions.count(r["description"]) == 1)
    hits = search(project, target["description"], k=5, mode="fts")
    assert hits[0]["id"] == target["id"]
    assert hits[0]["description"] == target["description"]
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    # caption text is searched too
    hits = search(project, "quokka", k=3, mode="fts")
    assert [h["id"] for h in hits] == [world["special"]]
    assert hits[0]["caption"] == PLANTED


def test_image_query_returns_its_own_product_first(world, tmp_path):
    row = unique_image_row(world["rows"], 30)
    path = tmp_path / "query.jpg"
    path.write_bytes(row["image_bytes"])
    hits = search(world["project"], image=path, k=5, mode="vector")
    assert hits[0]["id"] == row["id"]
    assert hits[0]["score"] == pytest.approx(1.0, abs=1e-4)  # cosine similarity with itself
    assert len(hits) == 5 and all(h["score"] <= hits[0]["score"] + 1e-6 for h in hits)
    # bytes work as well as a path; hybrid with an image and no words is the vector search
    assert search(world["project"], image=row["image_bytes"], k=1)[0]["id"] == row["id"]


def test_text_vector_search_uses_clip_text_embeddings(world):
    project = world["project"]
    hits = search(project, "navy blue shirt", k=7, mode="vector")
    assert len(hits) == 7
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert all(-1.0 - 1e-5 <= h["score"] <= 1.0 + 1e-5 for h in hits)
    # the same text encoder made caption_embedding: the planted caption finds itself exactly
    hits = search(project, PLANTED, k=3, mode="vector", vector_column="caption_embedding")
    assert hits[0]["id"] == world["special"] and hits[0]["score"] == pytest.approx(1.0, abs=1e-4)


def test_hybrid_fuses_both_lists(world):
    project = world["project"]
    hits = search(project, "quokka", k=10)  # hybrid is the default
    assert world["special"] in [h["id"] for h in hits[:2]]  # first in fts: ties at most with vector's first
    special = next(h for h in hits if h["id"] == world["special"])
    assert special["text_rank"] == 1
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert len(hits) == 10 and len({h["id"] for h in hits}) == 10
    for h in hits:
        expected = sum(1 / (60 + r) for r in (h["vector_rank"], h["text_rank"]) if r)
        assert h["score"] == pytest.approx(expected)
    # an image and words: the image drives the vector side; first in both lists is first fused
    image = next(r["image_bytes"] for r in world["rows"] if r["id"] == world["special"])
    hits = search(project, "quokka", image=image, k=5)
    assert hits[0]["id"] == world["special"]
    assert (hits[0]["vector_rank"], hits[0]["text_rank"]) == (1, 1)
    assert hits[0]["score"] == pytest.approx(2 / 61)
    other = unique_image_row(world["rows"], 50)
    hits = search(project, "quokka", image=other["image_bytes"], k=5)
    assert {hits[0]["id"], hits[1]["id"]} == {other["id"], world["special"]}


def test_rrf():
    scores = rrf([[1, 2, 3], [3, 4]])
    assert scores[3] == pytest.approx(1 / 63 + 1 / 61)
    assert max(scores, key=scores.get) == 3


def test_where_filters_before_top_k(world):
    project = world["project"]
    women = {r["id"] for r in world["rows"] if r["gender"] == "Women"}
    assert women
    for mode in ("vector", "fts", "hybrid"):
        hits = search(project, "shirt top", k=len(women) + 5, mode=mode, where="gender = 'Women'")
        assert hits and {h["id"] for h in hits} <= women, mode
        assert all(h["gender"] == "Women" for h in hits)
    row = unique_image_row(world["rows"], 10)
    other = "Men" if row["gender"] != "Men" else "Women"
    hits = search(project, image=row["image_bytes"], k=3, where=f"gender = '{other}'")
    assert row["id"] not in {h["id"] for h in hits}


def test_results_carry_catalogue_columns(world):
    (hit,) = search(world["project"], "quokka", k=1, mode="fts")
    for column in ("id", "description", "caption", "score", "gender", "article_type", "base_colour", "year"):
        assert column in hit
    assert "image_bytes" not in hit and "image_embedding" not in hit


def test_bad_requests_are_clear_errors(world):
    project = world["project"]
    with pytest.raises(SearchError, match="mode"):
        search(project, "x", mode="semantic")
    with pytest.raises(SearchError, match="nothing to search"):
        search(project, "  ")
    with pytest.raises(SearchError, match="fts mode needs"):
        search(project, image=b"abc", mode="fts")
    with pytest.raises(SearchError, match="filter|search failed"):
        search(project, "shirt", mode="fts", where="no_such_column = 1")
    with pytest.raises(SearchError, match="cannot embed"):
        search(project, image=b"not an image", mode="vector")


def test_rows_behind_the_index_are_found(tmp_path):
    """New rows (own fragment, features computed, indexes not updated) come back in every mode."""
    generate_sample(tmp_path / "source", 40, seed=5, clean=True)
    settings = Settings(str(tmp_path / "db"), "products", str(tmp_path / "source"), 20)
    project = Project(settings)
    ingest(project.table, settings.source_dir, project.specs(), 20)
    first = [f.id for f in project.table.fragments()]
    run_feature(project.table, project.features["image_embedding"], project.spec("image_embedding"))
    plant_captions(project, first, {})
    update_indexes(project.table)

    generate_sample(tmp_path / "source", 60, seed=5, clean=True)
    ingest(project.table, settings.source_dir, project.specs(), 20)
    new = [f.id for f in project.table.fragments() if f.id not in first]
    run_feature(project.table, project.features["image_embedding"], project.spec("image_embedding"), new)
    rows = project.table.dataset().get_fragment(new[0]).to_table(columns=["id", "image_bytes"]).to_pylist()
    target = unique_image_row(rows)
    plant_captions(project, new, {target["id"]: "an emerald wombat scarf"})
    assert index_status(project.table)["image_embedding_idx"]["unindexed_rows"] == 20

    assert search(project, "wombat", k=1, mode="fts")[0]["id"] == target["id"]
    assert search(project, image=target["image_bytes"], k=1, mode="vector")[0]["id"] == target["id"]
    assert search(project, "wombat", k=1)[0]["id"] == target["id"]


def test_cli_search_json(world, monkeypatch, capsys, tmp_path, instance):
    from fashion_assets.cli import main

    settings: Settings = world["settings"]
    monkeypatch.setenv("FASHION_DB_URI", settings.db_uri)
    monkeypatch.setenv("FASHION_TABLE", settings.table_name)
    assert main(["search", "quokka", "--k", "3", "--mode", "fts", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert hits[0]["id"] == world["special"]
    assert {"id", "description", "caption", "score"} <= set(hits[0])

    row = unique_image_row(world["rows"], 40)
    image = Path(tmp_path / "q.jpg")
    image.write_bytes(row["image_bytes"])
    assert main(["search", "--image", str(image), "--k", "2", "--where", f"id = {row['id']}", "--json"]) == 0
    hits = json.loads(capsys.readouterr().out)
    assert [h["id"] for h in hits] == [row["id"]]

    assert main(["search", "quokka", "--k", "2"]) == 0  # the text table
    out = capsys.readouterr().out
    assert str(world["special"]) in out and "quokka" in out

    assert main(["search", "x", "--where", "nope = 1"]) == 2
    assert "error" in capsys.readouterr().err

    assert main(["index", "--json"]) == 0  # a run of index_job on the instance: indexes already current
    data = json.loads(capsys.readouterr().out)
    assert set(data["actions"].values()) == {"current"} and data["unindexed_rows"]["caption_idx"] == 0
    assert instance.get_runs(limit=1)[0].job_name == "index_job"

    assert main(["status", "--json"]) == 0
    indexes = json.loads(capsys.readouterr().out)["indexes"]
    assert (
        indexes["image_embedding_idx"]["present"] and indexes["image_embedding_idx"]["indexed_rows"] == ROWS
    )


def test_vectors_are_unit_norm_so_scores_are_cosine(world):
    ds = world["project"].table.dataset()
    v = np.array(ds.to_table(columns=["image_embedding"])["image_embedding"].to_pylist(), dtype=np.float32)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
