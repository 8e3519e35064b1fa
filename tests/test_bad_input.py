"""Bad input, as a careless or hostile user gives it: every case stops with exit code 2 and one
line on stderr that names the problem and the flag, file or column at fault, with no traceback,
and leaves every file that existed before byte-identical (and no new file behind)."""

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import predict
import train_classifier
from imbalance.demo import make_demo_cohort

QUIET = ["--quiet", "--no_tensorboard", "--baselines", "none"]


@pytest.fixture(scope="module")
def base_world(tmp_path_factory) -> Path:
    """A user's folder: a good cohort, files of many kinds, a finished run and checkpoints spoilt in several ways."""
    world = tmp_path_factory.mktemp("world")
    cohort = make_demo_cohort(n_rows=400, seed=1)
    cohort.to_csv(world / "good.csv", index=False)
    binary = cohort.drop(columns=[c for c in cohort.columns if c.startswith("label_") and c != "label_diabetes"])
    binary.to_csv(world / "binary.csv", index=False)
    (world / "empty.csv").write_text("")
    (world / "header_only.csv").write_text(",".join(cohort.columns) + "\n")
    (world / "garbage.parquet").write_text("this is not parquet\n")
    (world / "dup_cols.csv").write_text("a,a,label_x\n1,2,0\n3,4,1\n")
    for name, column in {"outcome_two": [0, 1, 2] * 10, "outcome_text": ["yes", "no", "maybe"] * 10,
                         "all_pos": [1] * 30, "all_neg": [0] * 30, "all_missing": [np.nan] * 30}.items():
        pd.DataFrame({"x": np.arange(30), "label_y": column}).to_csv(world / f"{name}.csv", index=False)
    pd.DataFrame({"x": np.arange(10), "label_y": [0, 1] * 5}).to_csv(world / "tiny.csv", index=False)
    pd.DataFrame({"code": [f"c{i % 20_000}" for i in range(40_000)], "label_y": [0, 0, 0, 1] * 10_000}).to_csv(
        world / "wide.csv", index=False)
    (world / "bad.toml").write_text("lr = [unclosed\n")
    (world / "unknown_key.toml").write_text("learning_rate = 0.1\n")
    (world / "wrong_type.toml").write_text('epochs = "many"\n')
    (world / "notes.txt").write_text("the user's own file\n")
    (world / "foreign").mkdir()
    (world / "foreign" / "results.xlsx").write_text("someone else's results")
    (world / "predictions.csv").write_text("an earlier predictions file\n")

    assert train_classifier.main(["--csv_path", str(world / "good.csv"), "--id_col", "patient_id", "--epochs", "2",
                                  "--output_dir", str(world / "run"), *QUIET]) == 0
    ckpt = torch.load(world / "run" / "best.pt", weights_only=True)

    def spoil(name: str, **change) -> None:
        torch.save({**ckpt, **change}, world / name)

    spoil("incomplete.pt", complete=False, epoch=1)
    spoil("thresholds.pt", thresholds=ckpt["thresholds"][:-1])
    spoil("preprocessing.pt", preprocessing={**ckpt["preprocessing"], "columns": [{"name": "age", "kind": "numeric"}]})
    spoil("shapes.pt", members=[{k: torch.zeros(3) for k in ckpt["members"][0]}])
    spoil("no_weights.pt", members=[])

    class Code:
        def __reduce__(self):
            return (print, ("this ran on loading",))

    torch.save({"format_version": 2, "payload": Code()}, world / "pickled.pt")
    (world / "garbage.pt").write_bytes(b"\x00\x01 not a checkpoint")
    return world


@pytest.fixture
def world(base_world, tmp_path) -> Path:
    copy = tmp_path / "world"
    shutil.copytree(base_world, copy)
    return copy


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else b"<dir>") for p in sorted(folder.rglob("*"))}


