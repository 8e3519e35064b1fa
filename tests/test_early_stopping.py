"""EarlyStopping on scripted metric sequences, and the EARLY_STOP_METRICS registry."""

import io
import math

import pytest
import torch

from imbalance.early_stopping import EARLY_STOP_METRICS, EarlyStopping
from imbalance.training import EpochRecord

RND_SEED = 99

NAN = float("nan")


def _run(scores, *, mode, patience, min_delta=0.0):
    """(best_epoch, stop_epoch or None, per-epoch 'improved' flags), stopping like a training loop."""
    es = EarlyStopping(mode=mode, patience=patience, min_delta=min_delta)
    flags = []
    for epoch, score in enumerate(scores):
        flags.append(es.step(score, epoch))
        if es.should_stop:
            return es.best_epoch, epoch, flags
    return es.best_epoch, None, flags


def test_max_mode_best_and_stop_epoch():
    #         e0   e1   e2    e3   (0.6 again: a tie is no improvement)
    scores = [0.5, 0.6, 0.55, 0.6, 0.7, 0.8]
    best, stop, flags = _run(scores, mode="max", patience=2)
    assert (best, stop) == (1, 3)
    assert flags == [True, True, False, False]


def test_min_mode_best_and_stop_epoch():
    scores = [1.0, 0.9, 0.95, 0.8, 0.85, 0.81, 0.80, 0.1]
    best, stop, flags = _run(scores, mode="min", patience=3)
    assert (best, stop) == (3, 6)
    assert flags == [True, True, False, True, False, False, False]


def test_patience_counter_resets_on_improvement():
    es = EarlyStopping(mode="max", patience=3)
    history = []
    for epoch, score in enumerate([1, 0, 0, 2, 0, 0, 3, 0, 0, 0]):
        es.step(score, epoch)
        history.append((es.bad_epochs, es.should_stop))
    assert history == [
        (0, False), (1, False), (2, False),
        (0, False), (1, False), (2, False),
        (0, False), (1, False), (2, False), (3, True),
    ]
    assert es.best_epoch == 6 and es.best_score == 3


@pytest.mark.parametrize("patience", [1, 2, 5])
def test_stops_exactly_after_patience_bad_epochs(patience):
    scores = [1.0] + [0.5] * 10
    best, stop, _ = _run(scores, mode="max", patience=patience)
    assert best == 0 and stop == patience


def test_min_delta_max_mode():
    # binary-exact numbers: 1.0 + 0.25 == 1.25 exactly
    best, stop, flags = _run([1.0, 1.25, 1.5], mode="max", patience=2, min_delta=0.25)
    assert flags == [True, False, True]  # +0.25 is not "larger than min_delta"; +0.5 is
    assert best == 2 and stop is None

    best, stop, flags = _run([0.5, 0.505, 0.509, 0.52], mode="max", patience=2, min_delta=0.01)
    assert (best, stop) == (0, 2) and flags == [True, False, False]
    # without min_delta, the same small steps are improvements
    best, stop, _ = _run([0.5, 0.505, 0.509, 0.52], mode="max", patience=2, min_delta=0.0)
    assert (best, stop) == (3, None)


def test_min_delta_min_mode():
    best, stop, flags = _run([1.0, 0.95, 0.92, 0.5], mode="min", patience=3, min_delta=0.1)
    assert flags == [True, False, False, True]
    assert best == 3 and stop is None
    best, stop, _ = _run([1.0, 0.95, 0.92, 0.91], mode="min", patience=3, min_delta=0.1)
    assert (best, stop) == (0, 3)


def test_sub_min_delta_step_does_not_move_the_best():
    es = EarlyStopping(mode="max", patience=5, min_delta=0.1)
    es.step(0.5, 0)
    es.step(0.55, 1)
    assert es.best_score == 0.5 and es.best_epoch == 0
    # the next step is measured from 0.5, not from 0.55
    assert es.step(0.62, 2) is True and es.best_epoch == 2


@pytest.mark.parametrize("mode", ["max", "min"])
def test_patience_zero_never_stops(mode):
    es = EarlyStopping(mode=mode, patience=0)
    worse = -1.0 if mode == "max" else 1.0
    es.step(0.0, 0)
    for epoch in range(1, 200):
        es.step(worse * epoch, epoch)
        assert not es.should_stop
    assert es.best_epoch == 0


@pytest.mark.parametrize("mode", ["max", "min"])
def test_nan_never_improves(mode):
    best, stop, flags = _run([NAN, 0.3, NAN, NAN, 0.9], mode=mode, patience=2)
    assert flags == [False, True, False, False]
    assert (best, stop) == (1, 3)


