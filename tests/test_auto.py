"""--preset auto: the search, its files, its budget, Ctrl-C, and that the test split never reaches it."""

import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import predict
import train_classifier
from imbalance import auto
from imbalance.config import parse_config
from imbalance.demo import make_demo_cohort

SMALL = ["--quiet", "--no_tensorboard", "--baselines", "logistic"]


@pytest.fixture(scope="module")
def cohort_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("auto") / "cohort.csv"
    make_demo_cohort(n_rows=700, seed=5).drop(columns=["label_heart_failure", "label_stroke", "label_atrial_fibrillation"]).to_csv(
        path, index=False)
    return path


def _auto(csv: Path, out: Path, *extra) -> int:
    return train_classifier.main(["--preset", "auto", "--csv_path", str(csv), "--id_col", "patient_id",
                                  "--output_dir", str(out), *SMALL, *map(str, extra)])


def _search_table(out: Path) -> pd.DataFrame:
    return pd.read_csv(out / "search.csv").drop(columns=["seconds"])


def test_auto_writes_an_ordinary_run_of_the_chosen_configuration(tmp_path, cohort_csv):
    out = tmp_path / "run"
    assert _auto(cohort_csv, out, "--max_trials", 3, "--time_budget", 300, "--resplits", 0) == 0
    table = pd.read_csv(out / "search.csv")
    assert len(table) == 3 and "resplit_auprc" not in table and set(table["state"]) <= {"complete", "pruned", "budget", "failed"}
    assert set(table["model"]) <= set(auto.MODEL_CHOICES)
    # the first trials are the balanced preset's recipe with the starting models
    first = table.sort_values("trial")
    assert first["model"].tolist() == [p["model"] for p in auto.STARTING_POINTS][:3]
    assert (first["loss"] == "weighted_bce").all() and (first["sampling"] == "none").all() and (first["lr"] == 1e-3).all()
    config = json.loads((out / "config.json").read_text())
    best = table.sort_values(["val_auprc", "val_f1_tuned"], ascending=False).iloc[0]
    chosen = auto.MODEL_CHOICES[best["model"]]
    assert config["preset"] == "auto" and config["model"] == chosen.model
    assert config["lr"] == pytest.approx(best["lr"]) and config["early_stop_metric"] == chosen.stop_on
    assert f"Best trial ({int(best['trial'])})" in (out / "search.md").read_text()
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert ckpt["complete"] and ckpt["model_name"] == config["model"] and ckpt["threshold_source"].startswith("tuned")
    report = json.loads((out / "metrics.json").read_text())
    assert report["split"] == "test" and "logistic" in report["models"]
    marker = json.loads((out / "run.json").read_text())
    assert marker["status"] == "complete" and {"search.csv", "search.md", "analysis.json", "best.pt"} <= set(marker["files"])
    # predict.py takes it like any run, and reproduces the test predictions
    expected = pd.read_csv(out / "test_predictions.csv")
    rows = pd.read_csv(cohort_csv).iloc[expected["row"]]
    rows.drop(columns=[c for c in rows.columns if c.startswith("label_")]).to_csv(tmp_path / "new.csv", index=False)
    assert predict.main(["--checkpoint", str(out), "--csv_path", str(tmp_path / "new.csv"), "--output", str(tmp_path / "p.csv")]) == 0
    got = pd.read_csv(tmp_path / "p.csv")
    pd.testing.assert_series_equal(got["label_diabetes_prob"], expected["label_diabetes_prob"], check_exact=False, atol=1e-6)


