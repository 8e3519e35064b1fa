"""The training loop: one epoch, evaluation against sklearn, fit with early stopping, reproducibility,
and models whose output is an ensemble of members (B, k, L)."""

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score, roc_auc_score
from torch import nn

from imbalance.errors import UserError
from imbalance.losses import build_loss
from imbalance.sampling import ShuffleSampler, WeightedIndexSampler, row_weights
from imbalance.training import (
    LR_SCHEDULERS,
    OPTIMIZERS,
    EpochRecord,
    TensorRows,
    build_optimizer,
    evaluate,
    fit,
    predict_proba,
    train_one_epoch,
)
from models import InputSpec, create_model

RND_SEED = 1234
N_NUM, CARDS = 6, [4]


def _problem(n=2000, d=N_NUM, labels=2, seed=RND_SEED):
    """``d`` numeric columns and one 4-level categorical column; rare positives from both."""
    gen = torch.Generator().manual_seed(seed)
    num = torch.randn(n, d, generator=gen)
    cat = torch.randint(0, CARDS[0], (n, 1), generator=gen)
    w = torch.randn(d, labels, generator=gen) * 2
    level_effect = torch.tensor([[0.0, 0.0], [2.0, -1.0], [-2.0, 0.0], [0.0, 2.0]])[:, :labels]
    logits = num @ w + level_effect[cat[:, 0]] - 3.0  # rare positives
    y = (torch.rand(n, labels, generator=gen) < torch.sigmoid(logits)).float()
    return TensorRows(num=num, cat=cat), y


def _model(d=N_NUM, labels=2, seed=RND_SEED, hidden=(16,)):
    torch.manual_seed(seed)
    inputs = InputSpec(n_numeric=d, n_flags=0, cardinalities=list(CARDS), n_labels=labels)
    return create_model("mlp", inputs=inputs, settings={"hidden_sizes": list(hidden), "dropout": 0.0})


def _logits(model, x):
    with torch.no_grad():
        return model(x.num, x.cat)


def test_train_one_epoch_lowers_the_loss_and_visits_every_index():
    x, y = _problem()
    model = _model()
    loss_fn = build_loss("bce", class_weights=torch.ones(2))
    opt = build_optimizer("adam", model, lr=1e-2)
    before = float(loss_fn(_logits(model, x), y))
    stats = None
    for epoch in range(5):
        stats = train_one_epoch(model, x, y, ShuffleSampler(len(x), seed=0).epoch_indices(epoch),
                                loss_fn=loss_fn, optimizer=opt, batch_size=64)
    assert stats["rows"] == len(x)
    assert len(stats["loss_per_label"]) == 2 and stats["loss"] == pytest.approx(np.mean(stats["loss_per_label"]))
    assert float(loss_fn(_logits(model, x), y)) < 0.8 * before


def test_evaluate_matches_sklearn_at_default_and_tuned_thresholds():
    x, y = _problem(seed=7)
    model = _model()
    loss_fn = build_loss("bce", class_weights=torch.ones(2))
    record, prob = evaluate(model, x, y, loss_fn=loss_fn, label_names=["a", "b"], batch_size=333)
    np.testing.assert_allclose(prob, torch.sigmoid(_logits(model, x)).numpy(), atol=1e-6)
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
    assert record["loss"] == pytest.approx(float(loss_fn(_logits(model, x), y)), rel=1e-5)
    # per-label loss: BCE written out, averaged over rows for each label
    p = torch.sigmoid(_logits(model, x).double())
    by_hand = (-(y * torch.log(p) + (1 - y) * torch.log(1 - p))).mean(dim=0)
    np.testing.assert_allclose(record["loss_per_label"], by_hand.numpy(), rtol=1e-5)


def _fit(optimizer="adam", lr=3e-3, **overrides):
    x, y = _problem()
    xv, yv = _problem(n=600, seed=99)
    model = _model()
    loss_fn = build_loss("weighted_bce", class_weights=torch.tensor([5.0, 5.0]))
    opt = build_optimizer(optimizer, model, lr=lr)
    settings = dict(
        train=(x, y), val=(xv, yv), sampler=WeightedIndexSampler(row_weights(y.numpy(), "per_class"), seed=3),
        loss_fn=loss_fn, optimizer=opt, label_names=["a", "b"], epochs=12, batch_size=64,
        early_stop_metric="macro_auprc", early_stop_patience=3, seed=5,
    )
    settings.update(overrides)
    seen = []
    result = fit(model, on_epoch_end=lambda record, prob, state: seen.append((record, prob)), **settings)
    return model, result, seen, (xv, yv)


