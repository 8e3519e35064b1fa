"""Training losses (imbalance/losses.py): stability at saturated logits and agreement with
hand-written float64 formulas."""

import pytest
import torch
import torch.nn.functional as F

from imbalance.errors import UserError
from imbalance.losses import LOSSES, build_loss, focal_alpha_from_weights

RND_SEED = 7

CLASS_WEIGHTS = torch.tensor([1.0, 4.0, 19.0])


def _gen() -> torch.Generator:
    return torch.Generator().manual_seed(RND_SEED)


def _targets(n: int = 16, labels: int = 3) -> torch.Tensor:
    return (torch.rand(n, labels, generator=_gen()) < 0.4).float()


def _moderate_logits(n: int = 16, labels: int = 3) -> torch.Tensor:
    return torch.randn(n, labels, generator=torch.Generator().manual_seed(RND_SEED + 1)) * 3.0


def _saturated_logits(kind: str, n: int = 16, labels: int = 3) -> torch.Tensor:
    if kind == "pos":
        return torch.full((n, labels), 100.0)
    if kind == "neg":
        return torch.full((n, labels), -100.0)
    signs = torch.where(torch.rand(n, labels, generator=_gen()) < 0.5, -1.0, 1.0)
    return signs * torch.tensor([100.0, 60.0, 30.0]).expand(n, labels)


# ---------------------------------------------------------------- hand-written references (float64)


def _ref_weighted_bce(z, y, w):
    z, y, w = z.double(), y.double(), w.double()
    p = 1.0 / (1.0 + torch.exp(-z))
    return (-(w * y * torch.log(p) + (1 - y) * torch.log(1 - p))).mean()


def _ref_bce(z, y):
    return _ref_weighted_bce(z, y, torch.ones(z.shape[1]))


def _ref_focal(z, y, alpha, gamma):
    z, y, alpha = z.double(), y.double(), alpha.double()
    p = 1.0 / (1.0 + torch.exp(-z))
    pos = -alpha * y * (1 - p) ** gamma * torch.log(p)
    neg = -(1 - alpha) * (1 - y) * p**gamma * torch.log(1 - p)
    return (pos + neg).mean()


# ------------------------------------------------------------------------------- stability


@pytest.mark.parametrize("name", LOSSES.names())
@pytest.mark.parametrize("kind", ["pos", "neg", "mix"])
def test_finite_at_saturated_logits(name, kind):
    loss_fn = build_loss(name, class_weights=CLASS_WEIGHTS)
    z = _saturated_logits(kind).requires_grad_(True)
    y = _targets()
    loss = loss_fn(z, y)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(z.grad).all()
    # all-wrong saturated predictions give a large loss; all-right ones a ~0 loss
    wrong = loss_fn(torch.where(y > 0, -100.0, 100.0), y)
    right = loss_fn(torch.where(y > 0, 100.0, -100.0), y)
    assert torch.isfinite(wrong) and wrong > 1.0
    assert 0.0 <= float(right) < 1e-6


@pytest.mark.parametrize("name", LOSSES.names())
def test_finite_under_bfloat16_autocast(name):
    torch.manual_seed(RND_SEED)
    layer = torch.nn.Linear(8, 3)
    x = torch.randn(32, 8, generator=_gen()) * 200.0  # drives logits to around +-100 and beyond
    y = _targets(32)
    loss_fn = build_loss(name, class_weights=CLASS_WEIGHTS)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = layer(x)
        assert logits.dtype == torch.bfloat16
        loss = loss_fn(logits, y)
    assert logits.abs().max() > 50
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(layer.weight.grad).all() and torch.isfinite(layer.bias.grad).all()


@pytest.mark.parametrize("name", LOSSES.names())
def test_float32_moderate_logits_close_to_float64_reference(name):
    z, y = _moderate_logits(), _targets()
    got = float(build_loss(name, class_weights=CLASS_WEIGHTS)(z, y))
    ref = {
        "bce": lambda: _ref_bce(z, y),
        "weighted_bce": lambda: _ref_weighted_bce(z, y, CLASS_WEIGHTS),
        "logit_adjusted": lambda: _ref_bce(z - torch.log(CLASS_WEIGHTS), y),
        "focal": lambda: _ref_focal(z, y, CLASS_WEIGHTS / (1 + CLASS_WEIGHTS), 2.0),
    }[name]()
    assert got == pytest.approx(float(ref), rel=1e-6, abs=1e-6)


def test_every_loss_is_covered_here():
    assert set(LOSSES.names()) == {"bce", "weighted_bce", "logit_adjusted", "focal"}


# -------------------------------------------------------------------------------- values