@pytest.mark.parametrize("mode", ["max", "min"])
def test_nan_first_leaves_no_best(mode):
    es = EarlyStopping(mode=mode, patience=10)
    assert es.step(NAN, 0) is False
    assert es.best_epoch == -1
    assert es.best_score == (-math.inf if mode == "max" else math.inf)


def test_all_nan_stops_after_patience():
    best, stop, _ = _run([NAN] * 10, mode="max", patience=4)
    assert best == -1 and stop == 3


def test_first_score_always_improves_even_if_infinite():
    es = EarlyStopping(mode="max", patience=1)
    assert es.step(-math.inf, 0) is True and es.best_epoch == 0


def test_bad_mode_rejected():
    with pytest.raises(ValueError):
        EarlyStopping(mode="maximum", patience=1)


def test_state_dict_round_trip():
    scores = [0.2, 0.4, 0.3, 0.35, 0.5, 0.45, 0.44, 0.43]
    a = EarlyStopping(mode="max", patience=3, min_delta=0.01)
    for epoch, s in enumerate(scores[:6]):
        a.step(s, epoch)
    state = a.state_dict()
    assert state == {"best_score": 0.5, "best_epoch": 4, "bad_epochs": 1, "best_tiebreak": -math.inf}
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    b = EarlyStopping(mode="max", patience=3, min_delta=0.01)
    b.load_state_dict(torch.load(buf, weights_only=True))
    assert b.state_dict() == state
    for epoch, s in enumerate(scores[6:8], start=6):
        assert a.step(s, epoch) == b.step(s, epoch)
        assert (a.should_stop, a.best_epoch, a.bad_epochs) == (b.should_stop, b.best_epoch, b.bad_epochs)
    assert b.should_stop and b.best_epoch == 4


def test_state_dict_round_trip_fresh():
    a = EarlyStopping(mode="min", patience=2)
    b = EarlyStopping(mode="min", patience=2)
    b.step(0.1, 0)
    b.load_state_dict(a.state_dict())
    assert b.best_epoch == -1 and b.best_score == math.inf and b.bad_epochs == 0
    assert b.step(5.0, 0) is True


# ------------------------------------------------------------------------- metric registry


def _record():
    # every value distinct, so a metric reading the wrong attribute or key is caught
    return EpochRecord(
        epoch=3, lr=0.5, train_loss=0.3456, val_loss=0.4321,
        train_loss_per_label={"a": 0.31}, val_loss_per_label={"a": 0.41},
        val={"macro": {"f1": 0.11, "recall": 0.12, "precision": 0.13, "auprc": 0.14, "auroc": 0.15}},
        val_tuned={"macro": {"f1": 0.21, "recall": 0.22, "precision": 0.23, "auprc": 0.24, "auroc": 0.25}},
        score=0.99, best_score=0.98,
    )


def _expected(name, record, tuned):
    """(mode, value) from the naming convention: val_loss | macro_<m> | macro_<m>_at_0.5; the
    thresholded macro_<m> reads the tuned-threshold block when thresholds are tuned."""
    if name == "val_loss":
        return "min", record.val_loss
    assert name.startswith("macro_"), name
    key = name[len("macro_"):]
    if key.endswith("_at_0.5"):
        return "max", record.val["macro"][key.removesuffix("_at_0.5")]
    block = record.val_tuned if tuned and key in ("f1", "recall", "precision") else record.val
    return "max", block["macro"][key]


def test_registry_has_the_documented_metrics():
    assert set(EARLY_STOP_METRICS.names()) == {
        "val_loss", "macro_auprc", "macro_auroc",
        "macro_f1", "macro_recall", "macro_precision",
        "macro_f1_at_0.5", "macro_recall_at_0.5", "macro_precision_at_0.5",
    }


@pytest.mark.parametrize("tuned", [False, True])
@pytest.mark.parametrize("name", EARLY_STOP_METRICS.names())
def test_metric_reads_right_value_and_mode(name, tuned):
    record = _record()
    metric = EARLY_STOP_METRICS.get(name)
    mode, value = _expected(name, record, tuned)
    assert metric.mode == mode
    assert metric.read(record, tuned) == value