def test_fit_keeps_the_best_epoch_and_stops_after_patience():
    model, result, seen, (xv, yv) = _fit()
    scores = [r.score for r in result.history]
    best = int(np.argmax(scores)) + 1  # first maximum, as strict improvement requires
    assert result.best_epoch == best
    if result.stopped_early:
        assert len(result.history) == best + 3
    # the kept weights reproduce the best epoch's validation probabilities
    model.load_state_dict(result.best_state)
    np.testing.assert_allclose(predict_proba(model, xv).numpy(), seen[best - 1][1], atol=1e-6)
    assert [r.improved for r in result.history].count(True) >= 1
    assert result.history[-1].best_epoch == best


def test_epoch_records_are_typed_and_passed_to_the_callback():
    _, result, seen, _ = _fit(epochs=3, early_stop_patience=0, member=2)
    assert len(result.history) == len(seen) == 3
    for i, (record, prob) in enumerate(seen):
        assert isinstance(record, EpochRecord) and record is result.history[i]
        assert record.epoch == i + 1 and record.member == 2
        assert record.score == record.val["macro"]["auprc"]  # the watched metric (macro_auprc)
        assert set(record.train_loss_per_label) == set(record.val_loss_per_label) == {"a", "b"}
        assert record.val_loss == pytest.approx(np.mean(list(record.val_loss_per_label.values())))
        # the per-label counts in the record are those of the probabilities handed to the callback
        pos_pred = (prob >= 0.5).sum(axis=0)
        summary = record.summary(["a", "b"])
        assert summary["member"] == 2 and summary["epoch"] == i + 1 and summary["score"] == record.score
        assert summary["val_pos_pred"] == {"a": pos_pred[0], "b": pos_pred[1]}
        assert record.val_tuned["macro"]["f1"] >= record.val["macro"]["f1"] - 1e-12  # tuned on these rows


def test_fit_is_reproducible_with_a_seed():
    _, first, _, _ = _fit(epochs=3)
    _, second, _, _ = _fit(epochs=3)
    assert [r.train_loss for r in first.history] == [r.train_loss for r in second.history]


def test_fit_with_val_loss_minimises():
    _, result, _, _ = _fit(early_stop_metric="val_loss", epochs=6, early_stop_patience=0)
    losses = [r.val_loss for r in result.history]
    assert result.best_epoch == int(np.argmin(losses)) + 1 and len(losses) == 6


def test_diverging_training_is_a_clear_error():
    with pytest.raises(UserError, match="lower --lr"):
        _fit(optimizer="sgd", lr=1e30, epochs=2)


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_trains(name):
    x, y = _problem()
    model = _model()
    loss_fn = build_loss("bce", class_weights=torch.ones(2))
    opt = build_optimizer(name, model, lr=1e-2)
    before = float(loss_fn(_logits(model, x), y))
    for epoch in range(3):
        train_one_epoch(model, x, y, ShuffleSampler(len(x), seed=1).epoch_indices(epoch), loss_fn=loss_fn, optimizer=opt, batch_size=64)
    assert float(loss_fn(_logits(model, x), y)) < before


@pytest.mark.parametrize("name", LR_SCHEDULERS.names())
def test_every_scheduler_runs_and_only_schedules_change_the_rate(name):
    _, result, _, _ = _fit(lr_scheduler=name, epochs=6, early_stop_patience=0)
    rates = [r.lr for r in result.history]
    assert rates[0] == pytest.approx(3e-3)
    if name == "none":
        assert len(set(rates)) == 1
    if name == "cosine":
        assert rates == sorted(rates, reverse=True) and rates[-1] < rates[0]


def test_bf16_autocast_trains_with_float32_losses():
    x, y = _problem()
    model = _model()
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
    opt = build_optimizer(name, _model(), lr=1e-3)
    assert opt.defaults.get("fused") is True


# ------------------------------------------------------------------------- rows and member outputs