def test_ensemble_top_averages_the_best_trials_models_in_one_checkpoint(tmp_path, cohort_csv):
    out = tmp_path / "run"
    assert _auto(cohort_csv, out, "--max_trials", 4, "--time_budget", 300, "--ensemble_top", 2, "--resplits", 0) == 0
    table = pd.read_csv(out / "search.csv").sort_values(["val_auprc", "val_f1_tuned", "trial"], ascending=[False, False, True])
    top = table.head(2)
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert len(ckpt["members"]) == 2 and ckpt["complete"]
    described = [f"{m['model_name']}:{m['inputs']['num_embeddings']}" for m in ckpt["member_models"]]
    choices = [auto.MODEL_CHOICES[name] for name in top["model"]]
    expected = [f"{c.model}:{auto.MODELS.get(c.model).num_embeddings if c.num_embeddings == 'auto' else c.num_embeddings}"
                for c in choices]
    assert described == expected  # each member is its own trial's model, best first
    report = json.loads((out / "metrics.json").read_text())
    assert [m["trial"] for m in report["run"]["members"]] == top["trial"].tolist() and report["run"]["ensemble"] == 2
    assert json.loads((out / "config.json").read_text())["ensemble_top"] == 2
    assert (f"averages the models of trials {', '.join(map(str, top['trial']))} (the 2 best trials; --ensemble_top 2)"
            in (out / "search.md").read_text())
    # predict.py scores with both members and reproduces the run's own test predictions
    expected_preds = pd.read_csv(out / "test_predictions.csv")
    rows = pd.read_csv(cohort_csv).iloc[expected_preds["row"]]
    rows.to_csv(tmp_path / "new.csv", index=False)
    assert predict.main(["--checkpoint", str(out), "--csv_path", str(tmp_path / "new.csv"), "--output", str(tmp_path / "p.csv")]) == 0
    got = pd.read_csv(tmp_path / "p.csv")
    for label in ("label_diabetes", "label_ckd"):
        pd.testing.assert_series_equal(got[f"{label}_prob"], expected_preds[f"{label}_prob"], check_exact=False, atol=1e-6)
        pd.testing.assert_series_equal(got[f"{label}_pred"], expected_preds[f"{label}_pred"])


@pytest.mark.parametrize("more_rows, extra", [("gaussian_copula", {"generated_ratio": 2.0}),
                                               ("smote", {"more_rows_ratio": 0.8}), ("none", {})])
def test_a_trial_can_add_generated_or_resampled_minority_rows(cohort_csv, more_rows, extra):
    import optuna

    from imbalance.distributed import DistContext
    from imbalance.pipeline import prepare_data

    base, _ = parse_config(["--preset", "auto", "--csv_path", str(cohort_csv), "--id_col", "patient_id", *SMALL])
    data = prepare_data(base, dist=DistContext(), keep_search_rows=True)
    trial = optuna.trial.FixedTrial({"model": "mlp", "sampling": "none", "loss": "bce", "more_rows": more_rows, "lr": 1e-3,
                                     "weight_decay": 1e-5, "dropout": 0.1, **extra})
    cfg, params = auto.suggest(trial, base, data)
    assert params == trial.params
    trial_data = auto._with_rows(data, cfg)
    real = len(data.splits["train"])
    positives = data.real_train_labels.sum(axis=0)
    if more_rows == "none":
        assert trial_data is data and cfg.generator == "none" and cfg.resample == "none"
        return
    made = trial_data.augmented.synthetic
    assert made[:real].sum() == 0 and made[real:].all() and len(trial_data.labels["train"]) > real
    assert data.rows["val"] is trial_data.rows["val"] and data.rows["test"] is trial_data.rows["test"]  # only training rows grow
    if more_rows == "gaussian_copula":
        assert (cfg.generator, cfg.generated_ratio, cfg.resample) == ("gaussian_copula", 2.0, "none")
        added = trial_data.labels["train"][real:].sum(axis=0)
        assert (added >= 1.5 * positives).all()  # about 2 x each label's positives (the generator's rows may carry several)
    else:
        assert cfg.resample == "mlsmote" and cfg.generator == "none"  # two labels: the multi-label SMOTE


@pytest.mark.parametrize("name, hidden, embedding", [("linear", [], "none"), ("additive", [], "piecewise_linear"),
                                                    ("mlp:piecewise_linear", None, "piecewise_linear")])
