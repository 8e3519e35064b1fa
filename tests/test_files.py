import errno
import json
import math
import os
import stat

import numpy as np
import pandas as pd
import pytest
import torch

from imbalance.errors import UserError
from imbalance.files import ordinary_mode, save_torch, write_csv, write_json, write_text


def test_write_json_valid_json_with_nan_and_no_temp_file(tmp_path):
    payload = {"auroc": float("nan"), "n": np.int64(3), "f1": np.float32(0.5), "curve": np.array([0.1, 0.2]), "names": ["a"]}
    path = tmp_path / "metrics.json"
    path.write_text("old")
    write_json(path, payload)
    loaded = json.loads(path.read_text())
    assert math.isnan(loaded["auroc"])
    assert loaded["n"] == 3 and loaded["f1"] == 0.5 and loaded["curve"] == [0.1, 0.2] and loaded["names"] == ["a"]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "metrics.json"
    write_json(path, {"ok": 1})
    with pytest.raises(TypeError):
        write_json(path, {"bad": object()})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


@pytest.mark.parametrize("write", [
    lambda p: write_text(p, "x"),
    lambda p: write_json(p, {"a": 1}),
    lambda p: write_csv(p, pd.DataFrame({"a": [1]}), index=False),
    lambda p: save_torch(p, {"w": torch.zeros(2)}),
])
def test_every_writer_gives_ordinary_permissions(tmp_path, write):
    path = tmp_path / "out"
    write(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == ordinary_mode()  # not mkstemp's owner-only 0600


def test_a_write_under_a_file_is_one_user_error_naming_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="could not write .*file/out.json"):
        write_json(blocker / "out.json", {})


def test_a_full_disk_is_one_user_error_and_the_old_file_stays(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    write_json(path, {"ok": 1})

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError, match="metrics.json.*No space left on device.*free space"):
        write_json(path, {"new": 2})
    assert json.loads(path.read_text()) == {"ok": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_csv_round_trip(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    write_csv(tmp_path / "f.csv", frame, index=False)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "f.csv"), frame)