def test_tensor_rows_share_memory_with_the_encoded_rows_and_select_both_blocks():
    from imbalance.preprocessing import EncodedRows

    rng = np.random.default_rng(RND_SEED)
    encoded = EncodedRows(num=rng.normal(size=(10, 3)).astype(np.float32), cat=rng.integers(0, 4, (10, 2)), n_numeric=2)
    rows = TensorRows.from_numpy(encoded)
    assert len(rows) == 10 and rows.device == torch.device("cpu")
    assert rows.num.dtype == torch.float32 and rows.cat.dtype == torch.int64
    assert rows.num.data_ptr() == encoded.num.ctypes.data  # no copy on the CPU
    picked = rows.index_select(torch.tensor([7, 2, 2]))
    np.testing.assert_array_equal(picked.num.numpy(), encoded.num[[7, 2, 2]])
    np.testing.assert_array_equal(picked.cat.numpy(), encoded.cat[[7, 2, 2]])
    part = rows.slice(3, 6)
    np.testing.assert_array_equal(part.cat.numpy(), encoded.cat[3:6])
    np.testing.assert_array_equal(part.num.numpy(), encoded.num[3:6])


class _Members(nn.Module):
    """k models' logits stacked as (B, k, L): what a model that is itself an ensemble (TabM) returns."""

    def __init__(self, members):
        super().__init__()
        self.members = nn.ModuleList(members)

    def forward(self, x_num, x_cat):
        return torch.stack([m(x_num, x_cat) for m in self.members], dim=1)


def _bce_by_hand(logits, y):
    """(n, L) binary cross-entropy written out, in float64."""
    p = torch.sigmoid(logits.double())
    return -(y * torch.log(p) + (1 - y) * torch.log(1 - p))


def test_predict_proba_averages_member_and_model_probabilities():
    x, _ = _problem(n=301)
    a, b = _model(seed=1), _model(seed=2)
    expected = ((torch.sigmoid(_logits(a, x)) + torch.sigmoid(_logits(b, x))) / 2).numpy()
    assert not np.allclose(torch.sigmoid(_logits(a, x)).numpy(), expected, atol=1e-3)  # the members differ
    np.testing.assert_allclose(predict_proba(_Members([a, b]), x, batch_size=7).numpy(), expected, atol=1e-6)
    np.testing.assert_allclose(predict_proba([a, b], x).numpy(), expected, atol=1e-6)  # a seed ensemble
    np.testing.assert_allclose(predict_proba(a, x).numpy(), torch.sigmoid(_logits(a, x)).numpy(), atol=1e-7)
    empty = predict_proba(_Members([a, b]), x.slice(0, 0))
    assert empty.shape == (0, 2)


def test_evaluate_a_member_output_scores_the_mean_probability_and_the_mean_member_loss():
    x, y = _problem(n=500, seed=3)
    a, b = _model(seed=1), _model(seed=2)
    record, prob = evaluate(_Members([a, b]), x, y, loss_fn=build_loss("bce", class_weights=torch.ones(2)),
                            label_names=["a", "b"], batch_size=64)
    expected = ((torch.sigmoid(_logits(a, x)) + torch.sigmoid(_logits(b, x))) / 2).numpy()
    np.testing.assert_allclose(prob, expected, atol=1e-6)
    truth = y.numpy().astype(int)
    for j, name in enumerate(["a", "b"]):
        assert record["at_default"]["labels"][name]["auroc"] == pytest.approx(roc_auc_score(truth[:, j], expected[:, j]), abs=1e-6)
    by_hand = (_bce_by_hand(_logits(a, x), y).mean(dim=0) + _bce_by_hand(_logits(b, x), y).mean(dim=0)) / 2
    np.testing.assert_allclose(record["loss_per_label"], by_hand.numpy(), rtol=1e-5)


def test_train_one_epoch_trains_every_member_on_the_mean_of_their_losses():
    # One full batch of plain SGD: each member moves by lr / k times the gradient of its own loss.
    x, y = _problem(n=256, seed=4)
    a, b = _model(seed=1), _model(seed=2)
    both = _Members([a, b])
    lr, k = 0.5, 2
    expected, member_losses = [], []
    for member in (a, b):
        reference = _model(seed=1 if member is a else 2)
        loss = nn.functional.binary_cross_entropy_with_logits(reference(x.num, x.cat), y)
        loss.backward()
        member_losses.append(float(loss.detach()))
        expected.append({name: (p - lr / k * p.grad).detach() for name, p in reference.named_parameters()})
    stats = train_one_epoch(both, x, y, torch.arange(len(y)), loss_fn=build_loss("bce", class_weights=torch.ones(2)),
                            optimizer=torch.optim.SGD(both.parameters(), lr=lr), batch_size=len(y))
    assert stats["rows"] == len(y)
    assert stats["loss"] == pytest.approx(np.mean(member_losses), rel=1e-5)  # before the step
    for member, want in zip((a, b), expected):
        for name, p in member.named_parameters():
            torch.testing.assert_close(p.detach(), want[name], rtol=1e-5, atol=1e-6)


