"""The model registry (models/registry.py), the shared input layers (models/inputs.py) and every
registered model: MLP, ResNet, FT-Transformer, TabM.

Every model is built as ``create_model(name, inputs=InputSpec, settings=...)`` and called as
``model(x_num, x_cat)``; the tests below run each one over each numeric embedding, over inputs
missing a kind of column, in train and eval mode, under bfloat16 autocast, and through a
checkpoint round trip.
"""

import dataclasses
import io
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from imbalance.errors import UserError
from models import MODELS, NUM_EMBEDDINGS, InputSpec, create_model, model_settings, settings_help
from models.inputs import FlatInput, OneHot, make_num_embeddings

RND_SEED = 31
BATCH = 6
N_NUMERIC, N_FLAGS, CARDINALITIES, N_LABELS = 3, 2, [3, 4], 3
D_EMBEDDING = 4

# Tiny settings so that the file runs in seconds; the defaults are built in their own test.
SMALL = {
    "mlp": {"hidden_sizes": [8, 4], "dropout": 0.2},
    "resnet": {"n_blocks": 2, "d_block": 16},
    "ft_transformer": {"n_blocks": 2, "d_block": 16, "attention_n_heads": 4},
    "tabm": {"k": 4, "d_block": 16},
}
# A value out of range for every setting of every model (a new setting needs one here).
BAD_VALUES = {
    "hidden_sizes": [8, 0], "dropout": 1.5, "norm": "group",
    "n_blocks": 0, "d_block": 0, "d_hidden_multiplier": 0.0, "dropout1": -0.1, "dropout2": 1.0,
    "attention_n_heads": 0, "attention_dropout": 1.0, "ffn_d_hidden_multiplier": -1.0, "ffn_dropout": 2.0,
    "residual_dropout": -0.5, "k": 0, "arch_type": "mini",
}
# (n_numeric, n_flags, cardinalities): every kind of column missing in turn.
COLUMN_CASES = {
    "all": (N_NUMERIC, N_FLAGS, CARDINALITIES),
    "no_categorical": (N_NUMERIC, N_FLAGS, []),
    "no_flags": (N_NUMERIC, 0, CARDINALITIES),
    "no_numeric": (0, N_FLAGS, CARDINALITIES),
    "numeric_only": (N_NUMERIC, 0, []),
    "flags_only": (0, N_FLAGS, []),
    "categorical_only": (0, 0, CARDINALITIES),
}
NAMES = MODELS.names()
NAME_EMB = [(name, emb) for name in NAMES for emb in NUM_EMBEDDINGS]


def _spec(num_embeddings="none", n_numeric=N_NUMERIC, n_flags=N_FLAGS, cardinalities=CARDINALITIES, n_labels=N_LABELS):
    return InputSpec(
        n_numeric=n_numeric,
        n_flags=n_flags,
        cardinalities=list(cardinalities),
        n_labels=n_labels,
        num_embeddings=num_embeddings,
        d_embedding=D_EMBEDDING,
        bins=[[-2.0, -1.0, 0.0, 1.0, 2.0]] * n_numeric if num_embeddings == "piecewise_linear" else None,
    )


def _x(spec, batch=BATCH, seed=RND_SEED):
    g = torch.Generator().manual_seed(seed)
    x_num = torch.cat([torch.randn(batch, spec.n_numeric, generator=g), torch.randint(0, 2, (batch, spec.n_flags), generator=g).float()], dim=1)
    x_cat = torch.zeros(batch, len(spec.cardinalities), dtype=torch.int64)
    for j, c in enumerate(spec.cardinalities):
        x_cat[:, j] = torch.randint(0, c, (batch,), generator=g)
    return x_num, x_cat


def _build(name, spec, seed=RND_SEED, **overrides):
    torch.manual_seed(seed)
    return create_model(name, inputs=spec, settings={**SMALL[name], **overrides})


def _expected_shape(model, batch, n_labels=N_LABELS):
    k = getattr(model, "k", None)  # an ensemble model returns every member's logits
    return (batch, k, n_labels) if k is not None else (batch, n_labels)


