"""Past the map's 0.5 crossing, where the data cannot choose, the models and the shrunk inversion
in equal shares; in the blend's other model shells, a quarter share of the shrunk inversion.

Past the data's cut the blend (:mod:`cryosplat.validation.data_blend`) keeps the half models: the
two halves' inversions agree at chance there, so no estimate can say whether the models or the
shrunk inversion ``S = B / (W + mean W)`` (:mod:`cryosplat.validation.shrunk_blend`) lies closer
to the truth, and which does depends on the map. On the benchmark's real maps the models hold
more (EMD-1832: 0.23 against 0.11 over its last shells); on a map the mixture holds poorly they
hold less. The 70S ribosome, a mean-zero map with a 30-fold cliff in its spectrum, is one: past
the cliff its models hold 0.13-0.20 of the truth where ``S`` holds 0.19-0.21, and at ten times the
signal 0.01-0.10 where ``S`` holds 0.15-0.23.

Where no estimate can choose, the map hedges. Each half there is

    ``A' = ½ M_A + ½ (|M_A| / |S_A|) S_A``

per shell (``|·|`` the shell's RMS in the soft mask): two parts of equal power. Where both hold
little, with independent errors, such a mix correlates with the truth by about ``(ρ_M + ρ_S)/√2``:
more than the better of the two when they are close, less when one is far ahead (the cost on
EMD-1832, below). The hedge applies in the shells that meet all of these:

- the blend keeps the models there (``α ≥ 0.99``, no shrunk inversion taken);
- the two halves' inversions agree within :data:`~cryosplat.validation.data_blend.
  DATA_SIGNAL_SIGMAS` of chance (``/√n``);
- the shell lies :data:`HEDGE_START_SHELLS` or more past the first shell where the blended halves'
  cross-validated estimate of the map's FSC with the truth
  (:func:`~cryosplat.validation.crossval.cross_validated_fsc`) falls under 0.5, and that fall comes
  no later than the first shell the data cannot vouch for. Where the estimate's lower bound stays
  at 0.5 or more past the data's cut, the models hold more than the data show (8ZPM from atoms,
  EMD-1832 and β-galactosidase with preferred views): those maps are left as blended.

The 0.5 crossing interpolates between the shells on either side, and the estimate may read a shell
early. The hedge starts past both, so it leaves the 0.5 crossing as it was.

In the other shells the blend gives the models alone (``α ≥ 0.99``, none shrunk, shell 1 on),
below the hedge or where there is none (but not on pure noise, where the estimate falls under
0.5 before :data:`MIN_CROSSING_SHELL`), each half is ``¾ M_A + ¼ (|M_A| / |S_A|) S_A``
(:data:`MODEL_SHELLS_SHRUNK_SHARE`). There the blend has found the models better than the
inversion it weighs them against, but the shrunk inversion's errors are partly independent of
theirs, and a small share of it takes out some of each: on EMD-6824's fifth seed with preferred
views the map's FSC with the truth at 20.5 Å, where that truth's spectrum dips, rose 0.597 →
0.621 (cryoDRGN 0.639), and no crossing of 24 sets made with another seed moved more than 0.3 %
coarser (``benchmarks/RESULTS.md``, round 2, session 86).

Measured (``benchmarks/RESULTS.md``, round 2, session 85):

- offline on the blend's inputs of 38 runs through
  :func:`~cryosplat.reconstruct.map_composition.compose_map`: the 0.5 crossings mean +0.00 %
  (worst +0.20 %), the 0.143 crossings mean −1.55 % (worst +1.84 %, coloured EMD-1832, still 24 %
  finer than both peers); the 70S ribosome at the benchmark's signal 18.01 / 18.22 Å → 15.99 /
  14.90 Å against cryoDRGN's 16.13 / 14.96 Å; at ten times the signal the ribosome 12.83 → 11.56
  Å, β-galactosidase 8.16 → 7.84 Å;
- in full runs of 24 sets made with another seed: the ribosome's 0.143 18.31 → 15.76 Å against
  cryoDRGN's 15.56 Å; ten sets the same; no 0.5 crossing more than 0.5 % coarser; nothing below a
  0.5 crossing moved by more than 0.008.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.validation.crossval import cross_validated_fsc, shell_counts
from cryosplat.validation.crossval_result import reading_curve
from cryosplat.validation.data_blend import DATA_SIGNAL_SIGMAS, Blend
from cryosplat.validation.fsc import cross_power, half_grid_shells, shell_sums

__all__ = [
    "HEDGE_MODEL_SHARE",
    "HEDGE_START_SHELLS",
    "MODEL_SHELLS_SHRUNK_SHARE",
    "hedge_shells",
    "hedge_tail",
    "shrunk_shares",
]

HEDGE_MODEL_SHARE = 0.5
"""The models' share of a hedged shell's RMS, the shrunk inversion's the rest (equal parts: no
preference where the data cannot give one). A share of 0.7 measured between the two: the
ribosome's 0.143 half as far, EMD-1832's losses a third as large."""

HEDGE_START_SHELLS = 3
"""The hedge's first shell, counted past the first shell whose estimate falls under 0.5. Two
shells past it moved EMD-5625 with preferred views 1.9 % at 0.5 (its estimate read a shell early);
three, no 0.5 crossing of the 38 runs by more than 0.21 %."""

MIN_CROSSING_SHELL = 3
"""No hedge where the estimate falls under 0.5 before this shell (half the box's size and more):
there the map holds nothing the data vouch for (pure noise reads 0.97 at the first shell, a chance
agreement of a few coefficients, and 0 from the second)."""

MODEL_SHELLS_SHRUNK_SHARE = 0.25
"""The shrunk inversion's share of a shell's RMS in the blend's other model shells (module
docstring). A quarter measured against a half on the models' maps of three sets: EMD-6824 with
preferred views gains at either (0.600 → 0.637 / 0.651 at 20.5 Å), EMD-5625's shells 12–14 lose
0.02–0.03 at a half and nothing at a quarter."""
MODEL_ONLY = 0.99
"""The model weight from which the blend counts a shell as the models' alone."""


