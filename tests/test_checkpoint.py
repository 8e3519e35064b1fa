"""Checkpoints (imbalance/checkpoint.py) and the Predictor that scores new rows with one (imbalance/inference.py)."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch

from imbalance.checkpoint import FORMAT_VERSION, build_checkpoint, load_checkpoint, save_checkpoint
from imbalance.errors import UserError
from imbalance.inference import Predictor
from imbalance.preprocessing import TabularPreprocessor
from models import InputSpec, create_model

RND_SEED = 20240615
LABELS = ["label_a", "label_b"]


def _frame(n: int = 40, seed: int = RND_SEED) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "pid": [f"P{i:03d}" for i in range(n)],
            "age": rng.integers(20, 90, size=n).astype(float),
            "bmi": rng.normal(27, 4, size=n),
            "sex": rng.choice(["F", "M"], size=n),
            "smoker": rng.choice(["yes", "no"], size=n),
            "region": rng.choice(["north", "south", "east"], size=n, p=[0.5, 0.3, 0.2]),
        }
    )
    frame.loc[[2, 5], "bmi"] = np.nan
    return frame


SETTINGS = {"hidden_sizes": [8], "dropout": 0.0, "norm": "none"}


def _inputs(pre, **extra) -> InputSpec:
    return InputSpec(n_numeric=len(pre.numeric_names), n_flags=len(pre.flag_names), cardinalities=pre.cardinalities,
                     n_labels=len(LABELS), **extra)


def _fitted(seed: int = RND_SEED):
    frame = _frame()
    pre = TabularPreprocessor(min_category_count=3).fit(frame.drop(columns=["pid"]))
    torch.manual_seed(seed)
    model = create_model("mlp", inputs=_inputs(pre), settings=SETTINGS)
    model.eval()
    return frame, pre, model


def _checkpoint(pre, *models, thresholds=(0.5, 0.5), inputs=None, **extra):
    return build_checkpoint(
        model_name="mlp",
        model_settings=SETTINGS,
        inputs=(inputs or _inputs(pre)).to_dict(),
        members=[m.state_dict() for m in models],
        train_config={"lr": 1e-3, "epochs": 3, "model_args": {"hidden_sizes": [8]}, "seed": 1, "loss_type": "bce", "output_dir": None},
        preprocessing=pre.state_dict(),
        label_names=LABELS,
        thresholds=thresholds,
        threshold_source="default",
        epoch=3,
        metrics={"best_epoch": 2, "best_score": 0.75, "val": {"macro": {"f1": float("nan")}}},
        id_col="pid",
        **extra,
    )


def _assert_plain(value, where="ckpt"):
    if isinstance(value, dict):
        for key, item in value.items():
            assert type(key) is str, (where, key)
            _assert_plain(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _assert_plain(item, f"{where}[{i}]")
    else:
        assert value is None or type(value) in (torch.Tensor, str, int, float, bool), (where, type(value))


# --------------------------------------------------------------------------- saving and loading


def test_saved_checkpoint_loads_with_weights_only_and_is_plain(tmp_path):
    _, pre, model = _fitted()
    path = save_checkpoint(_checkpoint(pre, model), tmp_path / "run" / "best.pt")
    assert path == tmp_path / "run" / "best.pt"
    loaded = torch.load(path, weights_only=True)
    _assert_plain(loaded)
    assert loaded["format_version"] == FORMAT_VERSION
    assert loaded["label_names"] == LABELS
    assert loaded["thresholds"] == [0.5, 0.5]
    assert loaded["id_col"] == "pid"
    assert loaded["model_name"] == "mlp" and loaded["model_settings"] == SETTINGS
    assert loaded["inputs"] == _inputs(pre).to_dict() and InputSpec.from_dict(loaded["inputs"]) == _inputs(pre)
    assert loaded["inputs"]["cardinalities"] == pre.cardinalities and loaded["inputs"]["n_labels"] == 2
    assert loaded["preprocessing"] == json.loads(json.dumps(pre.state_dict()))
    assert len(loaded["members"]) == 1
    assert set(loaded["members"][0]) == set(model.state_dict())
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded["members"][0][key], tensor)
    assert math.isnan(loaded["metrics"]["val"]["macro"]["f1"])


def test_numpy_thresholds_and_epoch_are_stored_as_plain_numbers(tmp_path):
    _, pre, model = _fitted()
    ckpt = build_checkpoint(
        model_name="mlp", model_settings=SETTINGS, inputs=_inputs(pre).to_dict(), members=[model.state_dict()],
        train_config={}, preprocessing=pre.state_dict(), label_names=LABELS, thresholds=np.array([0.25, 0.75]),
        threshold_source="tuned", epoch=np.int64(4),
    )
    loaded = torch.load(save_checkpoint(ckpt, tmp_path / "x.pt"), weights_only=True)
    _assert_plain(loaded)
    assert loaded["thresholds"] == [0.25, 0.75] and loaded["epoch"] == 4


def test_last_checkpoint_with_optimizer_state_loads_with_weights_only(tmp_path):
    _, pre, model = _fitted()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    spec = _inputs(pre)
    model(torch.zeros(2, spec.n_numeric + spec.n_flags), torch.zeros(2, len(spec.cardinalities), dtype=torch.int64)).sum().backward()
    optimizer.step()
    resume = {"member": 0, "epoch": 3, "stopper": {"best_score": 0.5, "best_epoch": 2, "bad_epochs": 1, "best_tiebreak": -math.inf},
              "best_state": model.state_dict(), "history": ['{"epoch": 1}'], "finished": [], "guard": {"streak": {}, "collapsed": {}}}
    ckpt = _checkpoint(pre, model, optimizer_state=optimizer.state_dict(), resume=resume, complete=False)
    loaded = torch.load(save_checkpoint(ckpt, tmp_path / "last.pt"), weights_only=True)
    assert loaded["resume"]["stopper"]["best_epoch"] == 2 and loaded["resume"]["history"] == ['{"epoch": 1}']
    assert all(torch.equal(loaded["resume"]["best_state"][k], v) for k, v in model.state_dict().items())
    assert loaded["complete"] is False
    assert set(loaded["optimizer"]) == {"state", "param_groups"}


def test_write_is_atomic(tmp_path, monkeypatch):
    _, pre, model = _fitted()
    path = tmp_path / "best.pt"
    save_checkpoint(_checkpoint(pre, model), path)
    before = path.read_bytes()

    real_save = torch.save

    def broken_save(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")  # half a file, then the disk "fills up"
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    newer = _checkpoint(pre, model, thresholds=(0.1, 0.9))
    with pytest.raises(UserError, match="best.pt.*No space left"):
        save_checkpoint(newer, path)
    monkeypatch.setattr(torch, "save", real_save)

    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt"]
    assert load_checkpoint(path)["thresholds"] == [0.5, 0.5]


def test_load_checkpoint_from_a_run_folder_uses_best(tmp_path):
    _, pre, model = _fitted()
    save_checkpoint(_checkpoint(pre, model, thresholds=(0.3, 0.7)), tmp_path / "best.pt")
    save_checkpoint(_checkpoint(pre, model, thresholds=(0.5, 0.5)), tmp_path / "last.pt")
    assert load_checkpoint(tmp_path)["thresholds"] == [0.3, 0.7]


def test_missing_checkpoint_paths_are_user_errors(tmp_path):
    with pytest.raises(UserError) as err:
        load_checkpoint(tmp_path / "nope.pt")
    assert "nope.pt" in str(err.value)
    (tmp_path / "run").mkdir()
    with pytest.raises(UserError) as err:
        load_checkpoint(tmp_path / "run")  # a folder without best.pt
    assert "best.pt" in str(err.value)


def test_foreign_and_garbage_files_are_user_errors(tmp_path):
    foreign = tmp_path / "foreign.pt"
    torch.save({"a": 1}, foreign)
    with pytest.raises(UserError) as err:
        load_checkpoint(foreign)
    assert "foreign.pt" in str(err.value)

    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(np.random.default_rng(RND_SEED).bytes(512))
    with pytest.raises(UserError) as err:
        load_checkpoint(garbage)
    assert "garbage.pt" in str(err.value)

    not_a_dict = tmp_path / "list.pt"
    torch.save([1, 2, 3], not_a_dict)
    with pytest.raises(UserError):
        load_checkpoint(not_a_dict)


def test_newer_format_version_asks_for_an_upgrade(tmp_path):
    _, pre, model = _fitted()
    ckpt = _checkpoint(pre, model)
    ckpt["format_version"] = FORMAT_VERSION + 1
    path = save_checkpoint(ckpt, tmp_path / "future.pt")
    with pytest.raises(UserError) as err:
        load_checkpoint(path)
    assert "upgrade" in str(err.value)


def test_format_1_checkpoint_asks_to_retrain(tmp_path):
    _, pre, model = _fitted()
    old = {"format_version": 1, "model_name": "mlp", "model_config": {"in_features": 9, "out_features": 2},
           "state_dict": model.state_dict(), "preprocessing": pre.state_dict(), "label_names": LABELS, "thresholds": [0.5, 0.5]}
    path = save_checkpoint(old, tmp_path / "old.pt")
    with pytest.raises(UserError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert "old.pt" in message and "format 1" in message and "retrain" in message


@pytest.mark.parametrize("key", ["model_settings", "inputs", "members", "preprocessing", "thresholds"])
def test_checkpoint_without_a_required_key_is_refused(tmp_path, key):
    _, pre, model = _fitted()
    ckpt = _checkpoint(pre, model)
    del ckpt[key]
    path = save_checkpoint(ckpt, tmp_path / "partial.pt")
    with pytest.raises(UserError, match="keys missing"):
        load_checkpoint(path)


# --------------------------------------------------------------------------- Predictor


def _direct_prob(pre, model, frame) -> np.ndarray:
    rows = pre.transform(frame)
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(rows.num), torch.from_numpy(rows.cat))).numpy()


def test_predictor_probabilities_match_the_model(tmp_path):
    frame, pre, model = _fitted()
    predictor = Predictor.load(save_checkpoint(_checkpoint(pre, model), tmp_path / "best.pt"))
    assert predictor.label_names == LABELS
    assert predictor.feature_columns == ["age", "bmi", "sex", "smoker", "region"]
    prob = predictor.predict_proba(frame)
    assert list(prob.columns) == LABELS
    assert prob.index.equals(frame.index)
    np.testing.assert_allclose(prob.to_numpy(), _direct_prob(pre, model, frame), rtol=1e-6, atol=1e-7)


def test_two_member_checkpoint_averages_the_members_probabilities(tmp_path):
    frame, pre, first = _fitted(seed=1)
    _, _, second = _fitted(seed=2)
    predictor = Predictor.load(save_checkpoint(_checkpoint(pre, first, second), tmp_path / "best.pt"))
    assert len(predictor.models) == 2
    a, b = _direct_prob(pre, first, frame), _direct_prob(pre, second, frame)
    assert np.abs(a - b).max() > 1e-3  # different members, so the mean is neither of them
    np.testing.assert_allclose(predictor.predict_proba(frame).to_numpy(), (a + b) / 2, rtol=1e-6, atol=1e-7)
    pred = predictor.predict(frame)
    np.testing.assert_array_equal(pred.to_numpy(), ((a + b) / 2 >= 0.5).astype(int))


def test_members_of_different_models_load_each_with_its_own_model(tmp_path):
    # --ensemble_top: a ResNet and a piecewise-linear MLP in one checkpoint, averaged
    from imbalance.bins import fit_bins

    frame, pre, mlp = _fitted(seed=1)
    rows = pre.transform(frame.drop(columns=["pid"]))
    y = np.random.default_rng(RND_SEED).random((len(frame), 2)) < 0.3
    ple = _inputs(pre, num_embeddings="piecewise_linear", d_embedding=4, bins=fit_bins(rows.num[:, : rows.n_numeric], y, n_bins=4))
    torch.manual_seed(2)
    resnet_settings = {"n_blocks": 1, "d_block": 8, "d_hidden_multiplier": 1.0}
    resnet = create_model("resnet", inputs=_inputs(pre), settings=resnet_settings).eval()
    torch.manual_seed(3)
    mlp_ple = create_model("mlp", inputs=ple, settings=SETTINGS).eval()
    described = [{"model_name": "resnet", "model_settings": resnet_settings, "inputs": _inputs(pre).to_dict()},
                 {"model_name": "mlp", "model_settings": SETTINGS, "inputs": ple.to_dict()}]
    ckpt = _checkpoint(pre, resnet, mlp_ple, member_models=described)
    path = save_checkpoint(ckpt, tmp_path / "best.pt")
    loaded = load_checkpoint(path)
    _assert_plain(torch.load(path, weights_only=True))
    assert [m["model_name"] for m in loaded["member_models"]] == ["resnet", "mlp"]
    predictor = Predictor.load(path)
    a, b = _direct_prob(pre, resnet, frame), _direct_prob(pre, mlp_ple, frame)
    assert np.abs(a - b).max() > 1e-3
    np.testing.assert_allclose(predictor.predict_proba(frame).to_numpy(), (a + b) / 2, rtol=1e-5, atol=1e-6)
    # a member list that does not match the weights is refused in one line
    ckpt["member_models"] = described[:1]
    with pytest.raises(UserError, match="1 member models for 2 members"):
        load_checkpoint(save_checkpoint(ckpt, tmp_path / "short.pt"))
    ckpt["member_models"] = [described[0], {"model_name": "mlp"}]
    with pytest.raises(UserError, match="damaged checkpoint"):
        load_checkpoint(save_checkpoint(ckpt, tmp_path / "partial.pt"))
    with pytest.raises(ValueError, match="member models"):
        _checkpoint(pre, resnet, mlp_ple, member_models=described[:1])


def test_format_2_checkpoint_loads_as_a_seed_ensemble_of_its_model(tmp_path):
    frame, pre, first = _fitted(seed=1)
    _, _, second = _fitted(seed=2)
    ckpt = _checkpoint(pre, first, second)
    del ckpt["member_models"]
    ckpt["format_version"] = 2  # as written before members could be different models
    loaded = load_checkpoint(save_checkpoint(ckpt, tmp_path / "v2.pt"))
    assert [m["model_name"] for m in loaded["member_models"]] == ["mlp", "mlp"]
    a, b = _direct_prob(pre, first, frame), _direct_prob(pre, second, frame)
    np.testing.assert_allclose(Predictor(loaded).predict_proba(frame).to_numpy(), (a + b) / 2, rtol=1e-6, atol=1e-7)


def test_numeric_embedding_bins_travel_in_the_checkpoint(tmp_path):
    from imbalance.bins import fit_bins

    frame, pre, _ = _fitted()
    rows = pre.transform(frame.drop(columns=["pid"]))
    y = np.random.default_rng(RND_SEED).random((len(frame), 2)) < 0.3
    bins = fit_bins(rows.num[:, : rows.n_numeric], y, n_bins=4)
    inputs = _inputs(pre, num_embeddings="piecewise_linear", d_embedding=4, bins=bins)
    torch.manual_seed(RND_SEED)
    model = create_model("mlp", inputs=inputs, settings=SETTINGS).eval()
    path = save_checkpoint(_checkpoint(pre, model, inputs=inputs), tmp_path / "best.pt")
    loaded = torch.load(path, weights_only=True)
    _assert_plain(loaded)
    assert loaded["inputs"]["bins"] == bins and loaded["inputs"]["num_embeddings"] == "piecewise_linear"
    np.testing.assert_allclose(Predictor.load(path).predict_proba(frame).to_numpy(), _direct_prob(pre, model, frame),
                               rtol=1e-6, atol=1e-7)


def test_predict_applies_stored_thresholds_inclusively(tmp_path):
    frame, pre, model = _fitted()
    direct = _direct_prob(pre, model, frame)
    # label_a's threshold equals row 3's probability exactly: >= makes row 3 positive
    thresholds = (float(direct[3, 0]), float(np.median(direct[:, 1])))
    predictor = Predictor(_checkpoint(pre, model, thresholds=thresholds))
    np.testing.assert_array_equal(predictor.predict_proba(frame).to_numpy(), direct)  # same float32 path
    pred = predictor.predict(frame)
    assert list(pred.columns) == LABELS
    expected = np.column_stack([direct[:, 0] >= thresholds[0], direct[:, 1] >= thresholds[1]]).astype(int)
    np.testing.assert_array_equal(pred.to_numpy(), expected)
    assert pred.iloc[3, 0] == 1
    # about half are positive for label_b at its median threshold
    assert 15 <= pred["label_b"].sum() <= 25


def test_predict_frame_columns_and_values(tmp_path):
    frame, pre, model = _fitted()
    thresholds = (0.4, 0.6)
    predictor = Predictor.load(save_checkpoint(_checkpoint(pre, model, thresholds=thresholds), tmp_path / "best.pt"))
    out = predictor.predict_frame(frame)
    assert list(out.columns) == ["pid", "label_a_prob", "label_a_pred", "label_b_prob", "label_b_pred"]
    assert out["pid"].tolist() == frame["pid"].tolist()
    direct = _direct_prob(pre, model, frame)
    np.testing.assert_allclose(out[["label_a_prob", "label_b_prob"]].to_numpy(), direct, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(out["label_a_pred"].to_numpy(), (direct[:, 0] >= 0.4).astype(int))
    np.testing.assert_array_equal(out["label_b_pred"].to_numpy(), (direct[:, 1] >= 0.6).astype(int))


def test_predictor_handles_unseen_categories_and_missing_values(tmp_path):
    frame, pre, model = _fitted()
    predictor = Predictor.load(save_checkpoint(_checkpoint(pre, model), tmp_path / "best.pt"))
    new = pd.DataFrame(
        {
            "pid": ["N1", "N2", "N3"],
            "age": [np.nan, 45.0, 200.0],
            "bmi": [np.nan, np.nan, 30.0],
            "sex": ["X", None, "F"],
            "smoker": [None, "yes", "no"],
            "region": ["atlantis", None, "north"],
        }
    )
    out = predictor.predict_frame(new)
    assert out.shape == (3, 5)
    probs = out[["label_a_prob", "label_b_prob"]].to_numpy()
    assert np.isfinite(probs).all() and (probs >= 0).all() and (probs <= 1).all()
    np.testing.assert_allclose(probs, _direct_prob(pre, model, new), rtol=1e-6, atol=1e-7)


def test_predictor_without_id_column_in_frame(tmp_path):
    frame, pre, model = _fitted()
    predictor = Predictor(_checkpoint(pre, model))
    out = predictor.predict_frame(frame.drop(columns=["pid"]))
    assert list(out.columns) == ["label_a_prob", "label_a_pred", "label_b_prob", "label_b_pred"]