TRAIN_CASES = {
    # name: (arguments, fragments the error line must hold); {w} is the world folder
    "missing csv": (["--csv_path", "{w}/nope.csv"], ["--csv_path", "nope.csv", "no such file"]),
    "csv is a folder": (["--csv_path", "{w}/foreign"], ["foreign"]),
    "empty csv": (["--csv_path", "{w}/empty.csv"], ["empty.csv", "empty"]),
    "header only": (["--csv_path", "{w}/header_only.csv"], ["header_only.csv", "no data rows"]),
    "not parquet": (["--csv_path", "{w}/garbage.parquet"], ["garbage.parquet", "cannot read it as Parquet"]),
    "duplicated columns": (["--csv_path", "{w}/dup_cols.csv"], ["dup_cols.csv", "duplicated column"]),
    "unknown target": (["--csv_path", "{w}/good.csv", "--target_cols", "label_cancer"], ["label_cancer", "--target_cols"]),
    "outcome 2": (["--csv_path", "{w}/outcome_two.csv"], ["label_y", "must hold 0/1", "found 2"]),
    "outcome text": (["--csv_path", "{w}/outcome_text.csv"], ["label_y", "'maybe'"]),
    "only positives": (["--csv_path", "{w}/all_pos.csv"], ["label_y", "no negative rows"]),
    "only negatives": (["--csv_path", "{w}/all_neg.csv"], ["label_y", "no positive rows"]),
    "outcome all missing": (["--csv_path", "{w}/all_missing.csv"], ["every row has a missing outcome", "label_y"]),
    "too few rows": (["--csv_path", "{w}/tiny.csv"], ["too few to split"]),
    "unknown id column": (["--csv_path", "{w}/good.csv", "--id_col", "mrn"], ["--id_col", "mrn"]),
    "id is the outcome": (["--csv_path", "{w}/binary.csv", "--id_col", "label_diabetes"], ["label_diabetes", "both --id_col and an outcome"]),
    "unknown drop column": (["--csv_path", "{w}/good.csv", "--drop_cols", "weight"], ["--drop_cols", "weight"]),
    "unknown slice column": (["--csv_path", "{w}/good.csv", "--slice_cols", "age,ethnicity"],
                             ["--slice_cols", "'ethnicity'", "good.csv", "feature columns"]),
    "threshold metric without its value": (["--threshold_metric", "recall_at_precision"],
                                           ["--threshold_metric", "recall_at_precision:P"]),
    "threshold constraint out of range": (["--threshold_metric", "precision_at_recall:80"], ["--threshold_metric", "R in (0, 1]"]),
    "unknown calibration": (["--calibration", "beta"], ["--calibration", "beta"]),
    "too few bootstrap resamples": (["--bootstrap", "20"], ["--bootstrap", "at least 100"]),
    "ensemble_top without a search": (["--ensemble_top", "3"], ["--ensemble_top", "--preset auto"]),
    "unknown categorical column": (["--csv_path", "{w}/good.csv", "--categorical_cols", "zip"], ["--categorical_cols", "zip"]),
    "no features left": (["--csv_path", "{w}/tiny.csv", "--drop_cols", "x"], ["no feature columns left"]),
    "one-hot too wide": (["--csv_path", "{w}/wide.csv", "--min_category_count", "1"], ["one-hot", "code", "--min_category_count"]),
    "output dir empty": (["--output_dir", ""], ["--output_dir is empty"]),
    "output dir is a file": (["--output_dir", "{w}/notes.txt"], ["--output_dir", "notes.txt", "is a file"]),
    "output dir under a file": (["--output_dir", "{w}/notes.txt/run"], ["--output_dir", "lies under", "notes.txt"]),
    "output dir not ours": (["--output_dir", "{w}/foreign"], ["--output_dir", "results.xlsx", "no run of this tool"]),
    "output dir holds a run": (["--output_dir", "{w}/run"], ["--output_dir", "earlier run", "--overwrite"]),
    "overwrite with a bad csv": (["--output_dir", "{w}/run", "--overwrite", "--csv_path", "{w}/nope.csv"], ["nope.csv"]),
    "negative seed": (["--seed", "-1"], ["--seed"]),
    "seed too large": (["--seed", str(2**40)], ["--seed"]),
    "seed not a number": (["--seed", "abc"], ["--seed", "abc"]),
    "zero epochs": (["--epochs", "0"], ["--epochs must be >= 1"]),
    "zero batch": (["--batch_size", "0"], ["--batch_size must be >= 1"]),
    "zero lr": (["--lr", "0"], ["--lr must be > 0"]),
    "lr not a number": (["--lr", "fast"], ["--lr", "fast"]),
    "val fraction 0": (["--val_fraction", "0"], ["--val_fraction"]),
    "val fraction above 1": (["--val_fraction", "1.5"], ["--val_fraction"]),
    "test fraction 0.95": (["--test_fraction", "0.95"], ["--test_fraction"]),
    "nothing left to train": (["--val_fraction", "0.5", "--test_fraction", "0.45"], ["--val_fraction + --test_fraction"]),
    "unknown loss": (["--loss_type", "hinge"], ["--loss_type", "hinge"]),
    "unknown model": (["--model", "xgboost"], ["--model", "xgboost"]),
    "unknown model setting": (["--model", "resnet", "--model_args", "width=3"], ["--model_args", "width"]),
    "model args not key=value": (["--model_args", "d_block"], ["--model_args", "key=value"]),
    "unknown preset": (["--preset", "extreme"], ["--preset", "extreme"]),
    "missing config": (["--config", "{w}/nope.toml"], ["--config", "nope.toml"]),
    "config syntax": (["--config", "{w}/bad.toml"], ["bad.toml", "cannot parse"]),
    "config unknown key": (["--config", "{w}/unknown_key.toml"], ["unknown_key.toml", "unknown key 'learning_rate'"]),
    "config wrong type": (["--config", "{w}/wrong_type.toml"], ["wrong_type.toml", "epochs"]),
    "unknown flag": (["--early_stop_metrics", "macro_f1"], ["--early_stop_metrics", "did you mean --early_stop_metric?"]),
    "a yes/no flag given a value": (["--use_weighted_sampling", "false"],
                                    ["--use_weighted_sampling takes no value, got 'false'", "--no_use_weighted_sampling"]),
    "a value without its flag": (["--epochs", "3", "five"], ["unexpected value 'five'", "--flag VALUE"]),
    "focal alpha above 1": (["--focal_alpha", "1.5"], ["--focal_alpha"]),
    "unknown resampler": (["--resample", "smoteish"], ["--resample", "smoteish"]),
    "two sources of generated rows": (["--generator", "gaussian_copula", "--generated_csv", "{w}/good.csv"], ["--generated_csv and --generator"]),
    "missing generated csv": (["--generated_csv", "{w}/nope.csv"], ["nope.csv"]),
    "compare without augmentation": (["--compare"], ["--compare"]),
    "compare an unknown method": (["--compare", "smotenc,magic"], ["--compare", "magic", "choose from"]),
    "compare a method twice": (["--compare", "uniform,uniform"], ["--compare", "twice"]),
    "compare a list and a generator": (["--compare", "smotenc", "--generator", "uniform"], ["--compare", "drop --resample"]),
    "generator epochs without a deep generator": (["--generator", "uniform", "--generator_epochs", "5"], ["--generator_epochs"]),
    "one-hot group that is not there": (["--generator", "uniform", "--onehot_groups", "work_type"], ["--onehot_groups work_type"]),
    "resume a missing folder": (["--resume", "{w}/nope"], ["--resume", "nope"]),
    "resume with other flags": (["--resume", "{w}/run", "--lr", "0.1"], ["--resume", "drop --lr"]),
    "resume a complete run": (["--resume", "{w}/run"], ["--resume", "complete"]),
    "resume a foreign folder": (["--resume", "{w}/foreign"], ["--resume", "foreign"]),
    "demo rows": (["--demo_rows", "10"], ["--demo_rows"]),
    "class weight multiplier 0": (["--class_weight_multiplier", "0"], ["--class_weight_multiplier"]),
    "ensemble 0": (["--ensemble", "0"], ["--ensemble must be >= 1"]),
    "unknown embedding": (["--num_embeddings", "fourier"], ["--num_embeddings", "fourier"]),
    "one bin": (["--n_bins", "1"], ["--n_bins must be >= 2"]),
}

