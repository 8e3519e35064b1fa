"""Model registry (models/registry.py) and the MLP (models/mlp.py)."""

import dataclasses
import io
import json
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from imbalance.errors import UserError
from models import MODELS, create_model, model_config_for

RND_SEED = 31

IN_FEATURES, OUT_FEATURES, BATCH = 7, 3, 6
NORMS = ["none", "batch", "layer"]
NORM_LAYER = {"none": None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


def _default_config(name, **overrides):
    spec = MODELS.get(name)
    cfg = spec.config_cls(in_features=IN_FEATURES, out_features=OUT_FEATURES)
    return {**dataclasses.asdict(cfg), **overrides}


def _x(batch=BATCH):
    return torch.randn(batch, IN_FEATURES, generator=torch.Generator().manual_seed(RND_SEED))


def _field_names(name):
    return {f.name for f in dataclasses.fields(MODELS.get(name).config_cls)}


NORM_CASES = [(n, norm) for n in MODELS.names() if "norm" in _field_names(n) for norm in NORMS]
DROPOUT_MODELS = [n for n in MODELS.names() if "dropout" in _field_names(n)]


def test_mlp_is_registered():
    assert "mlp" in MODELS.names()
    assert NORM_CASES and DROPOUT_MODELS


@pytest.mark.parametrize("name", MODELS.names())
def test_builds_from_default_config_and_outputs_logits(name):
    torch.manual_seed(RND_SEED)
    model = create_model(name, **_default_config(name))
    assert isinstance(model, nn.Module)
    for mode in ("train", "eval"):
        getattr(model, mode)()
        out = model(_x())
        assert out.shape == (BATCH, OUT_FEATURES)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name, norm", NORM_CASES)
def test_every_norm_in_train_and_eval(name, norm):
    torch.manual_seed(RND_SEED)
    model = create_model(name, **_default_config(name, norm=norm))
    layer = NORM_LAYER[norm]
    n_norm_layers = sum(isinstance(m, (nn.BatchNorm1d, nn.LayerNorm)) for m in model.modules())
    if layer is None:
        assert n_norm_layers == 0
    else:
        assert n_norm_layers > 0 and all(
            isinstance(m, layer) for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.LayerNorm))
        )
    x = _x() * 5 + 2
    model.train()
    out = model(x)
    assert out.shape == (BATCH, OUT_FEATURES) and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad():
        a, b = model(x), model(x[:1])
    assert a.shape == (BATCH, OUT_FEATURES) and torch.isfinite(a).all()
    assert b.shape == (1, OUT_FEATURES)  # a single row works in eval, batch norm included
    torch.testing.assert_close(b, a[:1])  # eval output of a row does not depend on its batch
    if norm == "batch":
        bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm1d))
        assert int(bn.num_batches_tracked) == 1
        assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))


@pytest.mark.parametrize("name", DROPOUT_MODELS)
def test_dropout_zero_is_deterministic(name):
    torch.manual_seed(RND_SEED)
    model = create_model(name, **_default_config(name, dropout=0.0))
    assert not any(isinstance(m, nn.Dropout) and m.p > 0 for m in model.modules())
    x = _x()
    model.eval()
    with torch.no_grad():
        first, second = model(x), model(x)
    assert torch.equal(first, second)
    if "norm" not in _field_names(name) or _default_config(name)["norm"] == "none":
        model.train()
        with torch.no_grad():
            assert torch.equal(model(x), first)  # nothing stochastic left in train mode either


@pytest.mark.parametrize("name", DROPOUT_MODELS)
def test_dropout_positive_is_random_in_train_only(name):
    torch.manual_seed(RND_SEED)
    model = create_model(name, **_default_config(name, dropout=0.5))
    x = _x(64)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x), model(x))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_mlp_layer_shapes():
    model = create_model("mlp", in_features=5, out_features=2, hidden_sizes=[16, 8, 4], dropout=0.0, norm="none")
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert shapes == [(5, 16), (16, 8), (8, 4), (4, 2)]
    assert sum(p.numel() for p in model.parameters()) == (5 * 16 + 16) + (16 * 8 + 8) + (8 * 4 + 4) + (4 * 2 + 2)


def test_model_config_for_picks_fields_by_name():
    source = SimpleNamespace(
        hidden_sizes=(32, 16), dropout=0.25, norm="layer", lr=1e-3, epochs=9, in_features=999, out_features=999
    )
    cfg = model_config_for("mlp", in_features=IN_FEATURES, out_features=OUT_FEATURES, source=source)
    assert cfg == {
        "in_features": IN_FEATURES,
        "out_features": OUT_FEATURES,
        "hidden_sizes": [32, 16],
        "dropout": 0.25,
        "norm": "layer",
    }
    assert isinstance(cfg["hidden_sizes"], list)
    json.dumps(cfg)  # storable in a checkpoint as plain JSON


