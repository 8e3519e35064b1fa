"""Distributed training on CPU with the gloo backend: shards, gathered metrics, and a torchrun run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

from imbalance.distributed import DistContext, shard_indices
from imbalance.inference import Predictor
from imbalance.losses import build_loss
from imbalance.sampling import build_sampler, expected_positive_share, row_weights
from imbalance.training import TensorRows, evaluate
from models import InputSpec, create_model

ROOT = Path(__file__).resolve().parent.parent
RND_SEED = 2024


def _problem(n=1001):
    rng = np.random.default_rng(RND_SEED)
    y = np.column_stack([rng.random(n) < 0.05, rng.random(n) < 0.2]).astype(np.uint8)
    x = rng.normal(size=(n, 5)).astype(np.float32) + y[:, :1]
    return x, y


def _model():
    torch.manual_seed(RND_SEED)
    inputs = InputSpec(n_numeric=5, n_flags=0, cardinalities=[], n_labels=2)
    return create_model("mlp", inputs=inputs, settings={"hidden_sizes": [8], "dropout": 0.0})


def _rows(x):
    return TensorRows(num=torch.from_numpy(x), cat=torch.zeros((len(x), 0), dtype=torch.int64))


@pytest.mark.parametrize("world", [2, 3])
def test_shards_are_disjoint_and_complete(world):
    epoch = torch.arange(12 * world).flip(0)
    shards = [shard_indices(epoch, r, world) for r in range(world)]
    assert all(len(s) == 12 for s in shards)
    assert sorted(torch.cat(shards).tolist()) == sorted(epoch.tolist())
    with pytest.raises(ValueError, match="does not split evenly"):
        shard_indices(torch.arange(7), 0, 2)


@pytest.mark.parametrize("weighted", [True, False])
def test_samplers_draw_epochs_that_split_evenly(weighted):
    _, y = _problem()
    sampler = build_sampler(y, weighted=weighted, method="per_class", seed=3, world_size=2)
    epoch = sampler.epoch_indices(1)
    assert epoch.numel() == 1002 and epoch.numel() % 2 == 0
    assert sampler.epoch_indices(1).equal(epoch)  # every rank draws the same epoch


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    tdist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.set_num_threads(1)
    ctx = DistContext(rank=rank, world_size=world)
    x, y = _problem()
    sampler = build_sampler(y, weighted=True, method="per_class", seed=5, world_size=world)
    shard = ctx.shard(sampler.epoch_indices(2))
    record, prob = evaluate(_model(), _rows(x), torch.from_numpy(y).float(),
                            loss_fn=build_loss("bce", class_weights=torch.ones(2)), label_names=["a", "b"], dist=ctx)
    torch.save({"shard": shard, "record": record, "prob": torch.from_numpy(prob)}, Path(out_dir) / f"rank{rank}.pt")
    tdist.destroy_process_group()


def test_two_gloo_processes_shard_the_epoch_and_gather_the_same_metrics(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    parts = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    x, y = _problem()
    sampler = build_sampler(y, weighted=True, method="per_class", seed=5, world_size=2)
    single_epoch = sampler.epoch_indices(2)
    union = torch.cat([p["shard"] for p in parts])
    # disjoint positions of one epoch, complete, and so the same class shares as one process
    assert sorted(union.tolist()) == sorted(single_epoch.tolist())
    assert parts[0]["shard"].numel() == parts[1]["shard"].numel() == single_epoch.numel() // 2
    shares = y[union.numpy()].mean(axis=0)
    np.testing.assert_allclose(shares, y[single_epoch.numpy()].mean(axis=0))
    expected = expected_positive_share(y, row_weights(y, "per_class"))
    assert np.all(np.abs(shares - expected) < 0.05)
    # gathered predictions and metrics equal one process scoring everything
    record, prob = evaluate(_model(), _rows(x), torch.from_numpy(y).float(),
                            loss_fn=build_loss("bce", class_weights=torch.ones(2)), label_names=["a", "b"])
    for part in parts:
        np.testing.assert_allclose(part["prob"].numpy(), prob, atol=1e-6)
        assert part["record"]["tuned"]["labels"]["a"]["f1"] == pytest.approx(record["tuned"]["labels"]["a"]["f1"])
        assert part["record"]["at_default"]["macro"]["auroc"] == pytest.approx(record["at_default"]["macro"]["auroc"])
        assert part["record"]["loss"] == pytest.approx(record["loss"], rel=1e-6)


@pytest.mark.parametrize("model, model_args", [("mlp", "hidden_sizes=[16]"), ("tabm", "k=4,d_block=16")])
def test_torchrun_two_processes_write_one_checkpoint_that_predicts(tmp_path, model, model_args):
    from imbalance.demo import make_demo_cohort

    data = tmp_path / "cohort.csv"
    make_demo_cohort(n_rows=1500, seed=3).to_csv(data, index=False)
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(ROOT / "train_classifier.py"), "--csv_path", str(data), "--id_col", "patient_id",
               "--output_dir", str(out), "--model", model, "--model_args", model_args, "--epochs", "2", "--batch_size", "64", "--use_weighted_sampling",
               "--optimize_thresholds", "--baselines", "none", "--quiet", "--no_tensorboard"]
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in out.iterdir()) == [".run.lock", "analysis.json", "best.pt", "config.json", "last.pt", "metrics.json",
                                                    "model_card.md", "plots", "report.md", "run.json", "test_predictions.csv"]
    assert json.loads((out / "run.json").read_text())["status"] == "complete"  # rank 0 alone owns the folder
    report = json.loads((out / "metrics.json").read_text())
    assert len(report["history"]) == 2
    assert torch.load(out / "best.pt", weights_only=True)["model_name"] == model
    predictor = Predictor.load(out)
    rows = pd.read_csv(data).head(50)
    assert predictor.predict_proba(rows).shape == (50, 5)
    expected = pd.read_csv(out / "test_predictions.csv")
    got = predictor.predict_frame(pd.read_csv(data).iloc[expected["row"]])
    # (the calibration's slope magnifies the float32 rounding between the ranks' and one process's forward pass)
    np.testing.assert_allclose(got["label_diabetes_prob"].to_numpy(), expected["label_diabetes_prob"].to_numpy(), atol=1e-5)