def _fields(name):
    return dataclasses.fields(MODELS.get(name).settings_cls)


def _assert_every_parameter_has_a_gradient(model):
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"no gradient reached {pname}"
        assert torch.isfinite(p.grad).all(), pname
        assert p.grad.abs().sum() > 0, f"zero gradient for {pname}"


# ----------------------------------------------------------------------------- registry


def test_every_model_is_registered_with_a_valid_default_embedding():
    assert set(NAMES) == {"mlp", "resnet", "ft_transformer", "tabm"}
    for name in NAMES:
        spec = MODELS.get(name)
        assert spec.num_embeddings in NUM_EMBEDDINGS
        assert spec.summary
        for f in _fields(name):
            assert f.metadata.get("help"), f"{name}.{f.name} has no help"
            assert f.name in BAD_VALUES, f"add a bad value for {name}.{f.name} to BAD_VALUES"


def test_settings_help_lists_every_model_and_setting():
    text = settings_help()
    for name in NAMES:
        assert f"{name}:" in text
        for f in _fields(name):
            assert f"    {f.name}=" in text


def test_unknown_model_is_user_error_listing_the_models():
    with pytest.raises(UserError) as info:
        create_model("transformer", inputs=_spec())
    msg = str(info.value)
    assert "transformer" in msg and all(name in msg for name in NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_setting_is_user_error_naming_it(name):
    with pytest.raises(UserError, match="no_such_setting") as info:
        create_model(name, inputs=_spec(), settings={"no_such_setting": 1})
    assert name in str(info.value)


@pytest.mark.parametrize("name", NAMES)
def test_wrong_type_is_user_error_naming_the_setting(name):
    for f in _fields(name):
        wrong = 3 if f.type in ("str", str) else "abc"
        with pytest.raises(UserError, match=f"'{f.name}'"):
            model_settings(name, {f.name: wrong})


@pytest.mark.parametrize("name", NAMES)
def test_bad_value_is_user_error_naming_the_setting(name):
    for f in _fields(name):
        with pytest.raises(UserError, match=f.name):
            create_model(name, inputs=_spec(), settings={f.name: BAD_VALUES[f.name]})


def test_ft_transformer_width_must_split_into_heads():
    with pytest.raises(UserError, match="d_block"):
        model_settings("ft_transformer", {"d_block": 60, "attention_n_heads": 8})


def test_bad_input_spec_is_user_error():
    with pytest.raises(UserError, match="input spec"):
        create_model("mlp", inputs={**_spec().to_dict(), "n_labels": 0})
    with pytest.raises(UserError, match="input spec"):
        create_model("mlp", inputs={**_spec("piecewise_linear").to_dict(), "bins": None})


# ----------------------------------------------------------------------------- every model


@pytest.mark.parametrize("name, emb", NAME_EMB)
def test_builds_from_defaults_and_outputs_logits(name, emb):
    torch.manual_seed(RND_SEED)
    spec = _spec(emb)
    model = create_model(name, inputs=spec)
    x_num, x_cat = _x(spec)
    for mode in ("train", "eval"):
        getattr(model, mode)()
        out = model(x_num, x_cat)
        assert out.shape == _expected_shape(model, BATCH)
        assert out.dtype == torch.float32 and torch.isfinite(out).all()
    model.train()
    model(x_num, x_cat).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name, emb", NAME_EMB)
def test_gradients_reach_every_parameter(name, emb):
    spec = _spec(emb)
    model = _build(name, spec).train()
    x_num, x_cat = _x(spec, batch=32)
    model(x_num, x_cat).pow(2).mean().backward()
    _assert_every_parameter_has_a_gradient(model)


@pytest.mark.parametrize("name, emb", NAME_EMB)
def test_train_is_random_and_eval_is_deterministic_per_row(name, emb):
    spec = _spec(emb)
    model = _build(name, spec)
    x_num, x_cat = _x(spec, batch=64)
    model.train()
    with torch.no_grad():
        assert not torch.equal(model(x_num, x_cat), model(x_num, x_cat))  # dropout
    model.eval()
    with torch.no_grad():
        a, b = model(x_num, x_cat), model(x_num, x_cat)
        one = model(x_num[:1], x_cat[:1])
    assert torch.equal(a, b)
    assert one.shape == _expected_shape(model, 1)  # a single row works in eval, batch norm included
    torch.testing.assert_close(one, a[:1])  # a row's output does not depend on its batch


@pytest.mark.parametrize("name, emb", NAME_EMB)
def test_state_dict_round_trip_rebuilds_identical_model(name, emb):
    spec = _spec(emb)
    model = _build(name, spec)
    settings = model_settings(name, SMALL[name])
    x_num, x_cat = _x(spec)
    # one training step, so that batch-norm statistics and every weight left their initial values
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    shifted = x_num.clone()
    shifted[:, :N_NUMERIC] = shifted[:, :N_NUMERIC] * 3 + 1  # batch statistics away from 0 / 1
    model(shifted, x_cat).pow(2).mean().backward()
    opt.step()
    model.eval()

    buf = io.BytesIO()
    torch.save({"model": name, "inputs": spec.to_dict(), "settings": dataclasses.asdict(settings), "state": model.state_dict()}, buf)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)  # plain data only: no pickled classes

    torch.manual_seed(RND_SEED + 1)
    rebuilt = create_model(saved["model"], inputs=saved["inputs"], settings=saved["settings"]).eval()
    with torch.no_grad():
        assert not torch.allclose(rebuilt(x_num, x_cat), model(x_num, x_cat))  # a fresh init differs ...
        rebuilt.load_state_dict(saved["state"])  # strict: same keys and shapes
        assert torch.equal(rebuilt(x_num, x_cat), model(x_num, x_cat))  # ... and the loaded one is identical
    assert str(rebuilt) == str(model)