def test_bce_matches_torch_and_hand_formula():
    z, y = _moderate_logits(), _targets()
    got = float(build_loss("bce", class_weights=CLASS_WEIGHTS)(z, y))
    torch_ref = F.binary_cross_entropy(torch.sigmoid(z.double()), y.double())
    assert got == pytest.approx(float(torch_ref), rel=1e-6, abs=1e-6)
    assert got == pytest.approx(float(_ref_bce(z, y)), rel=1e-6, abs=1e-6)


def test_weighted_bce_matches_hand_formula():
    z, y = _moderate_logits(), _targets()
    got = float(build_loss("weighted_bce", class_weights=CLASS_WEIGHTS)(z, y))
    assert got == pytest.approx(float(_ref_weighted_bce(z, y, CLASS_WEIGHTS)), abs=1e-6, rel=1e-6)
    # and the weights matter: differs from unweighted BCE
    assert abs(got - float(_ref_bce(z, y))) > 1e-2


def test_weighted_bce_gradient_matches_hand_formula():
    z, y = _moderate_logits(), _targets()
    z32 = z.clone().requires_grad_(True)
    build_loss("weighted_bce", class_weights=CLASS_WEIGHTS)(z32, y).backward()
    z64 = z.double().requires_grad_(True)
    _ref_weighted_bce(z64, y, CLASS_WEIGHTS).backward()
    torch.testing.assert_close(z32.grad.double(), z64.grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.5])