def test_model_choices_without_hidden_layers_are_linear_and_additive_models(cohort_csv, name, hidden, embedding):
    import optuna

    from imbalance.distributed import DistContext
    from imbalance.pipeline import input_spec, prepare_data
    from models import create_model

    base, _ = parse_config(["--preset", "auto", "--csv_path", str(cohort_csv), "--id_col", "patient_id", *SMALL])
    data = prepare_data(base, dist=DistContext(), keep_search_rows=True)
    params = {"model": name, "sampling": "none", "loss": "bce", "more_rows": "none", "lr": 1e-3, "weight_decay": 1e-5}
    if hidden is None:
        params["dropout"] = 0.2
    cfg, asked = auto.suggest(optuna.trial.FixedTrial(params), base, data)
    assert asked == params  # no dropout is asked of a model without hidden layers
    assert cfg.model == "mlp" and cfg.resolved_num_embeddings == embedding
    model = create_model(cfg.model, inputs=input_spec(cfg, data), settings=cfg.model_settings)
    linear_layers = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    if hidden == []:
        assert cfg.model_settings.hidden_sizes == [] and linear_layers == [model.head]  # one linear map of the inputs
    else:
        assert cfg.model_settings.dropout == 0.2 and len(linear_layers) == 3


def test_fresh_splits_draw_validation_rows_from_the_training_split_only(cohort_csv):
    from imbalance.distributed import DistContext
    from imbalance.pipeline import prepare_data

    base, _ = parse_config(["--preset", "auto", "--csv_path", str(cohort_csv), "--id_col", "patient_id", *SMALL])
    data = prepare_data(base, dist=DistContext(), keep_search_rows=True)
    fresh = auto.resplit(data, seed=1001)
    pool = np.concatenate([data.splits["train"], data.splits["val"]])
    assert sorted(np.concatenate([fresh.splits["train"], fresh.splits["val"]])) == sorted(pool)
    assert len(fresh.splits["val"]) == len(data.splits["val"])
    # the rows that scored the trials are not scored again: they train the fresh models
    assert set(fresh.splits["val"]) <= set(data.splits["train"]) and set(data.splits["val"]) <= set(fresh.splits["train"])
    assert not np.array_equal(fresh.splits["val"], auto.resplit(data, seed=2001).splits["val"])  # the seed draws them
    assert fresh.splits["test"] is data.splits["test"] and fresh.rows["test"] is data.rows["test"]
    # rows, labels and raw features follow the positions: compare with the table's own
    for part in ("train", "val"):
        np.testing.assert_array_equal(fresh.labels[part], data.table.labels[fresh.splits[part]])
        assert list(fresh.val_features.index if part == "val" else fresh.train_features.index) == list(fresh.splits[part])
    ages = data.preprocessor.numeric_names.index("age")
    by_position = dict(zip(pool, np.concatenate([data.real_train.num[:, ages], data.rows["val"].num[:, ages]])))
    np.testing.assert_array_equal(fresh.rows["val"].num[:, ages], [by_position[i] for i in fresh.splits["val"]])
    # stratified: each label's validation positives stay as they were, within one
    assert np.abs(fresh.labels["val"].sum(axis=0).astype(int) - data.labels["val"].sum(axis=0).astype(int)).max() <= 1


def test_few_validation_positives_choose_by_the_mean_over_fresh_splits(tmp_path, cohort_csv):
    out = tmp_path / "run"
    assert _auto(cohort_csv, out, "--max_trials", 3, "--time_budget", 300) == 0  # the demo's labels: < 100 validation positives
    table = pd.read_csv(out / "search.csv")
    rescored = table.dropna(subset=["resplit_auprc"])
    assert len(rescored) == 3  # the best trial of each model: here all three
    assert (rescored["resplit_se"] > 0).all()
    # the one-standard-error rule: the simplest model within one standard error of the best mean
    best = rescored.sort_values(["resplit_auprc", "resplit_f1"], ascending=False).iloc[0]
    close = rescored[rescored["resplit_auprc"] >= best["resplit_auprc"] - best["resplit_se"]]
    simplicity = close["model"].map(lambda name: auto.MODEL_CHOICES[name].simplicity)
    chosen = close.assign(simplicity=simplicity).sort_values(["simplicity", "resplit_auprc"], ascending=[True, False]).iloc[0]
    assert json.loads((out / "config.json").read_text())["model"] == auto.MODEL_CHOICES[chosen["model"]].model
    text = (out / "search.md").read_text()
    assert f"Best trial ({int(chosen['trial'])})" in text and "4 fresh train/validation split(s)" in text
    assert "fewer than 100" in text
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert ckpt["complete"]


