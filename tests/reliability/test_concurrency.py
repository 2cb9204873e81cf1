"""Scenarios 2 and 3: concurrent refreshes of one feature, of two features, and an ingest during a run."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time

from fashion_assets.catalog.sample import generate_sample
from fashion_assets.execution.driver import run_feature
from fashion_assets.execution.runners import InProcessRunner
from fashion_assets.ingest import ingest

from .helpers import child_env, expected_color_tags, make_project, referenced_files_exist, stored

# A child process: wait for the "go" file, run one feature over the given fragments, print its summary.
RUN = textwrap.dedent(
    """
    import json, logging, os, sys, time
    logging.basicConfig(level=logging.WARNING, format="LOG %(name)s %(message)s")
    logging.getLogger("fashion_assets.store.table").setLevel(logging.INFO)
    from fashion_assets.execution.driver import run_feature
    from fashion_assets.execution.runners import InProcessRunner
    from fashion_assets.project import Project
    go, name, frags, started = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
    project = Project()
    feature = project.features[name]
    feature.setup()
    open(started, "w").close()
    while not os.path.exists(go):
        time.sleep(0.005)
    s = run_feature(project.table, feature, project.spec(name), fragment_ids=frags,
                    runner=InProcessRunner(), commit_every=1, checkpoint_size=10)
    print("SUMMARY" + json.dumps({"committed": s.committed, "failures": [f.error for f in s.failures],
          "not_committed": s.not_committed, "versions": s.table_versions}))
    """
)


def start(tmp_path, name: str, frags: list[int], tag: str) -> tuple[subprocess.Popen, object]:
    started = tmp_path / f"started-{tag}"
    proc = subprocess.Popen(
        [sys.executable, "-c", RUN, str(tmp_path / "go"), name, json.dumps(frags), str(started)],
        env=child_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc, started


def wait_started(*flags, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not all(f.exists() for f in flags):
        assert time.time() < deadline, "children did not start"
        time.sleep(0.05)


def finish(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert "Traceback" not in err and "StoreError" not in err, err[-3000:]
    line = next(x for x in out.splitlines() if x.startswith("SUMMARY"))
    summary = json.loads(line[len("SUMMARY") :])
    summary["conflicts_retried"] = err.count("commit conflict on")  # logged at INFO, retried, never raised
    print(f"conflicts retried: {summary['conflicts_retried']}")
    return summary


def field_files(project, column: str) -> dict[int, int]:
    """Per fragment: how many data files hold ``column`` (1 = written once; 2+ would be a double attach)."""
    ds = project.table.dataset()
    (fid,) = project.table.field_ids([column], ds)
    return {f.fragment_id: sum(fid in d.fields for d in f.metadata.files) for f in ds.get_fragments()}


def test_two_refreshes_of_one_feature_over_overlapping_fragments(tmp_path, monkeypatch):
    project = make_project(tmp_path, 60, 5, monkeypatch)  # 12 fragments of 5 rows
    frags = [f.id for f in project.table.fragments()]
    a, fa = start(tmp_path, "color_tags", frags[:8], "a")
    b, fb = start(tmp_path, "color_tags", frags[4:], "b")
    wait_started(fa, fb)
    (tmp_path / "go").touch()
    ra, rb = finish(a), finish(b)
    assert ra["failures"] == [] and rb["failures"] == []
    assert set(ra["committed"]) | set(rb["committed"]) == set(frags)
    status = project.status().features["color_tags"]
    assert status.missing == []
    assert stored(project, "color_tags") == expected_color_tags(project)  # right and complete
    assert set(field_files(project, "color_tags").values()) == {1}  # a duplicate commit swapped, not stacked
    assert referenced_files_exist(project) == []


def test_two_features_and_an_ingest_at_once(tmp_path, monkeypatch):
    project = make_project(tmp_path, 40, 10, monkeypatch)  # 4 fragments of 10
    before = [f.id for f in project.table.fragments()]
    a, fa = start(tmp_path, "color_tags", before, "a")
    b, fb = start(tmp_path, "image_embedding", before, "b")
    wait_started(fa, fb)
    (tmp_path / "go").touch()
    # an ingest appending 20 rows while both runs are computing and committing
    generate_sample(project.settings.source_dir, 60, seed=4, clean=True)
    report = ingest(project.table, project.settings.source_dir, project.specs(), 10)
    assert report.rows_added == 20
    ra, rb = finish(a), finish(b)
    assert ra["failures"] == [] and rb["failures"] == []
    # the ingest really ran during the model run: that run committed fragments after the ingest's commit
    assert max(rb["versions"]) > report.table_version, (rb["versions"], report.table_version)
    assert sorted(ra["committed"]) == before and sorted(rb["committed"]) == before
    new = sorted(int(f) for f in report.fragments_added)
    status = project.status()
    assert project.table.dataset().count_rows() == 60
    for name in ("color_tags", "image_embedding"):  # all landed; the new rows show as missing
        assert status.features[name].materialized == before, name
        assert status.features[name].missing == new, name
    # the next refresh computes exactly the new rows
    for name in ("color_tags", "image_embedding"):
        s = run_feature(project.table, project.features[name], project.spec(name), runner=InProcessRunner())
        assert sorted(s.committed) == new and s.rows_computed == 20 and sorted(s.skipped) == before, name
    assert stored(project, "color_tags") == expected_color_tags(project)
    assert project.table.dataset().count_rows("image_embedding IS NULL") == 0
    assert referenced_files_exist(project) == []


def test_same_fragment_commit_conflict_is_retried_not_raised(tmp_path, monkeypatch, caplog):
    """Deterministic race: another writer commits the same fragment + column between this run's read of
    the latest version and its commit. Lance raises CommitConflictError; the store retries; the run wins."""
    import lance
    import numpy as np
    import pyarrow as pa

    project = make_project(tmp_path, 20, 10, monkeypatch)
    table, spec = project.table, project.spec("color_tags")
    f0 = table.fragments()[0].id
    ds = table.dataset()
    t = ds.get_fragment(f0).to_table(columns=["id"], with_row_address=True)
    offsets = np.asarray(t["_rowaddr"].to_numpy() & 0xFFFFFFFF, dtype=np.int64)
    other = table.write_column_file(
        f0, spec, offsets, pa.array(["other"] * 10), pa.nulls(10, pa.string()), ds
    )
    real = lance.LanceDataset.commit
    raced = []

    def racing_commit(uri, op, read_version=None, **kw):
        if not raced and isinstance(op, lance.LanceOperation.DataReplacement):
            raced.append(
                real(
                    uri,
                    lance.LanceOperation.DataReplacement(
                        [lance.LanceOperation.DataReplacementGroup(f0, other.data_file())]
                    ),
                    read_version=read_version,
                    **kw,
                ).version
            )
        return real(uri, op, read_version=read_version, **kw)

    monkeypatch.setattr(lance.LanceDataset, "commit", staticmethod(racing_commit))
    caplog.set_level("INFO", logger="fashion_assets.store.table")
    s = run_feature(table, project.features["color_tags"], spec, fragment_ids=[f0], runner=InProcessRunner())
    monkeypatch.undo()
    assert raced and s.failures == [] and s.committed == [f0]
    assert "commit conflict" in caplog.text  # the conflict happened and was retried
    assert s.table_versions[0] > raced[0]
    values = stored(project, "color_tags")
    expected = expected_color_tags(project)
    ids0 = set(t["id"].to_pylist())
    assert {i: values[i] for i in ids0} == {i: expected[i] for i in ids0}  # the retried commit's values
    assert field_files(project, "color_tags")[f0] == 1
