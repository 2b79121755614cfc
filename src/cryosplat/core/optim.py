"""Adam, the optimiser of both engines (the paper's), in a few tensor operations.

The same update as ``torch.optim.Adam`` with its defaults (``betas = (0.9, 0.999)``,
``eps = 1e-8``, no weight decay; tested against it step by step): ``m ← β₁m + (1−β₁)g``,
``v ← β₂v + (1−β₂)g²``, ``p ← p − lr · m / (1−β₁ᵗ) / (√v / √(1−β₂ᵗ) + eps)``. Written out because
the first ``torch.optim`` optimiser made in a process imports ``torch._dynamo`` (1.4 s on a CPU,
a sixth of a small reconstruction), which nothing here uses. Its ``state_dict`` has the layout of
``torch.optim.Adam``'s, so checkpoints written with either load into both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

__all__ = ["Adam"]


class Adam:
    """Adam over parameter groups ``[{"params": [tensor, ...], "lr": float, ...}, ...]``.

    Parameters
    ----------
    param_groups : iterable of dict
        Each with ``params`` (leaf tensors that require grad) and ``lr``; other keys (e.g. a
        ``name``) are kept. Learning rates may be changed in ``param_groups`` between steps. An
        optional ``lr_scale`` (a tensor broadcastable to each of the group's parameters) scales
        the step element by element: rows of one tensor stepped at different rates.
    betas : (float, float)
    eps : float
    """

    def __init__(
        self,
        param_groups: Iterable[dict],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.param_groups = [dict(group, params=list(group["params"])) for group in param_groups]
        for group in self.param_groups:
            if not group.get("lr", -1.0) >= 0:
                raise ValueError(f"learning rate must be non-negative, got {group.get('lr')}")
        self.betas, self.eps = betas, eps
        self.state: dict[torch.Tensor, dict] = {}

    def _params(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self._params():
            if set_to_none:
                p.grad = None
            elif p.grad is not None:
                p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        beta1, beta2 = self.betas
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state.get(p)
                if state is None:
                    state = self.state[p] = {
                        "step": 0,
                        "exp_avg": torch.zeros_like(p),
                        "exp_avg_sq": torch.zeros_like(p),
                    }
                state["step"] += 1
                t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
                m.lerp_(p.grad, 1.0 - beta1)
                v.mul_(beta2).addcmul_(p.grad, p.grad, value=1.0 - beta2)
                denom = (v.sqrt() / math.sqrt(1.0 - beta2**t)).add_(self.eps)
                scale = group.get("lr_scale")
                if scale is not None:
                    denom.div_(scale)
                p.addcdiv_(m, denom, value=-group["lr"] / (1.0 - beta1**t))

    def state_dict(self) -> dict:
        """``{"state": {index: {"step", "exp_avg", "exp_avg_sq"}}, "param_groups": [...]}``."""
        index = {p: i for i, p in enumerate(self._params())}
        state = {
            index[p]: {
                "step": torch.tensor(float(s["step"])),
                "exp_avg": s["exp_avg"].clone(),
                "exp_avg_sq": s["exp_avg_sq"].clone(),
            }
            for p, s in self.state.items()
        }
        groups, start = [], 0
        for group in self.param_groups:
            n = len(group["params"])
            saved = {k: v for k, v in group.items() if k != "params"}
            groups.append(dict(saved, params=list(range(start, start + n))))
            start += n
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict) -> None:
        """Restore moments, step counts and learning rates (also from ``torch.optim.Adam``)."""
        params = self._params()
        groups = saved["param_groups"]
        if [len(g["params"]) for g in groups] != [len(g["params"]) for g in self.param_groups]:
            raise ValueError("the saved optimiser state is for other parameter groups")
        for group, old in zip(self.param_groups, groups, strict=True):
            group["lr"] = float(old["lr"])
        self.state = {}
        for i, s in saved["state"].items():
            p = params[int(i)]
            self.state[p] = {
                "step": int(float(s["step"])),
                "exp_avg": s["exp_avg"].to(p.device, p.dtype).clone(),
                "exp_avg_sq": s["exp_avg_sq"].to(p.device, p.dtype).clone(),
            }