PREDICT_CASES = {
    "missing checkpoint": (["--checkpoint", "{w}/nope.pt"], ["--checkpoint", "nope.pt"]),
    "folder without best.pt": (["--checkpoint", "{w}/foreign"], ["--checkpoint", "foreign"]),
    "garbage checkpoint": (["--checkpoint", "{w}/garbage.pt"], ["garbage.pt", "not a readable checkpoint"]),
    "pickled code": (["--checkpoint", "{w}/pickled.pt"], ["pickled.pt", "could run code"]),
    "unfinished run": (["--checkpoint", "{w}/incomplete.pt"], ["incomplete.pt", "did not complete", "--allow_incomplete"]),
    "threshold count": (["--checkpoint", "{w}/thresholds.pt"], ["thresholds.pt", "damaged", "4 thresholds for 5 labels"]),
    "broken preprocessing": (["--checkpoint", "{w}/preprocessing.pt"], ["preprocessing.pt", "damaged", "preprocessing"]),
    "weights of another shape": (["--checkpoint", "{w}/shapes.pt"], ["shapes.pt", "damaged", "weights"]),
    "no weights": (["--checkpoint", "{w}/no_weights.pt"], ["no_weights.pt", "no model weights"]),
    "missing rows file": (["--csv_path", "{w}/nope.csv"], ["nope.csv"]),
    "rows without the features": (["--csv_path", "{w}/tiny.csv"], ["tiny.csv", "missing feature column"]),
    "output over the input": (["--output", "{w}/good.csv"], ["--output", "good.csv", "input"]),
    "output over the checkpoint": (["--output", "{w}/run/best.pt"], ["--output", "best.pt"]),
    "output exists": (["--output", "{w}/predictions.csv"], ["--output", "predictions.csv", "--overwrite"]),
    "output is a folder": (["--output", "{w}/foreign"], ["--output", "foreign", "folder"]),
    "output under a file": (["--output", "{w}/notes.txt/p.csv"], ["--output", "notes.txt"]),
    "output empty": (["--output", ""], ["--output is empty"]),
    "predict unknown flag": (["--threshold", "0.3"], ["--threshold"]),
}


