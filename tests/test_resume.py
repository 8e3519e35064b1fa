"""Interrupted runs: statuses, --resume equal to the uninterrupted run, SIGTERM, kill -9."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import train_classifier
from imbalance import reporting
from imbalance.checkpoint import load_checkpoint
from imbalance.demo import make_demo_cohort
from imbalance.errors import UserError

ROOT = Path(__file__).resolve().parent.parent
BASE = ["--demo_rows", "800", "--epochs", "4", "--early_stop_patience", "0", "--batch_size", "64", "--quiet",
        "--baselines", "none", "--optimize_thresholds", "--no_tensorboard", "--use_weighted_sampling"]


def _train(*args) -> int:
    return train_classifier.main([str(a) for a in args])


def _status(folder: Path) -> str:
    return json.loads((folder / "run.json").read_text())["status"]


def _assert_same_run(a: Path, b: Path) -> None:
    """Bit-identical weights, thresholds, predictions and metrics (bar seconds and folder)."""
    first, second = torch.load(a / "best.pt", weights_only=True), torch.load(b / "best.pt", weights_only=True)
    assert len(first["members"]) == len(second["members"])
    for x, y in zip(first["members"], second["members"]):
        assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    assert first["thresholds"] == second["thresholds"] and second["complete"]
    assert (a / "test_predictions.csv").read_bytes() == (b / "test_predictions.csv").read_bytes()
    ma, mb = json.loads((a / "metrics.json").read_text()), json.loads((b / "metrics.json").read_text())
    for report in (ma, mb):
        del report["run"]["seconds"], report["run"]["output_dir"]
    assert ma == mb


@pytest.fixture
def interrupt_at(monkeypatch):
    """Ctrl-C at the end of one epoch, before its checkpoints are written: last.pt holds the one before."""
    real = reporting.EpochLogger.log_epoch

    def arm(member: int, epoch: int) -> None:
        def log_epoch(self, record):
            if record.member == member and record.epoch == epoch:
                raise KeyboardInterrupt
            return real(self, record)

        monkeypatch.setattr(reporting.EpochLogger, "log_epoch", log_epoch)

    yield arm
    monkeypatch.setattr(reporting.EpochLogger, "log_epoch", real)


@pytest.mark.parametrize("extra, member, epoch", [
    (["--lr_scheduler", "plateau"], 0, 3),
    (["--lr_scheduler", "cosine", "--ensemble", "2"], 1, 2),  # the second member, the first one finished
    (["--ensemble", "2"], 0, 1),  # before any last.pt: starts again from the beginning
    (["--model", "tabm", "--model_args", "k=2,d_block=8"], 0, 2),
    # recall compared at the best epoch's precision: the best epoch's record comes back with the history
    (["--early_stop_metric", "macro_recall", "--epochs", "7"], 0, 5),
])
def test_resume_ends_bit_identical_to_the_uninterrupted_run(tmp_path, interrupt_at, capsys, extra, member, epoch):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert _train(*BASE, *extra, "--output_dir", whole) == 0
    interrupt_at(member, epoch)
    assert _train(*BASE, *extra, "--output_dir", cut) == 130
    assert "interrupted; last.pt holds the last completed epoch: continue with --resume" in capsys.readouterr().err
    assert _status(cut) == "interrupted"
    interrupt_at(-1, -1)
    assert _train("--resume", cut, "--quiet") == 0
    assert _status(cut) == "complete"
    _assert_same_run(whole, cut)


def test_an_interruption_after_training_resumes_to_the_same_outputs(tmp_path, monkeypatch):
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    assert _train(*BASE, "--output_dir", whole) == 0
    from imbalance import pipeline

    real = pipeline.score_models

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "score_models", interrupted)
    assert _train(*BASE, "--output_dir", cut) == 130
    monkeypatch.setattr(pipeline, "score_models", real)
    assert _train("--resume", cut, "--quiet") == 0
    _assert_same_run(whole, cut)


def test_resume_refuses_other_flags_and_finished_runs(tmp_path, interrupt_at, capsys):
    run = tmp_path / "run"
    interrupt_at(0, 2)
    assert _train(*BASE, "--output_dir", run) == 130
    interrupt_at(-1, -1)
    capsys.readouterr()
    assert _train("--resume", run, "--lr", "0.1") == 2
    assert "drop --lr" in capsys.readouterr().err
    assert _train("--resume", run, "--quiet", "--num_threads", "1") == 0
    assert _train("--resume", run) == 2
    assert "that run is complete; there is nothing to resume" in capsys.readouterr().err
    assert _train("--resume", tmp_path / "nope") == 2


def test_predict_refuses_the_checkpoint_of_an_unfinished_run(tmp_path, interrupt_at, capsys):
    import predict

    run = tmp_path / "run"
    interrupt_at(0, 3)
    assert _train(*BASE, "--output_dir", run) == 130
    rows = tmp_path / "rows.csv"
    make_demo_cohort(n_rows=100, seed=1).to_csv(rows, index=False)
    capsys.readouterr()
    assert predict.main(["--checkpoint", str(run), "--csv_path", str(rows), "--output", str(tmp_path / "p.csv")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and re.search(r"did not complete: it holds epoch [12] and the default 0.5 thresholds", err)
    assert predict.main(["--checkpoint", str(run), "--csv_path", str(rows), "--output", str(tmp_path / "p.csv"),
                         "--allow_incomplete"]) == 0
    with pytest.raises(UserError, match="did not complete"):
        load_checkpoint(run / "last.pt")


# -- real signals, in a process of its own ------------------------------------------------------------

SLOW = ["--demo_rows", "3000", "--epochs", "25", "--early_stop_patience", "0", "--batch_size", "16", "--quiet",
        "--baselines", "none", "--no_tensorboard", "--optimize_thresholds"]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _start(out: Path) -> subprocess.Popen:
    # Under a shell's background job SIGINT is ignored, and a child inherits an ignored signal
    # (Python then installs no KeyboardInterrupt for it); a run in a terminal has it caught. A
    # handler here is reset to the default in the child, as in a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return subprocess.Popen([sys.executable, str(ROOT / "train_classifier.py"), *SLOW, "--output_dir", str(out)],
                                cwd=out.parent, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    finally:
        signal.signal(signal.SIGINT, previous)


def _resume(out: Path) -> None:
    done = subprocess.run([sys.executable, str(ROOT / "train_classifier.py"), "--resume", str(out), "--quiet"],
                          cwd=out.parent, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert _status(out) == "complete" and not list(out.glob(".*.tmp"))


def _wait_for_epoch(out: Path, epoch: int, process: subprocess.Popen, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be stopped: " + process.communicate()[1][-2000:]
        try:
            if load_checkpoint(out / "last.pt", allow_incomplete=True)["epoch"] >= epoch:
                return
        except UserError:
            pass
        time.sleep(0.02)
    process.kill()
    raise AssertionError(f"no epoch {epoch} within {timeout} s")


@pytest.fixture(scope="module")
def whole_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    process = _start(out)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 0, err[-2000:]
    return out


@pytest.mark.parametrize("signum, code, word", [(signal.SIGTERM, 143, "terminated"), (signal.SIGINT, 130, "interrupted")])
def test_a_signal_stops_the_run_cleanly_and_resume_equals_the_uninterrupted_run(tmp_path, whole_run, signum, code, word):
    out = tmp_path / "run"
    process = _start(out)
    _wait_for_epoch(out, 2, process)
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == code
    assert [line for line in err.splitlines() if line.strip()] == [
        f"train_classifier.py: {word}; last.pt holds the last completed epoch: continue with --resume RUN_DIR"]
    assert _status(out) == "interrupted"
    assert load_checkpoint(out / "last.pt", allow_incomplete=True)["epoch"] >= 2
    _resume(out)
    _assert_same_run(whole_run, out)


@pytest.mark.parametrize("epoch", [1, 4])
def test_kill_9_leaves_loadable_checkpoints_and_a_run_that_resumes(tmp_path, whole_run, epoch):
    out = tmp_path / "run"
    process = _start(out)
    _wait_for_epoch(out, epoch, process)
    process.kill()  # SIGKILL: no handler runs, a write may be cut half-way
    process.communicate(timeout=60)
    assert _status(out) == "running"  # as the process left it; its lock died with it
    for name in ("best.pt", "last.pt"):
        ckpt = load_checkpoint(out / name, allow_incomplete=True)
        assert not ckpt["complete"] and ckpt["epoch"] >= 1
        with pytest.raises(UserError, match="did not complete"):
            load_checkpoint(out / name)
    _resume(out)
    _assert_same_run(whole_run, out)