@pytest.mark.parametrize("name", MODELS.names())
def test_model_config_for_defaults_when_source_lacks_fields(name):
    cfg = model_config_for(name, in_features=IN_FEATURES, out_features=OUT_FEATURES, source=object())
    assert cfg == _default_config(name)
    assert set(cfg) == _field_names(name)


@pytest.mark.parametrize("name, norm", NORM_CASES)
def test_state_dict_round_trip_rebuilds_identical_model(name, norm):
    torch.manual_seed(RND_SEED)
    source = SimpleNamespace(norm=norm, dropout=0.1, hidden_sizes=[12, 6])
    config = model_config_for(name, in_features=IN_FEATURES, out_features=OUT_FEATURES, source=source)
    model = create_model(name, **config)
    # one training step so batch-norm running statistics are not their initial values
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model(_x() * 3 + 1).pow(2).mean().backward()
    opt.step()
    model.eval()

    buf = io.BytesIO()
    torch.save({"config": json.loads(json.dumps(config)), "state": model.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)

    torch.manual_seed(RND_SEED + 1)
    rebuilt = create_model(name, **saved["config"])
    rebuilt.eval()
    x = _x()
    with torch.no_grad():
        assert not torch.allclose(rebuilt(x), model(x))  # a fresh init differs ...
        rebuilt.load_state_dict(saved["state"])  # strict: same keys and shapes
        assert torch.equal(rebuilt(x), model(x))  # ... and the loaded one is identical
    assert str(rebuilt) == str(model)


def test_unknown_model_is_user_error():
    with pytest.raises(UserError) as info:
        create_model("transformer", in_features=3, out_features=1)
    msg = str(info.value)
    assert "transformer" in msg
    for name in MODELS.names():
        assert name in msg
    with pytest.raises(UserError):
        model_config_for("transformer", in_features=3, out_features=1, source=object())


@pytest.mark.parametrize("name", MODELS.names())
def test_unexpected_config_key_is_user_error(name):
    with pytest.raises(UserError, match=name):
        create_model(name, **_default_config(name), no_such_field=1)
    with pytest.raises(UserError):
        create_model(name, out_features=OUT_FEATURES)  # in_features missing


# ----------------------------------------------------------------------------- the CPU dropout


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5, 0.9])
def test_cpu_dropout_keeps_one_minus_p_and_scales_like_nn_dropout(p):
    from models.mlp import Dropout

    torch.manual_seed(RND_SEED)
    n = 400_000
    x = torch.rand(n) + 0.5  # no zeros, so a zero output means dropped
    layer = Dropout(p).train()
    out = layer(x)
    kept = out != 0
    share = kept.double().mean().item()
    # Binomial(n, 1 - p): 5 standard deviations.
    assert abs(share - (1 - p)) < 5 * (p * (1 - p) / n) ** 0.5
    torch.testing.assert_close(out[kept], x[kept] / (1 - p))
    # Unbiased like nn.Dropout: E[out] = x.
    assert abs(out.mean().item() - x.mean().item()) < 0.01


def test_cpu_dropout_gradient_is_the_mask_and_eval_is_identity():
    from models.mlp import Dropout

    torch.manual_seed(RND_SEED)
    x = torch.randn(64, 16, requires_grad=True)
    layer = Dropout(0.3).train()
    out = layer(x)
    out.sum().backward()
    mask = out.detach() / x.detach()
    torch.testing.assert_close(x.grad, mask)
    values = torch.unique(x.grad)
    assert len(values) == 2 and values[0] == 0 and abs(values[1].item() - 1 / 0.7) < 1e-6
    layer.eval()
    assert torch.equal(layer(x), x)
    assert torch.equal(Dropout(1.0).train()(x), torch.zeros_like(x))
    assert torch.equal(Dropout(0.0).train()(x), x)


def test_mlp_uses_the_cpu_dropout_and_state_dict_keys_are_unchanged():
    from models.mlp import Dropout

    model = create_model("mlp", in_features=5, out_features=2, hidden_sizes=[8, 4], dropout=0.2)
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(isinstance(m, Dropout) for m in drops)
    assert sorted(model.state_dict()) == ["body.0.bias", "body.0.weight", "body.3.bias", "body.3.weight", "head.bias", "head.weight"]