def _expand(args: list[str], world: Path) -> list[str]:
    return [a.replace("{w}", str(world)) for a in args]


def _exit_code(main, argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exc:  # argparse's own exit, after its one line
        return exc.code


def _check(capsys, code: int, fragments: list[str], world: Path, before: dict[str, bytes]) -> None:
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert ": error: " in lines[0]
    for fragment in fragments:
        assert fragment.replace("{w}", str(world)) in lines[0], (fragment, lines[0])
    assert _snapshot(world) == before  # nothing changed, nothing new


@pytest.mark.parametrize("case", sorted(TRAIN_CASES))
def test_train_classifier_bad_input(case, world, capsys, monkeypatch):
    monkeypatch.chdir(world)
    args, fragments = TRAIN_CASES[case]
    argv = _expand(args, world)
    if "--output_dir" not in argv and "--resume" not in argv:
        argv += ["--output_dir", str(world / "new_run")]
    if "--resume" not in argv:
        argv += QUIET
    before = _snapshot(world)
    _check(capsys, _exit_code(train_classifier.main, argv), fragments, world, before)


@pytest.mark.parametrize("case", sorted(PREDICT_CASES))
def test_predict_bad_input(case, world, capsys, monkeypatch):
    monkeypatch.chdir(world)
    args, fragments = PREDICT_CASES[case]
    defaults = {"--checkpoint": str(world / "run"), "--csv_path": str(world / "good.csv"), "--output": str(world / "out.csv")}
    argv = _expand(args, world)
    for flag, value in defaults.items():
        if flag not in argv:
            argv += [flag, value]
    before = _snapshot(world)
    _check(capsys, _exit_code(predict.main, argv), fragments, world, before)


def test_the_suite_is_large_enough():
    assert len(TRAIN_CASES) + len(PREDICT_CASES) >= 50


def test_the_world_is_usable(world, capsys):
    """The good inputs of the world work, so each bad case fails for its own reason."""
    code = predict.main(["--checkpoint", str(world / "run"), "--csv_path", str(world / "good.csv"),
                         "--output", str(world / "out.csv")])
    assert code == 0 and len(pd.read_csv(world / "out.csv")) == 400
    marker = json.loads((world / "run" / "run.json").read_text())
    assert marker["status"] == "complete"