@pytest.mark.parametrize("case", list(COLUMN_CASES))
@pytest.mark.parametrize("name, emb", NAME_EMB)
def test_works_with_any_kind_of_column_missing(name, emb, case):
    n_numeric, n_flags, cardinalities = COLUMN_CASES[case]
    spec = _spec(emb, n_numeric=n_numeric, n_flags=n_flags, cardinalities=cardinalities)
    model = _build(name, spec).train()
    x_num, x_cat = _x(spec, batch=16)
    assert x_num.shape == (16, n_numeric + n_flags) and x_cat.shape == (16, len(cardinalities))
    out = model(x_num, x_cat)
    assert out.shape == _expected_shape(model, 16) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    model.eval()
    with torch.no_grad():
        assert torch.isfinite(model(x_num, x_cat)).all()


@pytest.mark.parametrize("name, emb", NAME_EMB)
def test_bf16_autocast_forward_and_backward(name, emb):
    spec = _spec(emb)
    model = _build(name, spec).train()
    x_num, x_cat = _x(spec, batch=16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x_num, x_cat)
    out = out.float()
    assert out.shape == _expected_shape(model, 16) and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    model.eval()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        low = model(x_num, x_cat).float()
    with torch.no_grad():
        full = model(x_num, x_cat)
    torch.testing.assert_close(low, full, atol=0.1, rtol=0.1)  # the same model, at lower precision


@pytest.mark.parametrize("name", NAMES)
def test_flags_and_categoricals_reach_the_output(name):
    spec = _spec("none")
    model = _build(name, spec).eval()
    x_num, x_cat = _x(spec)
    flipped_flag = x_num.clone()
    flipped_flag[:, N_NUMERIC] = 1 - flipped_flag[:, N_NUMERIC]
    other_code = x_cat.clone()
    other_code[:, 1] = (other_code[:, 1] + 1) % CARDINALITIES[1]
    with torch.no_grad():
        base = model(x_num, x_cat)
        assert not torch.allclose(model(flipped_flag, x_cat), base)
        assert not torch.allclose(model(x_num, other_code), base)


@pytest.mark.parametrize("name", ["resnet", "ft_transformer", "tabm"])
def test_library_models_use_the_cpu_dropout(name):
    from models.mlp import Dropout

    model = create_model(name, inputs=_spec())
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert drops and all(isinstance(m, Dropout) for m in drops)


