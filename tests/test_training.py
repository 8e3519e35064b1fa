"""The training loop: one epoch, evaluation against sklearn, fit with early stopping, reproducibility."""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, roc_auc_score

from imbalance.errors import UserError
from imbalance.losses import build_loss
from imbalance.sampling import ShuffleSampler, WeightedIndexSampler, row_weights
from imbalance.training import LR_SCHEDULERS, OPTIMIZERS, build_optimizer, evaluate, fit, predict_proba, train_one_epoch
from models import create_model

RND_SEED = 1234


def _problem(n=2000, d=6, labels=2, seed=RND_SEED):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    w = torch.randn(d, labels, generator=gen) * 2
    logits = x @ w - 3.0  # rare positives
    y = (torch.rand(n, labels, generator=gen) < torch.sigmoid(logits)).float()
    return x, y


def _model(d, labels, seed=RND_SEED):
    torch.manual_seed(seed)
    return create_model("mlp", in_features=d, out_features=labels, hidden_sizes=[16], dropout=0.0)


def test_train_one_epoch_lowers_the_loss_and_visits_every_index():
    x, y = _problem()
    model = _model(6, 2)
    loss_fn = build_loss("bce", class_weights=torch.ones(2))
    opt = build_optimizer("adam", model, lr=1e-2)
    before = float(loss_fn(model(x), y).detach())
    stats = None
    for epoch in range(5):
        stats = train_one_epoch(model, x, y, ShuffleSampler(len(x), seed=0).epoch_indices(epoch),
                                loss_fn=loss_fn, optimizer=opt, batch_size=64)
    assert stats["rows"] == len(x)
    assert len(stats["loss_per_label"]) == 2 and stats["loss"] == pytest.approx(np.mean(stats["loss_per_label"]))
    assert float(loss_fn(model(x), y).detach()) < 0.8 * before


def test_evaluate_matches_sklearn_at_default_and_tuned_thresholds():
    x, y = _problem(seed=7)
    model = _model(6, 2)
    loss_fn = build_loss("bce", class_weights=torch.ones(2))
    record, prob = evaluate(model, x, y, loss_fn=loss_fn, label_names=["a", "b"], batch_size=333)
    np.testing.assert_allclose(prob, torch.sigmoid(model(x)).detach().numpy(), atol=1e-6)
    truth = y.numpy().astype(int)
    for j, name in enumerate(["a", "b"]):
        at = record["at_default"]["labels"][name]
        assert at["f1"] == pytest.approx(f1_score(truth[:, j], prob[:, j] >= 0.5, zero_division=0), abs=1e-9)
        assert at["auroc"] == pytest.approx(roc_auc_score(truth[:, j], prob[:, j]), abs=1e-6)
        tuned = record["tuned"]["labels"][name]
        # brute force over every distinct score, F1 by its definition
        cand = np.unique(prob[:, j])
        pred = prob[:, j][None, :] >= cand[:, None]
        tp = (pred & (truth[:, j] == 1)).sum(1)
        brute = np.max(2 * tp / (pred.sum(1) + truth[:, j].sum()))
        assert tuned["f1"] == pytest.approx(brute, abs=1e-9)
    assert record["loss"] == pytest.approx(float(loss_fn(model(x), y).detach()), rel=1e-5)
    # per-label loss: BCE written out, averaged over rows for each label
    p = torch.sigmoid(model(x).detach().double())
    by_hand = (-(y * torch.log(p) + (1 - y) * torch.log(1 - p))).mean(dim=0)
    np.testing.assert_allclose(record["loss_per_label"], by_hand.numpy(), rtol=1e-5)


