"""Scenario 8: operational faults give a clear error naming what and where, and no partial commit."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from fashion_assets.execution.driver import run_feature
from fashion_assets.execution.runners import InProcessRunner
from fashion_assets.features.image_embedding import ImageEmbedding
from fashion_assets.ingest import ingest
from fashion_assets.models.profiles import ClipSpec, ModelProfile, ModelUnavailableError
from fashion_assets.project import Project
from fashion_assets.settings import Settings
from fashion_assets.store import table as table_module
from fashion_assets.store.table import StoreError

from .helpers import make_project, referenced_files_exist


def enospc(*_a, **_k):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_table_directory_not_writable(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        pytest.skip("running as root: chmod does not stop root's writes (see test_table_path_under_a_file)")
    project = make_project(tmp_path, 20, 10, monkeypatch)
    version = project.table.dataset().version
    for root, dirs, _ in os.walk(project.table.uri):
        for d in [root, *(os.path.join(root, x) for x in dirs)]:
            os.chmod(d, stat.S_IRUSR | stat.S_IXUSR)
    try:
        s = run_feature(project.table, project.features["color_tags"], project.spec("color_tags"))
        assert s.committed == [] and s.failures
        assert all(project.table.uri in f.error or "ermission" in f.error for f in s.failures)
    finally:
        for root, dirs, _ in os.walk(project.table.uri):
            for d in [root, *(os.path.join(root, x) for x in dirs)]:
                os.chmod(d, stat.S_IRWXU)
    assert project.table.dataset().version == version


def test_table_path_under_a_file(tmp_path, source):
    """A db path that cannot be a directory (it sits under a regular file): works even as root."""
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")
    project = Project(Settings(str(blocker / "db"), "products", str(source), 100))
    with pytest.raises(StoreError, match="blocker/db") as info:
        ingest(project.table, source, project.specs(), 100)
    assert "cannot create table" in str(info.value)
    assert blocker.read_text() == "not a directory"


def test_disk_full_while_writing_a_column_file(tmp_path, monkeypatch):
    project = make_project(tmp_path, 30, 10, monkeypatch)
    frags = [f.id for f in project.table.fragments()]
    version = project.table.dataset().version
    real = table_module.LanceFileWriter
    calls = {"n": 0}

    class FullAfterFirst:
        def __init__(self, *a, **k):
            self.inner = real(*a, **k)

        def write_batch(self, batch):
            calls["n"] += 1
            if calls["n"] > 1:
                enospc()
            self.inner.write_batch(batch)

        def close(self):
            self.inner.close()

    monkeypatch.setattr(table_module, "LanceFileWriter", FullAfterFirst)
    s = run_feature(project.table, project.features["color_tags"], project.spec("color_tags"), commit_every=8)
    assert s.committed == [frags[0]]  # only the whole fragment that was written
    assert [f.fragment_id for f in s.failures] == frags[1:]
    for f in s.failures:
        assert "No space left on device" in f.error
        assert f"fragment {f.fragment_id}" in f.error and project.table.uri in f.error
    assert project.table.dataset().version == version + 1
    assert project.status().features["color_tags"].missing == frags[1:]
    assert referenced_files_exist(project) == []
    monkeypatch.undo()
    again = run_feature(project.table, project.features["color_tags"], project.spec("color_tags"))
    assert again.committed == frags[1:] and again.failures == []


def test_disk_full_while_appending_rows(tmp_path, monkeypatch):
    from fashion_assets.catalog.sample import generate_sample

    project = make_project(tmp_path, 20, 10, monkeypatch)
    version, rows = project.table.dataset().version, project.table.dataset().count_rows()
    generate_sample(project.settings.source_dir, 40, seed=4, clean=True)
    monkeypatch.setattr(table_module, "write_fragments", enospc)
    with pytest.raises(StoreError, match="cannot write new rows to .*products.lance.*No space left"):
        ingest(project.table, project.settings.source_dir, project.specs(), 10)
    assert project.table.dataset().version == version and project.table.dataset().count_rows() == rows


def test_data_file_missing_from_a_fragment(tmp_path, monkeypatch):
    project = make_project(tmp_path, 30, 10, monkeypatch)
    frags = [f.id for f in project.table.fragments()]
    lost = project.table.dataset().get_fragment(frags[1]).metadata.files[0].path
    os.remove(f"{project.table.uri}/data/{lost}")
    assert referenced_files_exist(project) == [f"fragment {frags[1]}: data/{lost}"]
    with pytest.raises(Exception, match=lost):  # a read names the missing file
        project.table.dataset().to_table()
    version = project.table.dataset().version
    s = run_feature(project.table, project.features["color_tags"], project.spec("color_tags"))
    assert s.committed == [frags[0], frags[2]]  # the others go on
    (failure,) = s.failures
    assert failure.fragment_id == frags[1] and lost in failure.error and "Not found" in failure.error
    assert project.table.dataset().version == version + 1
    assert project.status().features["color_tags"].missing == [frags[1]]


def test_deleted_feature_file_is_not_reported_materialized(tmp_path, monkeypatch):
    project = make_project(tmp_path, 20, 10, monkeypatch)
    run_feature(project.table, project.features["color_tags"], project.spec("color_tags"))
    frag = project.table.dataset().get_fragment(project.table.fragments()[0].id)
    os.remove(f"{project.table.uri}/data/{frag.metadata.files[-1].path}")
    assert project.status().features["color_tags"].missing == [frag.fragment_id]
    assert project.status(verify=False).features["color_tags"].missing == []  # the manifest alone
    again = run_feature(project.table, project.features["color_tags"], project.spec("color_tags"))
    assert again.committed == [frag.fragment_id]  # written again, not skipped
    assert project.status().features["color_tags"].missing == []
    assert project.table.dataset().count_rows("color_tags IS NULL") == 0


def test_model_unavailable_names_the_file_and_both_ways_out(tmp_path, monkeypatch):
    project = make_project(tmp_path, 10, 10, monkeypatch)
    version = project.table.dataset().version
    missing = tmp_path / "no-such-model.pt"
    monkeypatch.setenv("FASHION_CLIP_CHECKPOINT", str(missing))
    with pytest.raises(ModelUnavailableError) as info:
        _ = Project(project.settings, ModelProfile.from_env()).features
    message = str(info.value)
    assert str(missing) in message and "FASHION_CLIP_CHECKPOINT" in message
    assert "FASHION_MODEL_PROFILE=tiny" in message
    assert project.table.dataset().version == version


def test_model_file_gone_at_run_time_fails_before_any_commit(tmp_path, monkeypatch):
    """The checkpoint vanished after the profile was built: the run stops with the error, commits nothing."""
    project = make_project(tmp_path, 20, 10, monkeypatch)
    version = project.table.dataset().version
    gone = ClipSpec("local", "ViT-B-32", str(tmp_path / "gone.pt"), "local:gone.pt")
    broken = ImageEmbedding(ModelProfile("tiny", gone, project.profile.blip))
    with pytest.raises(ModelUnavailableError, match="gone.pt"):
        run_feature(project.table, broken, project.spec("image_embedding"), runner=InProcessRunner())
    assert project.table.dataset().version == version
    assert len(project.status().features["image_embedding"].missing) == 2
