"""serve.py over real HTTP: a server subprocess on a free loopback port, valid and invalid requests,
the same answers as predict.py and the Python API, and a bad checkpoint refused at start."""

import hashlib
import json
import warnings
import math
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import predict
from imbalance.demo import DEMO_LABELS, make_demo_cohort
from imbalance.inference import Predictor
from conftest import train_demo_run

ROOT = Path(__file__).resolve().parent.parent
MAX_ROWS = 50



def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return train_demo_run(tmp_path_factory.mktemp("serve"), "--baselines", "none", "--bootstrap", "0",
                          rows=800, seed=8, epochs=2)


@pytest.fixture(scope="module")
def server(run_dir):
    port = _free_port()
    # The server's output goes to a file: a pipe nobody reads would block it once full.
    log = open(run_dir.parent / "server.log", "w+b")
    process = subprocess.Popen([sys.executable, str(ROOT / "serve.py"), "--checkpoint", str(run_dir), "--port", str(port),
                                "--max_batch_rows", str(MAX_ROWS)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if json.loads(urllib.request.urlopen(f"{url}/health", timeout=2).read())["status"] == "ok":
                break
        except (urllib.error.URLError, ConnectionError, OSError):
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            log.seek(0)
            pytest.fail(f"the server did not come up: {log.read().decode()[-2000:]}")
        time.sleep(0.2)
    yield url
    process.terminate()  # the process this test started, and only it
    process.wait(timeout=30)
    log.close()


def _call(url: str, path: str, payload=None, *, body: bytes = None, content_type: str = "application/json"):
    data = body if body is not None else (None if payload is None else json.dumps(payload).encode())
    request = urllib.request.Request(url + path, data=data, headers={"Content-Type": content_type} if data is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


@pytest.fixture(scope="module")
def rows():
    frame = make_demo_cohort(n_rows=120, seed=31).drop(columns=list(DEMO_LABELS)).head(20)
    frame.loc[3, "bmi"] = np.nan
    frame.loc[5, "sex"] = "X"  # unseen level
    return frame


def _records(frame: pd.DataFrame) -> list[dict]:
    return [{k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}
            for r in json.loads(frame.to_json(orient="records"))]


def _probabilities(predictions: list[dict]) -> np.ndarray:
    return np.array([[p["labels"][n]["probability"] for n in DEMO_LABELS] for p in predictions])


def test_health_and_model_info(server, run_dir):
    status, health = _call(server, "/health")
    version = hashlib.sha256((run_dir / "best.pt").read_bytes()).hexdigest()[:12]
    assert status == 200 and health == {"status": "ok", "model_loaded": True, "model_version": version}
    status, info = _call(server, "/model/info")
    assert status == 200 and info["model_version"] == version and info["labels"] == list(DEMO_LABELS)
    predictor = Predictor.load(run_dir)
    assert info["thresholds"] == dict(zip(DEMO_LABELS, predictor.thresholds.tolist()))
    assert info["threshold_objective"].startswith("tuned on validation") and info["calibration"] == "platt"
    kinds = {f["name"]: f["kind"] for f in info["features"]}
    assert kinds["age"] == "numeric" and kinds["sex"] == "categorical" and kinds["on_bp_medication"] == "binary"
    assert set(next(f for f in info["features"] if f["name"] == "sex")["levels"]) == {"F", "M"}
    assert info["test_metrics"]["macro"]["auprc"] > 0 and info["max_batch_rows"] == MAX_ROWS
    with urllib.request.urlopen(f"{server}/docs") as docs:
        assert docs.status == 200
    schema = json.loads(urllib.request.urlopen(f"{server}/openapi.json").read())
    record = schema["components"]["schemas"]["Record"]
    assert {"age", "sex", "bmi"} <= set(record["properties"]) and "age" in record["required"]


def test_server_predict_py_and_the_python_api_give_identical_answers(server, run_dir, rows, tmp_path):
    status, batch = _call(server, "/predict/batch", {"records": _records(rows)})
    assert status == 200 and batch["rows"] == len(rows)
    served = _probabilities(batch["predictions"])
    rows.to_csv(tmp_path / "rows.csv", index=False)
    assert predict.main(["--checkpoint", str(run_dir), "--csv_path", str(tmp_path / "rows.csv"), "--output", str(tmp_path / "p.csv")]) == 0
    by_script = pd.read_csv(tmp_path / "p.csv", float_precision="round_trip")
    predictor = Predictor.load(run_dir)
    by_api = predictor.predict_proba(pd.read_csv(tmp_path / "rows.csv")).to_numpy()
    np.testing.assert_array_equal(served, by_api)  # bit for bit
    np.testing.assert_array_equal(served, by_script[[f"{n}_prob" for n in DEMO_LABELS]].to_numpy())
    decisions = np.array([[p["labels"][n]["decision"] for n in DEMO_LABELS] for p in batch["predictions"]])
    np.testing.assert_array_equal(decisions, by_script[[f"{n}_pred" for n in DEMO_LABELS]].to_numpy())
    assert [p["id"] for p in batch["predictions"]] == rows["patient_id"].tolist()
    # a CSV body, and the bare list, answer the same
    status, csv_batch = _call(server, "/predict/batch", body=rows.to_csv(index=False).encode(), content_type="text/csv")
    assert status == 200 and np.array_equal(_probabilities(csv_batch["predictions"]), served)
    status, bare = _call(server, "/predict/batch", _records(rows))
    assert status == 200 and np.array_equal(_probabilities(bare["predictions"]), served)
    # one record: the Python API on that one row
    status, one = _call(server, "/predict", _records(rows.iloc[[0]])[0])
    assert status == 200 and one["model_version"] == batch["model_version"] and one["timestamp"]
    np.testing.assert_array_equal(_probabilities([one["prediction"]]), predictor.predict_proba(rows.iloc[[0]]).to_numpy())
    label = one["prediction"]["labels"][DEMO_LABELS[0]]
    assert label["decision"] == int(label["probability"] >= label["threshold"])


def test_missing_nan_and_infinite_values_follow_predict_py(server, run_dir, rows):
    record = _records(rows.iloc[[0]])[0]
    as_missing = _call(server, "/predict", dict(record, bmi=None, hba1c=None))[1]["prediction"]
    nan_inf = _call(server, "/predict", body=json.dumps(dict(record, bmi=float("nan"), hba1c=float("inf"))).encode())[1]["prediction"]
    assert _probabilities([as_missing]).tolist() == _probabilities([nan_inf]).tolist()
    expected = Predictor.load(run_dir).predict_proba(rows.iloc[[0]].assign(bmi=np.nan, hba1c=np.nan)).to_numpy()
    np.testing.assert_array_equal(_probabilities([as_missing]), expected)


@pytest.mark.parametrize("change, field, kind", [
    ({"age": "abc"}, "age", "float_parsing"),
    ({"age": [1, 2]}, "age", "float_type"),
    ({"on_bp_medication": "maybe"}, "on_bp_medication", "value_error"),
    ({"on_bp_medication": 2}, "on_bp_medication", "value_error"),
    ({"sex": {"nested": 1}}, "sex", None),
    ({"bmi": "DELETE"}, "bmi", "float_parsing"),
])
def test_a_bad_value_is_a_422_naming_the_field(server, rows, change, field, kind):
    record = dict(_records(rows.iloc[[0]])[0], **change)
    if change.get("bmi") == "DELETE":
        del record["bmi"]
        kind = "missing"
    status, body = _call(server, "/predict", record)
    assert status == 422
    at_fault = [e for e in body["detail"] if e["loc"][:2] == ["body", field]]  # a union adds the type tried after it
    assert at_fault and all(e["loc"][0] == "body" for e in body["detail"])
    if kind:
        assert any(e["type"] == kind for e in at_fault)
    # in a batch the location names the record too
    status, body = _call(server, "/predict/batch", {"records": [_records(rows.iloc[[1]])[0], record]})
    assert status == 422 and any(e["loc"][:4] == ["body", "records", 1, field] for e in body["detail"])


def test_batch_limits_and_unreadable_bodies(server, rows):
    many = _records(rows) * 3  # 60 rows > MAX_ROWS
    status, body = _call(server, "/predict/batch", {"records": many})
    assert status == 413 and f"at most {MAX_ROWS}" in body["detail"]
    assert _call(server, "/predict/batch", body=b"{not json")[0] == 422
    assert _call(server, "/predict/batch", {"records": []})[0] == 422
    status, body = _call(server, "/predict/batch", body=rows.drop(columns=["age"]).to_csv(index=False).encode(), content_type="text/csv")
    assert status == 422 and "age" in body["detail"] and "missing feature column" in body["detail"]


def test_concurrent_requests_are_answered_whole_and_alike(server, rows):
    records = _records(rows)

    def ask(i: int) -> list[float]:
        status, body = _call(server, "/predict/batch", {"records": records[i % 5:i % 5 + 10]})
        assert status == 200
        return _probabilities(body["predictions"]).tolist()

    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(ask, range(40)))
    for i, answer in enumerate(answers):
        assert answer == answers[i % 5]  # the same rows, the same answer, whatever ran beside it


def test_a_bad_checkpoint_stops_the_server_at_start_in_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    done = subprocess.run([sys.executable, str(ROOT / "serve.py"), "--checkpoint", str(bad), "--port", str(_free_port())],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1 and "bad.pt" in lines[0] and "Traceback" not in done.stderr


def test_the_predictor_leaves_the_callers_frame_alone_and_warns_nothing(run_dir, rows):
    frame = rows.copy()
    frame["bmi"] = frame["bmi"].astype("float64")
    before = frame.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # e.g. pandas' SettingWithCopyWarning on a slice, once per request
        Predictor.load(run_dir).predict_proba(frame.iloc[2:12])
    pd.testing.assert_frame_equal(frame, before)