def _fit(optimizer="adam", lr=3e-3, **overrides):
    x, y = _problem()
    xv, yv = _problem(n=600, seed=99)
    model = _model(6, 2)
    loss_fn = build_loss("weighted_bce", class_weights=torch.tensor([5.0, 5.0]))
    opt = build_optimizer(optimizer, model, lr=lr)
    settings = dict(
        train=(x, y), val=(xv, yv), sampler=WeightedIndexSampler(row_weights(y.numpy(), "per_class"), seed=3),
        loss_fn=loss_fn, optimizer=opt, label_names=["a", "b"], epochs=12, batch_size=64,
        early_stop_metric="macro_auprc", early_stop_patience=3, seed=5,
    )
    settings.update(overrides)
    seen = []
    result = fit(model, on_epoch_end=lambda record, prob: seen.append((record, prob)), **settings)
    return model, result, seen, (xv, yv)


def test_fit_keeps_the_best_epoch_and_stops_after_patience():
    model, result, seen, (xv, yv) = _fit()
    scores = [r["score"] for r in result.history]
    best = int(np.argmax(scores)) + 1  # first maximum, as strict improvement requires
    assert result.best_epoch == best
    if result.stopped_early:
        assert len(result.history) == best + 3
    # the kept weights reproduce the best epoch's validation probabilities
    model.load_state_dict(result.best_state)
    np.testing.assert_allclose(predict_proba(model, xv).numpy(), seen[best - 1][1], atol=1e-6)
    assert [r["improved"] for r in result.history].count(True) >= 1


def test_fit_is_reproducible_with_a_seed():
    _, first, _, _ = _fit(epochs=3)
    _, second, _, _ = _fit(epochs=3)
    assert [r["train_loss"] for r in first.history] == [r["train_loss"] for r in second.history]


def test_fit_with_val_loss_minimises():
    _, result, _, _ = _fit(early_stop_metric="val_loss", epochs=6, early_stop_patience=0)
    losses = [r["val_loss"] for r in result.history]
    assert result.best_epoch == int(np.argmin(losses)) + 1 and len(losses) == 6


def test_diverging_training_is_a_clear_error():
    with pytest.raises(UserError, match="lower --lr"):
        _fit(optimizer="sgd", lr=1e30, epochs=2)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_trains(name):
    x, y = _problem()
    model = _model(6, 2)
    loss_fn = build_loss("bce", class_weights=torch.ones(2))
    opt = build_optimizer(name, model, lr=1e-2)
    before = float(loss_fn(model(x), y).detach())
    for epoch in range(3):
        train_one_epoch(model, x, y, ShuffleSampler(len(x), seed=1).epoch_indices(epoch), loss_fn=loss_fn, optimizer=opt, batch_size=64)
    assert float(loss_fn(model(x), y).detach()) < before


@pytest.mark.parametrize("name", LR_SCHEDULERS.names())
def test_every_scheduler_runs_and_only_schedules_change_the_rate(name):
    _, result, _, _ = _fit(lr_scheduler=name, epochs=6, early_stop_patience=0)
    rates = [r["lr"] for r in result.history]
    assert rates[0] == pytest.approx(3e-3)
    if name == "none":
        assert len(set(rates)) == 1
    if name == "cosine":
        assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0]


def test_bf16_autocast_trains_with_float32_losses():
    x, y = _problem()
    model = _model(6, 2)
    loss_fn = build_loss("focal", class_weights=torch.tensor([9.0, 9.0]))
    opt = build_optimizer("adam", model, lr=1e-2)
    first = last = None
    for epoch in range(4):
        stats = train_one_epoch(model, x, y, ShuffleSampler(len(x), seed=0).epoch_indices(epoch),
                                loss_fn=loss_fn, optimizer=opt, batch_size=128, amp=True)
        first = stats["loss"] if first is None else first
        last = stats["loss"]
    assert np.isfinite(last) and last < first
    record, prob = evaluate(model, x, y, loss_fn=loss_fn, label_names=["a", "b"], amp=True)
    assert prob.dtype == np.float32 and np.isfinite(record["loss"])


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_adam_family_uses_the_fused_step_on_float32_parameters(name):
    opt = build_optimizer(name, _model(6, 2), lr=1e-3)
    assert opt.defaults.get("fused") is True