def test_focal_default_alpha_matches_hand_formula(gamma):
    z, y = _moderate_logits(), _targets()
    got = float(build_loss("focal", class_weights=CLASS_WEIGHTS, focal_gamma=gamma)(z, y))
    alpha = CLASS_WEIGHTS.double() / (1.0 + CLASS_WEIGHTS.double())
    assert got == pytest.approx(float(_ref_focal(z, y, alpha, gamma)), rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("alpha", [0.25, 0.9])
def test_focal_explicit_alpha_matches_hand_formula(gamma, alpha):
    z, y = _moderate_logits(), _targets()
    loss_fn = build_loss("focal", class_weights=CLASS_WEIGHTS, focal_gamma=gamma, focal_alpha=alpha)
    got = float(loss_fn(z, y))
    ref = _ref_focal(z, y, torch.full((3,), alpha, dtype=torch.float64), gamma)
    assert got == pytest.approx(float(ref), rel=1e-6, abs=1e-6)


@pytest.mark.parametrize("gamma", [0.5, 2.0])
def test_focal_gradient_matches_hand_formula(gamma):
    z, y = _moderate_logits(), _targets()
    z32 = z.clone().requires_grad_(True)
    build_loss("focal", class_weights=CLASS_WEIGHTS, focal_gamma=gamma)(z32, y).backward()
    z64 = z.double().requires_grad_(True)
    _ref_focal(z64, y, CLASS_WEIGHTS.double() / (1 + CLASS_WEIGHTS.double()), gamma).backward()
    torch.testing.assert_close(z32.grad.double(), z64.grad, rtol=1e-5, atol=1e-7)


def test_focal_gamma_zero_is_alpha_weighted_bce():
    z, y = _moderate_logits(), _targets()
    alpha = 0.3
    got = float(build_loss("focal", class_weights=CLASS_WEIGHTS, focal_gamma=0.0, focal_alpha=alpha)(z, y))
    z64, y64 = z.double(), y.double()
    ref = F.binary_cross_entropy_with_logits(
        z64, y64, weight=torch.where(y64 > 0, alpha, 1 - alpha), reduction="mean"
    )
    assert got == pytest.approx(float(ref), rel=1e-6, abs=1e-6)


def test_focal_gamma_zero_default_alpha_is_scaled_weighted_bce():
    # alpha = w/(1+w): -alpha*y*log p - (1-alpha)*(1-y)*log(1-p) = (w*y*log p + (1-y) log(1-p)) / (1+w)
    z, y = _moderate_logits(), _targets()
    got = float(build_loss("focal", class_weights=CLASS_WEIGHTS, focal_gamma=0.0)(z, y))
    z64, y64, w = z.double(), y.double(), CLASS_WEIGHTS.double()
    per_elem = F.binary_cross_entropy_with_logits(z64, y64, pos_weight=w, reduction="none") / (1 + w)
    assert got == pytest.approx(float(per_elem.mean()), rel=1e-6, abs=1e-6)


def test_focal_default_alpha_is_w_over_one_plus_w():
    w = torch.tensor([1.0, 3.0, 19.0, 0.25])
    expected = torch.tensor([0.5, 0.75, 0.95, 0.2])
    torch.testing.assert_close(focal_alpha_from_weights(w), expected)
    loss_fn = build_loss("focal", class_weights=w)
    torch.testing.assert_close(loss_fn.alpha, expected)
    explicit = build_loss("focal", class_weights=w, focal_alpha=0.6)
    torch.testing.assert_close(explicit.alpha, torch.full((4,), 0.6))


def test_focal_down_weights_easy_examples():
    y = torch.tensor([[1.0], [0.0]])
    easy = torch.tensor([[4.0], [-4.0]])
    ones = torch.ones(1)
    bce = float(build_loss("focal", class_weights=ones, focal_gamma=0.0)(easy, y))
    focal = float(build_loss("focal", class_weights=ones, focal_gamma=2.0)(easy, y))
    p = torch.sigmoid(torch.tensor(4.0, dtype=torch.float64))
    assert focal / bce == pytest.approx(float((1 - p) ** 2), rel=1e-5)


@pytest.mark.parametrize("z", [100.0, -100.0, 40.0, -40.0, 17.0, -17.0])
@pytest.mark.parametrize("y", [0.0, 1.0])
def test_focal_half_gamma_finite_gradient_at_confident_logits(z, y):
    loss_fn = build_loss("focal", class_weights=torch.tensor([2.0]), focal_gamma=0.5)
    logits = torch.tensor([[z]], requires_grad=True)
    loss = loss_fn(logits, torch.tensor([[y]]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    # a confidently right prediction has (near) zero gradient, a confidently wrong one pulls back
    right = (z > 0) == (y > 0)
    if right:
        assert abs(float(logits.grad)) < 1e-3
    else:
        assert abs(float(logits.grad)) > 0.1
        assert (float(logits.grad) > 0) == (z > 0)


@pytest.mark.parametrize("name", LOSSES.names())
def test_loss_buffers_move_with_module(name):
    loss_fn = build_loss(name, class_weights=CLASS_WEIGHTS.double())
    for buf in loss_fn.buffers():
        assert buf.dtype == torch.float32
    z, y = _moderate_logits(), _targets()
    assert torch.isfinite(loss_fn(z.double(), y))


def test_unknown_loss_is_user_error():
    with pytest.raises(UserError) as info:
        build_loss("hinge", class_weights=CLASS_WEIGHTS)
    msg = str(info.value)
    assert "hinge" in msg
    for name in LOSSES.names():
        assert name in msg


def test_logit_adjusted_matches_hand_formula_and_moves_the_odds_like_weighted_bce():
    z, y = _moderate_logits(), _targets()
    loss = build_loss("logit_adjusted", class_weights=CLASS_WEIGHTS)
    assert float(loss(z, y)) == pytest.approx(float(_ref_bce(z - torch.log(CLASS_WEIGHTS), y)), rel=1e-6, abs=1e-6)
    assert torch.allclose(loss.positive_weight(3), CLASS_WEIGHTS)  # what the prior calibration undoes
    # One constant logit per label fitted to rows at prevalence q: both losses end at logit(q) + log(w),
    # the positive's odds multiplied by w, where BCE ends at logit(q).
    q = 0.1
    y = torch.cat([torch.ones(10, 3), torch.zeros(90, 3)])
    for name in ("logit_adjusted", "weighted_bce"):
        c = torch.zeros(3, requires_grad=True)
        opt = torch.optim.LBFGS([c], max_iter=200, tolerance_grad=1e-10, tolerance_change=1e-12)
        fn = build_loss(name, class_weights=CLASS_WEIGHTS)

        def closure():
            opt.zero_grad()
            value = fn(c.expand(100, 3), y)
            value.backward()
            return value

        opt.step(closure)
        expected = torch.log(torch.tensor(q / (1 - q))) + torch.log(CLASS_WEIGHTS)
        assert torch.allclose(c.detach(), expected, atol=1e-3), name


def test_logit_adjusted_keeps_each_rows_share_of_the_gradient():
    # weighted BCE multiplies a positive's gradient by w; logit adjustment leaves every row's
    # gradient bounded by 1 (sigmoid(z - log w) - y)
    z = torch.zeros(4, 3, requires_grad=True)
    y = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0, 0.0, 1.0], [0.0, 1.0, 0.0]])
    build_loss("logit_adjusted", class_weights=CLASS_WEIGHTS)(z, y).backward()
    expected = (torch.sigmoid(-torch.log(CLASS_WEIGHTS)) - y) / z.numel()
    assert torch.allclose(z.grad, expected, atol=1e-7)
    assert z.grad.abs().max() * z.numel() <= 1.0