# ----------------------------------------------------------------------------- input layers


def test_make_num_embeddings_shapes_and_width_override():
    x = torch.randn(BATCH, N_NUMERIC)
    assert make_num_embeddings(_spec("none")) is None
    assert make_num_embeddings(_spec("periodic", n_numeric=0)) is None
    for emb in ("piecewise_linear", "periodic"):
        assert make_num_embeddings(_spec(emb))(x).shape == (BATCH, N_NUMERIC, D_EMBEDDING)
        assert make_num_embeddings(_spec(emb), d_embedding=12)(x).shape == (BATCH, N_NUMERIC, 12)


def test_piecewise_linear_single_bin_columns_build_without_warning():
    spec = dataclasses.replace(_spec("piecewise_linear"), bins=[[-1.0, 1.0], [0.0, 0.5, 3.0], [-2.0, 2.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        emb = make_num_embeddings(spec)
        model = create_model("mlp", inputs=spec)
    x_num, x_cat = _x(spec)
    assert emb(x_num[:, :N_NUMERIC]).shape == (BATCH, N_NUMERIC, D_EMBEDDING)
    assert torch.isfinite(model(x_num, x_cat)).all()


def test_one_hot_matches_f_one_hot_per_column():
    x_cat = _x(_spec())[1]
    expected = torch.cat([F.one_hot(x_cat[:, j], c) for j, c in enumerate(CARDINALITIES)], dim=1).float()
    layer = OneHot(CARDINALITIES)
    assert layer.d_out == sum(CARDINALITIES)
    assert torch.equal(layer(x_cat), expected)
    assert list(layer.state_dict()) == []  # rebuilt from the cardinalities, not stored


@pytest.mark.parametrize("case", list(COLUMN_CASES))
def test_flat_input_layout(case):
    n_numeric, n_flags, cardinalities = COLUMN_CASES[case]
    spec = _spec("none", n_numeric=n_numeric, n_flags=n_flags, cardinalities=cardinalities)
    layer = FlatInput(spec)
    x_num, x_cat = _x(spec)
    out = layer(x_num, x_cat)
    assert layer.d_out == n_numeric + n_flags + sum(cardinalities) and out.shape == (BATCH, layer.d_out)
    assert torch.equal(out[:, : n_numeric + n_flags], x_num)  # numeric columns and flags as given
    one_hot = out[:, n_numeric + n_flags :]
    assert torch.equal(one_hot.sum(dim=1), torch.full((BATCH,), float(len(cardinalities))))


def test_flat_input_with_embeddings_keeps_flags_and_one_hot():
    spec = _spec("periodic")
    layer = FlatInput(spec)
    x_num, x_cat = _x(spec)
    out = layer(x_num, x_cat)
    d_num = N_NUMERIC * D_EMBEDDING
    assert layer.d_out == d_num + N_FLAGS + sum(CARDINALITIES) and out.shape == (BATCH, layer.d_out)
    assert torch.equal(out[:, :d_num], layer.num_embeddings(x_num[:, :N_NUMERIC]).flatten(1))
    assert torch.equal(out[:, d_num : d_num + N_FLAGS], x_num[:, N_NUMERIC:])
    assert torch.equal(out[:, d_num + N_FLAGS :], OneHot(CARDINALITIES)(x_cat))


# ----------------------------------------------------------------------------- TabM


@pytest.mark.parametrize("arch_type", ["tabm", "tabm-mini", "tabm-packed"])
@pytest.mark.parametrize("case", ["all", "categorical_only", "flags_only"])
def test_tabm_every_arch_type(arch_type, case):
    n_numeric, n_flags, cardinalities = COLUMN_CASES[case]
    spec = _spec("piecewise_linear", n_numeric=n_numeric, n_flags=n_flags, cardinalities=cardinalities)
    model = _build("tabm", spec, arch_type=arch_type).train()
    x_num, x_cat = _x(spec, batch=16)
    out = model(x_num, x_cat)
    assert out.shape == (16, 4, N_LABELS) and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    _assert_every_parameter_has_a_gradient(model)


def test_tabm_members_differ_and_depth_follows_tabm_make():
    x_num, x_cat = _x(_spec())
    with_embeddings = _build("tabm", _spec("piecewise_linear")).eval()
    without = _build("tabm", _spec("none")).eval()
    assert len(with_embeddings.tabm.backbone.blocks) == 2 and len(without.tabm.backbone.blocks) == 3
    assert len(_build("tabm", _spec("none"), n_blocks=1).tabm.backbone.blocks) == 1
    with torch.no_grad():
        out = with_embeddings(x_num, x_cat)
    assert not torch.allclose(out[:, 0], out[:, 1])  # k different members, not k copies


# ----------------------------------------------------------------------------- the MLP

NORMS = ["none", "batch", "layer"]
NORM_LAYER = {"none": None, "batch": nn.BatchNorm1d, "layer": nn.LayerNorm}


@pytest.mark.parametrize("norm", NORMS)
def test_mlp_every_norm_in_train_and_eval(norm):
    spec = _spec()
    model = _build("mlp", spec, norm=norm)
    layer = NORM_LAYER[norm]
    norms = [m for m in model.modules() if isinstance(m, (nn.BatchNorm1d, nn.LayerNorm))]
    assert (not norms) if layer is None else (norms and all(isinstance(m, layer) for m in norms))
    x_num, x_cat = _x(spec)
    model.train()
    x_num[:, :N_NUMERIC] = x_num[:, :N_NUMERIC] * 5 + 2
    out = model(x_num, x_cat)
    assert out.shape == (BATCH, N_LABELS) and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    if norm == "batch":
        bn = norms[0]
        assert int(bn.num_batches_tracked) == 1
        assert not torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))


def test_mlp_dropout_zero_is_deterministic_in_train_mode_too():
    spec = _spec()
    model = _build("mlp", spec, dropout=0.0)
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    x_num, x_cat = _x(spec)
    with torch.no_grad():
        assert torch.equal(model.train()(x_num, x_cat), model.eval()(x_num, x_cat))


def test_mlp_layer_shapes():
    spec = _spec()
    model = create_model("mlp", inputs=spec, settings={"hidden_sizes": [16, 8, 4], "dropout": 0.0})
    d_in = N_NUMERIC + N_FLAGS + sum(CARDINALITIES)
    shapes = [(m.in_features, m.out_features) for m in model.modules() if isinstance(m, nn.Linear)]
    assert shapes == [(d_in, 16), (16, 8), (8, 4), (4, N_LABELS)]
    assert sum(p.numel() for p in model.parameters()) == (d_in * 16 + 16) + (16 * 8 + 8) + (8 * 4 + 4) + (4 * N_LABELS + N_LABELS)


def test_mlp_with_no_hidden_layer_is_linear():
    model = create_model("mlp", inputs=_spec(), settings={"hidden_sizes": []})
    assert len(model.body) == 0
    assert (model.head.in_features, model.head.out_features) == (N_NUMERIC + N_FLAGS + sum(CARDINALITIES), N_LABELS)


def test_mlp_hidden_sizes_accepts_one_int():
    assert model_settings("mlp", {"hidden_sizes": 64}).hidden_sizes == [64]


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

    model = create_model("mlp", inputs=_spec(), settings={"hidden_sizes": [8, 4], "dropout": 0.2})
    drops = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(isinstance(m, Dropout) for m in drops)
    assert sorted(model.state_dict()) == ["body.0.bias", "body.0.weight", "body.3.bias", "body.3.weight", "head.bias", "head.weight"]
    # an embedding adds its own keys under input.*, the MLP's stay as they were
    embedded = create_model("mlp", inputs=_spec("periodic"), settings={"hidden_sizes": [8, 4], "dropout": 0.2})
    keys = sorted(embedded.state_dict())
    assert [k for k in keys if not k.startswith("input.")] == sorted(model.state_dict())
    assert any(k.startswith("input.num_embeddings.") for k in keys)
