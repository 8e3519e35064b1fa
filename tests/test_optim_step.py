"""imbalance/optim_step.py: the fused Adam step must equal optimizer.step() exactly."""

import copy

import pytest
import torch
from torch import nn

from imbalance.optim_step import OptimizerStep


def _model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 2))


def _grads(model, step):
    gen = torch.Generator().manual_seed(1000 + step)
    x = torch.randn(16, 6, generator=gen)
    model(x).pow(2).mean().backward()


def _train(model, optimizer, steps, *, use_stepper, lr_change_at=None):
    stepper = OptimizerStep(optimizer)
    for step in range(steps):
        if step == lr_change_at:
            for group in optimizer.param_groups:
                group["lr"] *= 0.1
        if use_stepper:
            stepper.zero_grad()
        else:
            optimizer.zero_grad(set_to_none=True)
        _grads(model, step)
        (stepper.step if use_stepper else optimizer.step)()
    return stepper


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (torch.optim.Adam, {"lr": 1e-2}),
        (torch.optim.Adam, {"lr": 1e-2, "weight_decay": 0.1, "betas": (0.8, 0.95), "eps": 1e-6}),
        (torch.optim.AdamW, {"lr": 1e-2, "weight_decay": 0.1}),
    ],
)
def test_fused_step_is_bit_identical_to_optimizer_step(cls, kwargs):
    ref_model = _model()
    fast_model = copy.deepcopy(ref_model)
    ref_opt = cls(ref_model.parameters(), fused=True, **kwargs)
    fast_opt = cls(fast_model.parameters(), fused=True, **kwargs)
    _train(ref_model, ref_opt, 25, use_stepper=False, lr_change_at=10)
    stepper = _train(fast_model, fast_opt, 25, use_stepper=True, lr_change_at=10)
    assert stepper.fast  # the kernel path was taken after the first step
    for a, b in zip(ref_model.parameters(), fast_model.parameters()):
        assert torch.equal(a, b)
    ref_state, fast_state = ref_opt.state_dict(), fast_opt.state_dict()
    for key in ref_state["state"]:
        for name, value in ref_state["state"][key].items():
            assert torch.equal(value, fast_state["state"][key][name]), name
    assert fast_state["state"][0]["step"].item() == 25


def test_a_new_stepper_continues_from_existing_state():
    ref_model, fast_model = _model(), _model()
    ref_opt = torch.optim.Adam(ref_model.parameters(), lr=1e-2, fused=True)
    fast_opt = torch.optim.Adam(fast_model.parameters(), lr=1e-2, fused=True)
    _train(ref_model, ref_opt, 12, use_stepper=False)
    _train(fast_model, fast_opt, 5, use_stepper=True)
    assert OptimizerStep(fast_opt).fast  # state exists: fast from the first call
    for step in range(5, 12):  # a second "epoch" with a new stepper
        stepper = OptimizerStep(fast_opt) if step == 5 else stepper
        stepper.zero_grad()
        _grads(fast_model, step)
        stepper.step()
    for a, b in zip(ref_model.parameters(), fast_model.parameters()):
        assert torch.equal(a, b)


def test_other_optimizers_and_options_use_optimizer_step():
    model = _model()
    for optimizer in (
        torch.optim.SGD(model.parameters(), lr=0.1),
        torch.optim.Adam(model.parameters(), lr=0.1),  # not fused
        torch.optim.Adam(model.parameters(), lr=0.1, fused=True, amsgrad=True),
    ):
        before = [p.detach().clone() for p in model.parameters()]
        stepper = _train(model, optimizer, 3, use_stepper=True)
        assert not stepper.fast
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_missing_gradient_falls_back_and_skips_that_parameter():
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)
    stepper = _train(model, optimizer, 2, use_stepper=True)
    assert stepper.fast
    frozen = model[2].bias.detach().clone()
    stepper.zero_grad()
    _grads(model, 3)
    model[2].bias.grad = None
    stepper.step()
    assert torch.equal(model[2].bias, frozen)
    assert not torch.equal(model[0].weight.grad, torch.zeros_like(model[0].weight))


def test_step_hooks_still_run():
    model = _model()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2, fused=True)
    stepper = _train(model, optimizer, 2, use_stepper=True)
    calls = []
    handle = optimizer.register_step_post_hook(lambda opt, args, kwargs: calls.append(1))
    stepper.zero_grad()
    _grads(model, 3)
    stepper.step()
    handle.remove()
    assert calls == [1]