def test_the_test_split_never_reaches_the_search(tmp_path, cohort_csv):
    first = tmp_path / "first"
    assert _auto(cohort_csv, first, "--max_trials", 3, "--time_budget", 300) == 0
    # The split depends only on the labels and the seed: scramble every feature of the test rows.
    test_rows = pd.read_csv(first / "test_predictions.csv")["row"].to_numpy()
    frame = pd.read_csv(cohort_csv)
    features = [c for c in frame.columns if not c.startswith("label_") and c != "patient_id"]
    scrambled = frame.copy()
    scrambled.loc[test_rows, features] = frame.loc[test_rows, features].sample(frac=1.0, random_state=3).to_numpy()
    scrambled.loc[test_rows, "age"] = 200
    scrambled.to_csv(tmp_path / "scrambled.csv", index=False)
    second = tmp_path / "second"
    assert _auto(tmp_path / "scrambled.csv", second, "--max_trials", 3, "--time_budget", 300) == 0
    pd.testing.assert_frame_equal(_search_table(first), _search_table(second))  # same trials, same validation scores
    assert json.loads((first / "config.json").read_text())["model"] == json.loads((second / "config.json").read_text())["model"]
    assert (first / "test_predictions.csv").read_bytes() != (second / "test_predictions.csv").read_bytes()  # the test rows did differ


def test_the_budget_holds_within_ten_percent(tmp_path, cohort_csv):
    out = tmp_path / "run"
    budget = 20.0
    started = time.perf_counter()
    assert _auto(cohort_csv, out, "--time_budget", budget) == 0
    wall = time.perf_counter() - started
    seconds = json.loads((out / "metrics.json").read_text())["run"]["seconds"]
    assert seconds <= 1.1 * budget and wall <= 1.1 * budget + 5  # the run's own clock; the wall adds imports
    assert len(pd.read_csv(out / "search.csv")) >= 2  # the budget was used for a search


