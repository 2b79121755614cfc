"""Our Adam against torch.optim.Adam: the same parameters after every step, the same state layout."""

from __future__ import annotations

import pytest
import torch

from cryosplat.core.optim import Adam


def _problem(seed: int):
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(7, 3, generator=g, dtype=torch.float64)
    b = torch.randn(5, generator=g, dtype=torch.float64)
    target = torch.randn(7, 3, generator=g, dtype=torch.float64)
    return a, b, target


def _loss(a, b, target):
    return ((a - target) ** 2 * (1 + b.sum() ** 2)).sum() + (b**3).sum()


def _groups(a, b):
    return [{"params": [a], "lr": 0.05, "name": "a"}, {"params": [b], "lr": 0.01, "name": "b"}]


def test_steps_match_torch_adam_with_decaying_rates():
    a0, b0, target = _problem(0)
    ours_a, ours_b = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    ref_a, ref_b = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    ours, ref = Adam(_groups(ours_a, ours_b)), torch.optim.Adam(_groups(ref_a, ref_b))
    for _ in range(25):
        for opt, x, y in ((ours, ours_a, ours_b), (ref, ref_a, ref_b)):
            opt.zero_grad(set_to_none=True)
            _loss(x, y, target).backward()
            opt.step()
            for group in opt.param_groups:
                group["lr"] *= 0.95
    assert torch.allclose(ours_a, ref_a, rtol=0, atol=1e-12)
    assert torch.allclose(ours_b, ref_b, rtol=0, atol=1e-12)
    assert not torch.allclose(ours_a, a0)


def test_state_dicts_load_both_ways():
    a0, b0, target = _problem(1)
    ref_a, ref_b = a0.clone().requires_grad_(), b0.clone().requires_grad_()
    ref = torch.optim.Adam(_groups(ref_a, ref_b))
    for _ in range(3):
        ref.zero_grad()
        _loss(ref_a, ref_b, target).backward()
        ref.step()
    ours_a, ours_b = (
        ref_a.detach().clone().requires_grad_(),
        ref_b.detach().clone().requires_grad_(),
    )
    ours = Adam(_groups(ours_a, ours_b))
    ours.load_state_dict(ref.state_dict())
    back = torch.optim.Adam(_groups(ref_a, ref_b))
    back.load_state_dict(ours.state_dict())
    for opt, x, y in ((ours, ours_a, ours_b), (ref, ref_a, ref_b)):
        opt.zero_grad()
        _loss(x, y, target).backward()
        opt.step()
    assert torch.allclose(ours_a, ref_a, rtol=0, atol=1e-12)
    assert back.state_dict()["state"][0]["step"] == 3


def test_bad_groups_are_refused():
    a = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match="learning rate"):
        Adam([{"params": [a], "lr": -1.0}])
    ours = Adam([{"params": [a], "lr": 0.1}])
    with pytest.raises(ValueError, match="other parameter groups"):
        ours.load_state_dict({"state": {}, "param_groups": []})


def test_lr_scale_steps_each_element_at_its_own_rate():
    """A group's ``lr_scale`` equals separate groups at the scaled rates, element by element."""
    a0, _, target = _problem(2)
    scale = torch.tensor([1.0, 0.25, 1.0, 0.0, 1.0, 0.5, 1.0], dtype=torch.float64)[:, None]
    ours = a0.clone().requires_grad_()
    rows = [a0[i : i + 1].clone().requires_grad_() for i in range(7)]
    scaled = Adam([{"params": [ours], "lr": 0.05, "lr_scale": scale}])
    separate = Adam([{"params": [r], "lr": 0.05 * float(scale[i])} for i, r in enumerate(rows)])
    for _ in range(10):
        scaled.zero_grad()
        ((ours - target) ** 3).abs().sum().backward()
        scaled.step()
        separate.zero_grad()
        sum(((r - target[i]) ** 3).abs().sum() for i, r in enumerate(rows)).backward()
        separate.step()
    assert torch.allclose(ours, torch.cat(rows), rtol=0, atol=1e-12)
    assert torch.equal(ours[3], a0[3])  # a zero rate leaves the row alone
    assert not torch.allclose(ours[0], a0[0])