def _best_with_floor_by_hand(truth, prob, measured, floor):
    """The best recall (precision) over every distinct score as threshold whose precision (recall) >= floor."""
    best = 0.0
    for t in np.unique(prob):
        pred = prob >= t
        tp = float((pred & (truth == 1)).sum())
        recall, precision = tp / truth.sum(), tp / pred.sum()
        value, held = (recall, precision) if measured == "recall" else (precision, recall)
        if held >= floor - 1e-12:
            best = max(best, value)
    return best


@pytest.mark.parametrize("name, held", [("macro_recall", "precision"), ("macro_precision", "recall")])
def test_recall_and_precision_at_tuned_thresholds_are_compared_at_the_best_epochs_operating_point(name, held):
    measured = name.removeprefix("macro_")
    _, result, seen, (_, yv) = _fit(early_stop_metric=name, tuned_thresholds=True, epochs=6, early_stop_patience=0)
    truth = yv.numpy()
    best = seen[0][0]
    assert best.improved and best.compared == ""
    for record, prob in seen[1:]:
        compared = np.mean([_best_with_floor_by_hand(truth[:, j], prob[:, j], measured, best.val_tuned["labels"][n][held])
                            for j, n in enumerate(("a", "b"))])
        assert record.compared == f"{compared:.4f} at epoch {best.epoch}'s {held}"
        assert record.score == record.val_tuned["macro"][measured]  # the epoch's own value, shown first
        if record.improved:
            best = record
        else:
            assert compared <= record.best_score + 1e-12
    assert result.best_epoch == best.epoch


def test_f1_and_untuned_metrics_compare_their_own_values():
    for name, tuned in (("macro_f1", True), ("macro_recall", False), ("macro_recall_at_0.5", True)):
        _, result, _, _ = _fit(early_stop_metric=name, tuned_thresholds=tuned, epochs=3, early_stop_patience=0)
        assert all(r.compared == "" for r in result.history)


def test_a_resumed_fit_compares_at_the_restored_best_epochs_operating_point():
    import copy

    x, y = _problem()
    xv, yv = _problem(n=600, seed=99)
    settings = dict(
        train=(x, y), val=(xv, yv), sampler=WeightedIndexSampler(row_weights(y.numpy(), "per_class"), seed=3),
        loss_fn=build_loss("weighted_bce", class_weights=torch.tensor([5.0, 5.0])), label_names=["a", "b"], epochs=6,
        batch_size=64, early_stop_metric="macro_recall", early_stop_patience=0, seed=5, tuned_thresholds=True,
    )
    model = _model()
    opt = build_optimizer("adam", model, lr=3e-3)
    saved = {}

    def snapshot(record, prob, state):
        if record.epoch == 3:
            saved.update(model=copy.deepcopy(model.state_dict()), opt=copy.deepcopy(opt.state_dict()), state=copy.deepcopy(state))

    whole = fit(model, optimizer=opt, on_epoch_end=snapshot, **settings)
    again = _model()
    again.load_state_dict(saved["model"])
    opt_again = build_optimizer("adam", again, lr=3e-3)
    opt_again.load_state_dict(saved["opt"])
    resumed = fit(again, optimizer=opt_again, resume=saved["state"], **settings)
    assert [r.compared for r in resumed.history] == [r.compared for r in whole.history]
    assert all(r.compared for r in resumed.history[3:])
    assert resumed.best_epoch == whole.best_epoch


def test_the_plateau_schedule_follows_the_improvements_of_a_metric_compared_at_the_best_operating_point():
    _, result, _, _ = _fit(early_stop_metric="macro_recall", tuned_thresholds=True, lr_scheduler="plateau",
                           early_stop_patience=3, epochs=10, lr=3e-2)
    # ReduceLROnPlateau with patience max(1, 3 // 3) = 1: the rate halves after two epochs in a row without an improvement
    lr, bad, expected = 3e-2, 0, []
    for record in result.history:
        expected.append(lr)
        bad = 0 if record.improved else bad + 1
        if bad > 1:
            lr, bad = lr / 2, 0
    assert [r.lr for r in result.history] == pytest.approx(expected)
    assert not all(r.improved for r in result.history)  # the case where the schedule has something to follow