def test_thresholded_metrics_follow_the_thresholds_that_will_be_used():
    record = _record()
    assert EARLY_STOP_METRICS.get("macro_f1").read(record, True) == 0.21  # tuned
    assert EARLY_STOP_METRICS.get("macro_f1").read(record, False) == 0.11  # at 0.5, as before
    assert EARLY_STOP_METRICS.get("macro_f1_at_0.5").read(record, True) == 0.11
    assert EARLY_STOP_METRICS.get("macro_f1").describe("macro_f1", True) == "macro_f1 (tuned thresholds)"
    assert EARLY_STOP_METRICS.get("macro_f1_at_0.5").describe("macro_f1_at_0.5", True) == "macro_f1_at_0.5 (at 0.5)"
    assert EARLY_STOP_METRICS.get("macro_auprc").describe("macro_auprc", True) == "macro_auprc"


@pytest.mark.parametrize("name", EARLY_STOP_METRICS.names())
def test_metric_drives_early_stopping(name):
    # the registered mode is the one where a better model is "better": feed records whose
    # watched value gets better then worse, and the best epoch is where it was best.
    metric = EARLY_STOP_METRICS.get(name)
    good = [0.2, 0.5, 0.9, 0.3, 0.1]  # higher-is-better quality per epoch
    es = EarlyStopping(mode=metric.mode, patience=2)
    for epoch, q in enumerate(good):
        rec = _record()
        if name == "val_loss":
            rec.val_loss = 1.0 - q
        else:
            key = name[len("macro_"):].removesuffix("_at_0.5")
            rec.val["macro"][key] = q
        es.step(metric.read(rec, False), epoch)
        if es.should_stop:
            break
    assert es.best_epoch == 2 and epoch == 4


# ------------------------------------------------------------------------- exact ties


def test_exact_tie_is_broken_by_the_tiebreak_value():
    # an all-positive plateau: F1 at 0.5 stays at exactly the same value while AUPRC improves
    plateau = 2 * 0.05 / 1.05
    stopper = EarlyStopping(mode="max", patience=2)
    steps = [(plateau, 0.10), (plateau, 0.20), (plateau, 0.15), (plateau, 0.25), (0.30, 0.18), (0.30, 0.17), (0.30, 0.16)]
    improved = [stopper.step(score, epoch, tiebreak=tb) for epoch, (score, tb) in enumerate(steps)]
    assert improved == [True, True, False, True, True, False, False]
    assert stopper.best_epoch == 4 and stopper.should_stop


def test_near_tie_within_min_delta_is_not_an_improvement():
    stopper = EarlyStopping(mode="max", patience=5, min_delta=0.01)
    stopper.step(0.5, 0, tiebreak=0.1)
    assert stopper.step(0.505, 1, tiebreak=0.9) is False  # not an exact tie, and below min_delta


@pytest.mark.parametrize("name", EARLY_STOP_METRICS.names())
def test_thresholded_metrics_break_ties_by_validation_auprc(name):
    metric = EARLY_STOP_METRICS.get(name)
    thresholded = any(k in name for k in ("f1", "recall", "precision"))
    assert (metric.tiebreak is not None) == thresholded
    if thresholded:
        assert metric.tiebreak(_record()) == _record().val["macro"]["auprc"]


def test_a_tie_is_recorded_for_the_epoch_line():
    es = EarlyStopping(mode="max", patience=5)
    es.step(0.5, 1, tiebreak=0.30)
    assert es.last_tie is None
    assert es.step(0.5, 2, tiebreak=0.35) is True and es.last_tie == (1, 0.35, 0.30)  # won the tie
    assert es.step(0.5, 3, tiebreak=0.20) is False and es.last_tie == (2, 0.20, 0.35)  # lost it
    assert es.step(0.6, 4, tiebreak=0.10) is True and es.last_tie is None


def test_keep_is_the_best_score_remembered_on_an_improvement():
    # measured at the best epoch's operating point (0.7 > 0.6), remembered at its own (0.5)
    es = EarlyStopping(mode="max", patience=3)
    es.step(0.6, 1, keep=0.6)
    assert es.step(0.7, 2, keep=0.5) is True and es.best_score == 0.5 and es.best_epoch == 2
    assert es.step(0.55, 3, keep=0.9) is True and es.best_score == 0.9  # 0.55 > 0.5
    assert es.step(0.85, 4, keep=1.0) is False and es.best_score == 0.9  # no improvement: keep unused


def test_recall_and_precision_hold_the_other_at_the_best_epoch():
    held = {name: EARLY_STOP_METRICS.get(name).held for name in EARLY_STOP_METRICS.names()}
    assert held == {name: {"macro_recall": "precision", "macro_precision": "recall"}.get(name) for name in held}