def test_ctrl_c_ends_the_search_and_keeps_the_best_trial(tmp_path, cohort_csv, monkeypatch):
    real = auto.fit_members
    calls = {"n": 0}

    def third_is_interrupted(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(auto, "fit_members", third_is_interrupted)
    out = tmp_path / "run"
    assert _auto(cohort_csv, out, "--time_budget", 300) == 0
    assert len(pd.read_csv(out / "search.csv")) == 2
    assert "interrupted" in (out / "search.md").read_text().splitlines()[0]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"


def test_auto_is_a_preset_name_and_its_flags_are_checked(capsys):
    cfg, _ = parse_config(["--preset", "auto", "--time_budget", "30"])
    assert cfg.preset == "auto" and cfg.time_budget == 30 and cfg.loss_type == "weighted_bce"  # the balanced base
    assert train_classifier.main(["--preset", "auto", "--time_budget", "0"]) == 2
    assert "--time_budget must be > 0" in capsys.readouterr().err
    assert train_classifier.main(["--preset", "balanced", "--ensemble_top", "3"]) == 2
    assert "--ensemble_top averages the best trials of a search" in capsys.readouterr().err
    assert train_classifier.main(["--preset", "auto", "--ensemble_top", "0"]) == 2
    assert "--ensemble_top must be >= 1" in capsys.readouterr().err


def _rescored(number: int, model: str, val: float, fresh: list, params: "dict | None" = None) -> "auto.Finalist":
    record = auto.TrialRecord(number, "complete", params or {"model": model}, val, 0.3, 5, 10, 1.0,
                              resplit_auprc=list(fresh), resplit_f1=[0.3] * len(fresh))
    return auto.Finalist(record, cfg=None, data=None, trained=None, inputs=None)


def _starting_point(model: str) -> dict:
    return next(p for p in auto.STARTING_POINTS if p["model"] == model)


@pytest.mark.parametrize("tuned_fresh, chosen", [
    ([0.275, 0.295, 0.285], 0),  # 0.285: the untuned 0.282 is within one standard error (0.005), so it is kept
    ([0.30, 0.32, 0.31], 1),  # 0.31: the tuned recipe beats it by more than the noise
])
def test_of_two_models_alike_the_starting_point_is_the_simpler(tuned_fresh, chosen):
    untuned = _rescored(0, "linear", 0.20, [0.277, 0.287, 0.282], params=_starting_point("linear"))
    tuned = _rescored(1, "linear", 0.30, tuned_fresh,
                      params={**_starting_point("linear"), "sampling": "per_class", "more_rows": "smote"})
    assert untuned.untuned and not tuned.untuned
    assert auto.Option.single(untuned).simplicity < auto.Option.single(tuned).simplicity
    flexible = _rescored(2, "resnet", 0.40, [0.20, 0.21, 0.22], params=_starting_point("resnet"))
    assert auto.Option.single(tuned).simplicity < auto.Option.single(flexible).simplicity  # the model comes first
    ordered, note, take = auto._one_standard_error([tuned, untuned, flexible])
    assert take == 1 and ordered[0].record.number == chosen
    if chosen == 0:
        assert "trial 0 (linear, the balanced recipe)" in note and "one-standard-error rule" in note


def test_the_starting_points_of_the_simplest_models_are_scored_again_besides_the_leaders():
    leader = _rescored(5, "linear", 0.30, [])
    start = _rescored(2, "linear", 0.20, [], params=_starting_point("linear"))
    flexible = _rescored(7, "resnet", 0.40, [])
    additive = _rescored(3, "additive", 0.25, [], params=_starting_point("additive"))
    leaders = {"linear": leader, "resnet": flexible, "additive": additive}
    candidates = auto._resplit_candidates([flexible, leader], leaders, 1, [start, additive])
    assert [c.record.number for c in candidates] == [7, 5, 3, 2]  # the best; the simplest models' leaders; the rest of the starts


@pytest.mark.parametrize("linear_fresh, chosen, standard_error", [
    ([0.276, 0.276, 0.276], 1, "0.0047"),  # pooled variance (1e-4 + 0 + 1e-4) / 3 over 3 splits: 0.0047
    ([0.274, 0.274, 0.274], 0, "0.0047"),  # 0.274 < 0.28 - 0.0047
    ([0.26, 0.29, 0.28], 1, "0.0069"),  # a noisier linear model widens the pooled error: (1e-4 + 2.33e-4 + 1e-4) / 3
])
def test_the_one_standard_error_rule_prefers_the_simpler_model_within_the_noise(linear_fresh, chosen, standard_error):
    flexible = _rescored(0, "resnet", 0.40, [0.27, 0.29, 0.28])  # mean 0.28; its validation score is ignored
    linear = _rescored(1, "linear", 0.10, linear_fresh)
    other = _rescored(2, "mlp", 0.35, [0.20, 0.21, 0.22])
    ordered, note, take = auto._one_standard_error([other, linear, flexible])
    assert take == 1
    assert ordered[0].record.number == chosen
    assert [f.record.number for f in ordered[1:]] == [n for n in (0, 1, 2) if n != chosen]  # the rest by mean
    assert ("one-standard-error rule" in note) == (chosen == 1)
    assert f"standard error {standard_error} over 3 fresh splits, pooled over 3 trials" in note


def test_the_pooled_standard_error_leaves_out_failed_splits_and_counts_the_common_ones():
    se, pooled = auto.pooled_standard_error([_rescored(0, "resnet", 0.4, [0.27, 0.29, 0.28]),
                                             _rescored(1, "mlp", 0.4, [0.2, float("nan"), 0.3]),  # a failed split: left out
                                             _rescored(2, "linear", 0.4, [0.25])])  # one split: no variance
    assert pooled == 1 and se == pytest.approx(0.01 / 3 ** 0.5)
    assert math.isnan(auto.pooled_standard_error([_rescored(0, "resnet", 0.4, [0.3])])[0])


def test_without_two_fresh_splits_the_best_score_is_chosen():
    ordered, note, take = auto._one_standard_error([_rescored(1, "linear", 0.27, []), _rescored(0, "resnet", 0.30, [])])
    assert [f.record.number for f in ordered] == [0, 1] and note == "" and take == 1
    ordered, note, take = auto._one_standard_error([_rescored(1, "linear", 0.5, [0.27]), _rescored(0, "resnet", 0.1, [0.30])])
    assert [f.record.number for f in ordered] == [0, 1] and note == "" and take == 1  # one fresh split: its score, no rule


def _two_splits_of_complementary_models():
    """Two fresh splits on which trial 0 ranks the first half of the positives well and trial 1
    the second half: each alone is mediocre, their average ranks every positive first."""
    rng = np.random.default_rng(0)
    splits = []
    for _ in range(2):
        y = np.zeros((40, 1))
        y[:8] = 1
        first, second = rng.uniform(0, 0.5, (40, 1)), rng.uniform(0, 0.5, (40, 1))
        first[:4], second[4:8] = 0.9, 0.9  # each model is sure of half the positives
        first[4:8], second[:4] = 0.45, 0.45  # and barely above the negatives on the other half
        splits.append((y, [first, second, None]))  # the third candidate failed on both splits
    return splits


def test_averages_of_the_leading_trials_are_scored_from_their_predictions_on_the_fresh_splits():
    from imbalance.metrics import label_metrics

    splits = _two_splits_of_complementary_models()
    alone = [[float(label_metrics(y, probs[i], 0.5, ["y"])["macro"]["auprc"]) for y, probs in splits] for i in (0, 1)]
    candidates = [_rescored(0, "resnet", 0.4, alone[0]), _rescored(1, "mlp", 0.4, alone[1]),
                  _rescored(2, "tabm", 0.4, [float("nan"), float("nan")])]
    averages = auto.average_options(candidates, splits, ["y"])
    assert len(averages) == 1  # the failed candidate is in no average
    (pair,) = averages
    assert {m.record.number for m in pair.members} == {0, 1}
    for (y, probs), score in zip(splits, pair.scores):
        assert score == pytest.approx(label_metrics(y, (probs[0] + probs[1]) / 2, 0.5, ["y"])["macro"]["auprc"])
    assert pair.mean > max(np.mean(a) for a in alone)
    assert pair.simplicity == (2, 2, 2) and "the average of trials" in pair.describe()


def test_an_average_is_chosen_only_where_it_beats_the_simpler_options_by_more_than_the_noise():
    flexible = _rescored(0, "resnet", 0.4, [0.27, 0.29, 0.28])
    other = _rescored(2, "mlp", 0.4, [0.25, 0.26, 0.27])
    linear = _rescored(1, "linear", 0.4, [0.20, 0.21, 0.22])
    better = auto.Option([flexible, other], [0.31, 0.32, 0.33])  # 0.32: well above 0.28 + 0.0058
    ordered, note, take = auto._one_standard_error([linear, other, flexible], [better])
    assert take == 2 and [f.record.number for f in ordered] == [0, 2, 1]  # its members first, then the rest by mean
    assert "The best mean is the average of trials 0, 2 (resnet, mlp)'s (0.3200" in note and "trials 0 + 2 0.3200" in note
    within = auto.Option([flexible, other], [0.28, 0.285, 0.29])  # 0.285: within the error of trial 0's 0.28
    ordered, note, take = auto._one_standard_error([linear, other, flexible], [within])
    assert take == 1 and ordered[0].record.number == 0 and "trial 0 (resnet) (0.2800) is within one standard error" in note
    simple = auto.Option([linear, _rescored(3, "additive", 0.4, [0.2, 0.2, 0.2])], [0.275, 0.28, 0.285])
    ordered, note, take = auto._one_standard_error([linear, other, flexible], [simple])
    assert take == 2 and {f.record.number for f in ordered[:2]} == {1, 3}  # no hidden layers: simpler than trial 0


def _timed(number: int, seconds: float, best_epoch: int, epochs: int) -> "auto.Finalist":
    record = auto.TrialRecord(number, "complete", {"model": "mlp"}, 0.3, 0.3, best_epoch, epochs, seconds)
    return auto.Finalist(record, cfg=None, data=None, trained=None, inputs=None)


def test_the_rescoring_keeps_the_time_of_the_whole_fresh_splits_that_fit():
    candidates = [_timed(0, 10.0, 5, 10), _timed(1, 4.0, 4, 4)]  # trained again for 5 of 10 epochs: 5 s, and 4 s
    assert auto.refit_seconds(candidates[0].record) == 5.0 and auto.split_seconds(candidates) == 9.0
    per_split = 9.0 * auto.RESPLIT_MARGIN
    assert auto.resplit_reserve(candidates, 4, 100.0) == pytest.approx(4 * per_split)  # all rounds fit
    assert auto.resplit_reserve(candidates, 4, 25.0) == pytest.approx(2 * per_split)  # two whole splits, not 25 s
    assert auto.resplit_reserve(candidates, 4, 10.0) == 0.0  # not one: the search keeps the time


def test_a_fresh_split_that_would_not_fit_is_not_begun():
    # cfg=None: training would fail, so returning shows that nothing was trained
    done, interrupted = auto._rescore(None, None, [_timed(0, 10.0, 5, 10)], 4, deadline=time.perf_counter() + 1.0,
                                      device="cpu", estimate=5.0)
    assert (done, interrupted) == (0, False)


def test_without_time_for_a_fresh_split_the_search_chooses_on_validation(tmp_path, cohort_csv, monkeypatch):
    monkeypatch.setattr(auto, "split_seconds", lambda candidates: 1e6)
    out = tmp_path / "run"
    assert _auto(cohort_csv, out, "--max_trials", 3, "--time_budget", 300) == 0
    assert "resplit_auprc" not in pd.read_csv(out / "search.csv")
    assert "Chosen on the validation split alone (the rarest label has" in (out / "search.md").read_text()
    assert "no fresh split of the leading trials (about 1000000 s each) fitted in 40% of the time" in (out / "search.md").read_text()


@pytest.mark.parametrize("choice, model, embeddings, text", [
    ("linear", "mlp", "none", "linear (mlp without hidden layers, none embeddings)"),
    ("additive", "mlp", "piecewise_linear", "additive (mlp without hidden layers, piecewise_linear embeddings)"),
    ("mlp:piecewise_linear", "mlp", "piecewise_linear", "mlp (piecewise_linear embeddings)"),
    ("resnet", "resnet", "periodic", "resnet (periodic embeddings)"),
])
def test_the_chosen_model_is_named_as_the_search_chose_it(choice, model, embeddings, text):
    from types import SimpleNamespace

    trials = [auto.TrialRecord(n, "complete", {"model": m}, 0.3, 0.3, 5, 10, 1.0) for n, m in ((2, "tabm"), (7, choice))]
    cfg = SimpleNamespace(model=model, resolved_num_embeddings=embeddings)
    result = auto.SearchResult(cfg=cfg, data=None, trained=None, checkpoints=None, trials=trials, seconds=1.0, chosen=[7])
    assert result.describe_choice() == text


def test_an_average_the_rule_chooses_becomes_the_run_and_predict_reproduces_it(tmp_path, cohort_csv, monkeypatch):
    real = auto.average_options

    def winning(candidates, splits, label_names):  # the real averages, the first made to win
        averages = real(candidates, splits, label_names)
        assert averages and all(len(o.scores) == 2 and np.isfinite(o.scores).all() for o in averages)
        averages[0].scores = [1.0] * len(averages[0].scores)
        return averages

    monkeypatch.setattr(auto, "average_options", winning)
    out = tmp_path / "run"
    assert _auto(cohort_csv, out, "--max_trials", 3, "--time_budget", 300, "--resplits", 2) == 0
    table = pd.read_csv(out / "search.csv").dropna(subset=["resplit_auprc"])
    pair = table.sort_values(["resplit_auprc", "resplit_f1", "trial"], ascending=[False, False, True]).head(2)["trial"].tolist()
    ckpt = torch.load(out / "best.pt", weights_only=True)
    assert len(ckpt["members"]) == 2 and ckpt["complete"]
    report = json.loads((out / "metrics.json").read_text())
    assert [m["trial"] for m in report["run"]["members"]] == pair
    assert json.loads((out / "config.json").read_text())["ensemble_top"] == 2
    text = (out / "search.md").read_text()
    assert f"averages the models of trials {', '.join(map(str, pair))} (their average scored best on the fresh splits" in text
    assert f"trials {' + '.join(map(str, pair))} 1.0000" in text
    preds = pd.read_csv(out / "test_predictions.csv")
    pd.read_csv(cohort_csv).iloc[preds["row"]].to_csv(tmp_path / "new.csv", index=False)
    assert predict.main(["--checkpoint", str(out), "--csv_path", str(tmp_path / "new.csv"), "--output", str(tmp_path / "p.csv")]) == 0
    pd.testing.assert_series_equal(pd.read_csv(tmp_path / "p.csv")["label_ckd_prob"], preds["label_ckd_prob"], check_exact=False,
                                   atol=1e-6)


def test_with_one_fresh_split_an_average_with_the_best_score_is_chosen():
    flexible, linear = _rescored(0, "resnet", 0.1, [0.30]), _rescored(1, "linear", 0.5, [0.27])
    ordered, note, take = auto._one_standard_error([linear, flexible], [auto.Option([flexible, linear], [0.31])])
    assert take == 2 and [f.record.number for f in ordered] == [0, 1] and note == ""
    ordered, note, take = auto._one_standard_error([linear, flexible], [auto.Option([flexible, linear], [0.29])])
    assert take == 1 and [f.record.number for f in ordered] == [0, 1]


def test_a_fresh_split_keeps_the_predictions_of_the_epoch_it_scores(cohort_csv):
    from dataclasses import replace

    from imbalance.distributed import DistContext
    from imbalance.metrics import label_metrics
    from imbalance.pipeline import prepare_data

    base, _ = parse_config(["--preset", "auto", "--csv_path", str(cohort_csv), "--id_col", "patient_id", *SMALL])
    data = auto.resplit(prepare_data(base, dist=DistContext(), keep_search_rows=True), seed=1001)
    # a high rate for a few epochs: the kept (best) epoch is not the last, which the fresh split scores
    cfg = replace(base, **{**auto.TRIAL_SETTINGS, "epochs": 4, "early_stop_patience": 0}, early_stop_metric="macro_auprc",
                  preset="auto", lr=3e-2)
    fitted = auto._fit_and_score(cfg, data, device="cpu", stop_check=None, last_epoch=True)
    assert fitted.epochs == 4 and fitted.best_epoch < 4 and fitted.val_prob.shape == data.labels["val"].shape
    scored = label_metrics(data.labels["val"], fitted.val_prob, 0.5, data.label_names)["macro"]["auprc"]
    assert scored == pytest.approx(fitted.auprc)
    assert auto._fit_and_score(cfg, data, device="cpu", stop_check=None).val_prob is None  # a trial keeps none