def hedge_shells(
    blend: Blend,
    data_fsc: np.ndarray,
    counts: np.ndarray,
    estimate: np.ndarray,
    readable: np.ndarray,
    vouched: int | None = None,
) -> np.ndarray:
    """The shells to hedge (module docstring), bool ``(D//2 + 1,)``.

    Parameters
    ----------
    blend : Blend
        The blend's choice per shell.
    data_fsc, counts : np.ndarray (D//2 + 1,)
        The FSC of the two halves' inversions in the blend's mask, and the coefficients per shell.
    estimate, readable : np.ndarray (D//2 + 1,)
        The cross-validated estimate of the map's FSC with the truth and the shells whose data it
        can read (:class:`~cryosplat.validation.crossval_result.CrossValidatedFSC`).
    vouched : int, optional
        The shells ``0 .. vouched − 1`` the data vouch for (``CrossValidatedFSC.vouched_shells``;
        None: all). Where the estimate stays at 0.5 or more past them (a lower bound there), the
        models hold more than the data can show: no hedge.
    """
    n = len(blend.model_weight)
    first = _first_under_half(estimate, readable, n)
    if first is None or first < MIN_CROSSING_SHELL or (vouched is not None and first > vouched):
        return np.zeros(n, dtype=bool)
    past = np.arange(n) >= first + HEDGE_START_SHELLS
    chance = np.asarray(data_fsc)[:n] <= DATA_SIGNAL_SIGMAS / np.sqrt(np.maximum(counts[:n], 1.0))
    return past & chance & _models_only(blend)


def _models_only(blend: Blend) -> np.ndarray:
    """The shells the blend gives the models alone (``α ≥ MODEL_ONLY``, none shrunk)."""
    return (np.asarray(blend.model_weight) >= MODEL_ONLY) & ~blend.shrunk_shells


def _first_under_half(estimate: np.ndarray, readable: np.ndarray, n: int) -> int | None:
    """The first shell from 1 where the estimate, read through its unreadable shells, falls
    under 0.5; None where it never does."""
    curve = reading_curve(np.asarray(estimate)[:n], np.asarray(readable)[:n])
    under = np.flatnonzero(curve[1:] < 0.5) + 1
    return int(under[0]) if under.size else None


