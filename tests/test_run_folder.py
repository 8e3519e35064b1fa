"""Run folders belong to their run: claiming, replacing, locking, statuses."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from imbalance import run_folder
from imbalance.errors import UserError
from imbalance.run_folder import LOCK, MARKER, RunFolder, read_marker

ROOT = Path(__file__).resolve().parent.parent


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _finished_run(folder: Path, files=("config.json", "best.pt"), status="complete") -> None:
    run = RunFolder.claim(str(folder))
    run.begin()
    for name in files:
        run.file(name).write_text(name)
    run.finish(status)
    run.release()


def test_a_new_folder_gets_a_marker_listing_every_file_before_it_is_written(tmp_path):
    folder = tmp_path / "a" / "run"
    run = RunFolder.claim(str(folder), argv=["train_classifier.py", "--x"])
    assert run.created and read_marker(folder) is None  # nothing of the run until begin()
    run.begin()
    assert read_marker(folder)["status"] == "running"
    path = run.file("best.pt")
    assert read_marker(folder)["files"] == ["best.pt"] and not path.exists()
    run.finish("complete")
    marker = read_marker(folder)
    assert marker["status"] == "complete" and marker["command"] == ["train_classifier.py", "--x"] and "finished" in marker


def test_a_folder_with_foreign_files_is_refused_untouched(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "config.json").write_text("{}")  # looks like a run, but no marker of this tool
    before = _snapshot(tmp_path)
    with pytest.raises(UserError, match="holds files that no run of this tool wrote .*config.json, notes.txt"):
        RunFolder.claim(str(tmp_path))
    assert _snapshot(tmp_path) == before and not (tmp_path / LOCK).exists()


def test_an_earlier_run_is_refused_without_overwrite(tmp_path):
    _finished_run(tmp_path)
    before = _snapshot(tmp_path)
    with pytest.raises(UserError, match="holds an earlier run \\(complete.*--overwrite"):
        RunFolder.claim(str(tmp_path))
    assert _snapshot(tmp_path) == before


def test_overwrite_removes_only_the_earlier_runs_files_and_only_at_begin(tmp_path):
    _finished_run(tmp_path, files=("config.json", "best.pt", "tensorboard"))
    (tmp_path / "tensorboard").unlink()
    (tmp_path / "tensorboard").mkdir()
    (tmp_path / "tensorboard" / "events").write_text("e")
    (tmp_path / ".best.pt.abc.tmp").write_text("a temporary file of a killed write")
    (tmp_path / "notes.txt").write_text("the user's")
    run = RunFolder.claim(str(tmp_path), overwrite=True)
    assert (tmp_path / "best.pt").exists()  # claiming changes nothing of the earlier run
    run.begin()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([LOCK, MARKER, "notes.txt"])
    assert read_marker(tmp_path)["files"] == []


def test_a_marker_cannot_point_outside_its_folder(tmp_path, monkeypatch):
    outside = tmp_path / "precious.txt"
    outside.write_text("keep")
    run_dir = tmp_path / "run"
    _finished_run(run_dir)
    marker = json.loads((run_dir / MARKER).read_text())
    marker["files"] += ["../precious.txt", str(outside), "/", "..", ".", "", "best.pt/../../precious.txt", None, 3]
    (run_dir / MARKER).write_text(json.dumps(marker))

    # Should the code under test be wrong, these guards stop it before it deletes anything
    # outside the run folder (the test then fails instead).
    inside = run_dir.resolve()
    real_rmtree, real_unlink = run_folder.shutil.rmtree, Path.unlink

    def guarded_rmtree(path, *args, **kwargs):
        assert Path(path).resolve().is_relative_to(inside) and Path(path).resolve() != inside, f"rmtree({path})"
        return real_rmtree(path, *args, **kwargs)

    def guarded_unlink(self, *args, **kwargs):
        assert self.absolute().parent.resolve().is_relative_to(inside), f"unlink({self})"
        return real_unlink(self, *args, **kwargs)

    monkeypatch.setattr(run_folder.shutil, "rmtree", guarded_rmtree)
    monkeypatch.setattr(Path, "unlink", guarded_unlink)
    run = RunFolder.claim(str(run_dir), overwrite=True)
    run.begin()
    assert outside.read_text() == "keep"
    assert sorted(p.name for p in run_dir.iterdir()) == [LOCK, MARKER]


def test_a_nested_run_is_removed_with_its_parent(tmp_path):
    parent = RunFolder.claim(str(tmp_path / "cmp"))
    parent.begin()
    child_dir = parent.file("baseline")
    _finished_run(child_dir)
    parent.file("comparison.json").write_text("{}")
    parent.finish("complete")
    parent.release()
    again = RunFolder.claim(str(tmp_path / "cmp"), overwrite=True)
    again.begin()
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == [LOCK, MARKER]


def test_abandon_leaves_the_folder_as_it_was_found(tmp_path):
    new = tmp_path / "new"
    RunFolder.claim(str(new)).abandon()
    assert not new.exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    RunFolder.claim(str(empty)).abandon()
    assert empty.is_dir() and list(empty.iterdir()) == []
    earlier = tmp_path / "earlier"
    _finished_run(earlier)
    before = _snapshot(earlier)
    RunFolder.claim(str(earlier), overwrite=True).abandon()  # bad input on an --overwrite run
    assert _snapshot(earlier) == before


def test_a_second_process_cannot_claim_a_folder_in_use(tmp_path):
    run = RunFolder.claim(str(tmp_path / "run"))
    run.begin()
    code = f"from imbalance.run_folder import RunFolder; RunFolder.claim({str(tmp_path / 'run')!r}, overwrite=True)"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode != 0 and "is in use by a running training run (pid" in done.stderr
    run.finish("complete")
    run.release()
    again = RunFolder.claim(str(tmp_path / "run"), overwrite=True)  # free once released
    again.release()


@pytest.mark.parametrize("path, message", [
    ("", "is empty"),
    ("   ", "is empty"),
    ("file.txt", "is a file"),
    ("file.txt/sub", "lies under"),
])
def test_bad_paths_are_one_line(tmp_path, monkeypatch, path, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(UserError, match=message):
        RunFolder.claim(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_resume_needs_an_unfinished_run(tmp_path):
    with pytest.raises(UserError, match="no such folder"):
        RunFolder.claim(str(tmp_path / "nope"), resume=True)
    (tmp_path / "plain").mkdir()
    with pytest.raises(UserError, match="not a run folder"):
        RunFolder.claim(str(tmp_path / "plain"), resume=True)
    _finished_run(tmp_path / "done")
    with pytest.raises(UserError, match="complete; there is nothing to resume"):
        RunFolder.claim(str(tmp_path / "done"), resume=True)
    _finished_run(tmp_path / "stopped", status="interrupted")
    run = RunFolder.claim(str(tmp_path / "stopped"), resume=True)
    run.begin(resume=True)
    marker = read_marker(tmp_path / "stopped")
    assert marker["status"] == "running" and marker["resumes"] == 1 and marker["files"] == ["config.json", "best.pt"]
    assert (tmp_path / "stopped" / "best.pt").exists()