def hedge_tail(
    blend: Blend,
    models: tuple[ArrayLike, ArrayLike],
    data: tuple[ArrayLike, ArrayLike],
    shrunk: tuple[ArrayLike, ArrayLike],
    mask: np.ndarray,
    sampled: torch.Tensor | None = None,
    device: torch.device | str | None = None,
) -> tuple[Blend, np.ndarray]:
    """``(blend, shares)``: the blend with the shrunk inversion's share per shell
    (:func:`shrunk_shares`: a half in the shells :func:`hedge_shells` picks, a quarter in the
    blend's other model shells), and those shares, ``(D//2 + 1,)``.

    Parameters
    ----------
    blend : Blend
        :func:`~cryosplat.validation.data_blend.blend_halves`' result for these maps.
    models, data, shrunk : (A, B) maps, shape (D, D, D)
        The half models' maps, the inversions the blend took (``D``) and the shrunk ones (``S``).
    mask : np.ndarray, shape (D, D, D)
        The soft mask the blend was taken in.
    sampled : torch.Tensor, bool, shape (D, D, D//2 + 1), optional
        The frequencies the data hold; elsewhere the halves stay as blended.
    device : torch device, optional
    """
    weight = torch.as_tensor(np.asarray(mask), dtype=torch.float64, device=device)
    device = weight.device
    box = weight.shape[0]
    grid = half_grid_shells(box, device)

    def spectrum(m: ArrayLike) -> torch.Tensor:
        return torch.fft.rfftn(
            torch.as_tensor(np.asarray(m), dtype=torch.float64, device=device) * weight
        )

    def sums(x: torch.Tensor, y: torch.Tensor) -> np.ndarray:
        return shell_sums(cross_power(x, y), grid).cpu().numpy()

    n = len(blend.model_weight)
    counts = shell_counts(box)[:n]
    cv = cross_validated_fsc(*blend.halves, np.asarray(data[0]), np.asarray(data[1]), mask, 1.0)
    first = _first_under_half(cv.model_vs_truth_estimate, cv.readable_shells, n)
    if first is not None and first < MIN_CROSSING_SHELL:  # pure noise: nothing to weigh
        return blend, np.zeros(n)
    hedged = hedge_shells(
        blend,
        cv.data_fsc,
        counts,
        cv.model_vs_truth_estimate,
        cv.readable_shells,
        cv.vouched_shells,
    )
    shares = shrunk_shares(blend, hedged)
    if not shares.any():
        return blend, shares
    shells = grid[0].clamp_max(n)
    per_point = torch.as_tensor(np.append(shares, 0.0), device=device)[shells]
    if sampled is not None:
        per_point = torch.where(sampled.to(device), per_point, 0.0)
    corrections = []
    for model, inversion in zip(models, shrunk, strict=True):
        m, s = spectrum(model), spectrum(inversion)
        ratio = np.sqrt(np.maximum(sums(m, m), 0.0) / np.maximum(sums(s, s), 1e-300))[:n]
        scale = torch.as_tensor(np.append(ratio, 0.0), device=device)[shells]
        change = per_point * (scale * s - m)
        corrections.append(torch.fft.irfftn(change, s=weight.shape).cpu().numpy())
    halves = tuple(h + c for h, c in zip(blend.halves, corrections, strict=True))
    plain = tuple(p + c for p, c in zip(blend.plain, corrections, strict=True))
    return replace(blend, halves=halves, plain=plain), shares


def shrunk_shares(blend: Blend, hedged: np.ndarray) -> np.ndarray:
    """The shrunk inversion's share per shell, ``(D//2 + 1,)``: ``1 − HEDGE_MODEL_SHARE`` in the
    ``hedged`` shells, :data:`MODEL_SHELLS_SHRUNK_SHARE` in the blend's other model shells from
    shell 1, 0 elsewhere (module docstring)."""
    shares = np.where(_models_only(blend), MODEL_SHELLS_SHRUNK_SHARE, 0.0)
    shares[0] = 0.0
    return np.where(hedged, 1.0 - HEDGE_MODEL_SHARE, shares)
