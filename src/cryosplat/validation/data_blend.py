"""Half maps corrected by their own data, shell by shell, where the data hold more than the model.

A mixture of Gaussians fitted to a half set errs in two ways: by the noise of its half set, which
the other half does not share, and by what a mixture of that size and shape cannot hold, which
both halves share. The second shows at the low and middle shells, where the data hold much
signal and a direct inversion of the same half set can lie closer to the truth than the model
(EMD-1832 at 36 Å: the mean of the two half models 0.940 with the truth, the mean of the two
halves' direct inversions 0.952; ``benchmarks/RESULTS.md``, round 2, session 9). Each half map is
therefore replaced by

    ``A' = α(k) M_A + (1 − α(k)) D_A``

(``M``: the half model's map, ``D``: the half set's direct inversion, per frequency shell ``k``),
with ``α`` the value that minimises the expected squared error of ``A'`` against the truth. It is
estimated without the truth, from the two halves, with shell means ``⟨·⟩`` of Fourier
coefficients and ``D`` taken as unbiased (its errors independent between the halves):

* ``σ² = ⟨|D_A − D_B|²⟩ / 2``: the noise of one half's inversion;
* ``E = ⟨|M_A − D_B|²⟩ − σ²``: the error of a half model (the other half's data are independent
  of it), averaged over both pairings;
* ``C = (E + σ² − ⟨|M_A − D_A|²⟩) / 2``: the covariance of a half model's error with its own
  data's noise (the model was fitted to them);
* ``α = (σ² − C) / (E + σ² − 2C)``, clipped to ``[0, 1]``; that is ``1 − g / ⟨|M_A − D_A|²⟩``
  with ``g = (⟨|M_A − D_B|²⟩ + ⟨|M_A − D_A|²⟩) / 2 − σ²``, what the model misses that the data
  share. ``g`` is a difference of shell means, of standard error ``σ²/√n`` for ``n``
  coefficients where the models miss nothing. Where the data hold nothing their noise cannot
  explain (the FSC of the two inversions under :data:`DATA_SIGNAL_SIGMAS` ``/√n``), it is taken
  one standard error low (:data:`ERROR_MARGIN`): there a chance excess would let pure noise in
  (a shell of 100 coefficients gives ``1 − α`` about 0.1 by chance alone). Where they hold
  signal it is taken as it is: a chance excess then lets in noise of about ``σ²/n``, small
  against that signal, while the margin withheld corrections as large as itself. Measured
  (round 2, session 53) on EMD-5625 in a box of 80 in coloured noise, five realisations of the
  set: at 169 Å (shell 2, 62 coefficients, the data's FSC 0.7) the margin kept ``α`` at
  0.85–1 where the truth's best for the map was 0.1–0.4, and the map's FSC with the truth lay
  up to 0.049 under relion's there; without it 0.031 at most, the 0.5 and 0.143 crossings of
  28 sets level.

That ``α`` is each half's optimum for its squared error; the map, the mean of the two halves,
is judged by its FSC with the truth, and where the data hold much ``α`` moves down to what the
halves estimate that FSC best at (:mod:`cryosplat.validation.map_blend_weights`).

The shell means are taken over the maps times a soft mask ``m`` round the molecule (the report's
spherical mask). The noise of an inversion fills the box, the models' shared error lies in the
molecule: over the whole box ``σ²`` counted the solvent's noise against the data, which no FSC of
the map sees (measured on 21 sets, round 2, session 12: the extreme preferred orientation's first
shell 0.947 → 0.960 with the truth, the largest deficit under the better peer 0.027 → 0.017, the
0.5 crossings unchanged, mean −0.00 %, worst +0.3 %; the automatic mask, tighter, lost
beta-galactosidase 5 %). The correction is taken in the same mask,

    ``A' = M_A + F⁻¹[(1 − α(k)) F[m (D_A − M_A)]]``

(in effect ``αM + (1 − α)D`` inside the mask, the model outside it): applied to the whole maps, the
shell-by-shell switch between model and data (``α`` 0.07, 0, 0.72 over shells 1–3 of EMD-6824
with the cryoSPARC set's CTF) brought the data's solvent into the masked map unweighed, and
shell 2's FSC with the truth fell to 0.971 where the model alone had 0.978 and the data alone
0.987; in the mask it is 0.989 (round 2, session 32: on 19 sets the largest deficit under the
better peer 0.017 → 0.012, the 0.5 and 0.143 crossings within 0.03 Å).

Where no view samples a frequency at all (a missing cone or wedge: views within some angle of
one axis, a tilt limit; :mod:`cryosplat.validation.sampling`) the inversions are zero, not noisy,
and where views sample it thinly the inversion's Wiener constant shrinks them
(:data:`BLEND_SAMPLED_WEIGHT`): there the half maps stay the models', and ``α`` is estimated over
the other frequencies of each shell. Taken over the whole shell, the models' fill-in of the unsampled part counted as their
error against zero data: with every view within 10° of one axis ``α`` fell to 0.04-0.3, the map
became the inversions with the unsampled part empty, and its FSC with the truth crossed 0.5 at
160 Å where the half models' own crossed it at 33 Å; with every view within 30° the first shell
had 0.859 where the models alone had 0.951 (round 2, session 33: so 33 Å and 0.948).

Where the data hold nothing (the high shells of a noisy set) ``σ²`` dominates and ``α = 1``: the
map is the model's. ``α(0) = 1`` (the map's mean stays the model's: one coefficient estimates
nothing) and ``α = 1`` past the box's Nyquist shell (the corners hold no data).

The zero frequency of the masked difference ``m (D_A − M_A)`` is not the map's mean, though: it is
the mass the model misses inside the mask, the part of the lowest shells' correction that the
mask's own shape carries. :func:`masked_mean_correction` gives it, ``(1 − α(1)) ⟨m (D_A −
M_A)⟩`` (the first shell's weight: one coefficient estimates nothing), and the map adds it to
each half as a constant after the local weight, which it would otherwise shift everywhere
(:func:`cryosplat.reconstruct.map_composition.compose_map`). Measured (round 2, session 42): with
EMD-1832 13 voxels off the box's centre, the half models missing part of its envelope (0.887
with the truth at the first shell), the map's first shell was 0.935 where the data alone give
0.971 and relion 0.969; with the correction 0.976. Over 37 sets the first shell of the EMD-1832
and beta-galactosidase sets 0.003–0.009 higher, the 0.5 and 0.143 crossings the same (mean
−0.006 %, the worst +0.06 %), the largest deficit under the better peer below the 0.5 crossing
0.033 → 0.014. Taken inside the blend instead (``α(0) = α(1)``), the constant moved the local
weight: 1.1 % coarser at 0.5 on EMD-5625 at box 112.

``A'`` depends on half A's model and data only, and on ``α``, one number per shell made from both
halves (as the fit's prior is set from the FSC of both halves' inversions). The half maps as
written and every FSC between them stay the models' own; this enters the full map only, as the
local weight (:mod:`cryosplat.validation.local_weight`) does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.validation.fsc import cross_power, half_grid_shells, power, shell_sums
from cryosplat.validation.map_blend_weights import MapTerms, weights_for_the_map
from cryosplat.validation.shrunk_blend import shrunk_choice, shrunk_terms

__all__ = [
    "BLEND_REGULARIZATION",
    "Blend",
    "BLEND_SAMPLED_WEIGHT",
    "DATA_SIGNAL_SIGMAS",
    "blend_halves",
    "masked_mean_correction",
    "model_weights_by_shell",
]

# The Wiener constant of the direct inversions blended in, as a fraction of the mean CTF² (the
# validation's data maps use 0.05). The estimate above takes each inversion as unbiased; a larger
# constant shrinks the lowest shells, where the summed CTF² is small, and that bias reads as the
# model's error: measured on fifteen sets, two seeds (round 2, session 9), 0.05 left EMD-1832's
# first shell at 0.992 with the truth (0.996 unblended), 0.2 at 0.97; 0.003 and 0.01 alike.
BLEND_REGULARIZATION = 0.01

# Where the summed CTF² is under this share of its shell's mean the half maps stay the models'
# (:func:`blend_halves`'s ``sampled``): there the inversion, ``B / (W + c)`` with ``c`` =
# :data:`BLEND_REGULARIZATION` of the mean, keeps under 5/6 of the signal, a bias the estimate of
# ``α`` takes for the model's error. Five times the Wiener constant. Measured (round 2, session 33):
# with every view within 30° of one axis the first shell 0.933 with the truth at 10⁻³ (where no
# view samples), 0.948 so (relion 0.965, the models alone 0.951), 95 % of the views within 15°
# 18.93 → 18.81 Å at 0.5; sets with every direction sampled unchanged to ±0.02 Å.
BLEND_SAMPLED_WEIGHT = 5.0 * BLEND_REGULARIZATION

# Standard errors by which the estimate of what the models miss is taken low where the data hold
# no signal (see :func:`model_weights_by_shell`). Measured when it applied on every shell, on the
# fifteen sets, two seeds (round 2, session 9), largest deficit under the better peer / mean
# change of the 0.5 crossing: 0 (none) 0.009 / -0.45 %, 1 0.011 / -0.26 %, 2 0.013 / 0.0 %
# (unblended: 0.021).
ERROR_MARGIN = 1.0

# Chance's standard deviations (``1/√n`` for ``n`` coefficients) by which the FSC of the two
# inversions must exceed zero for a shell's data to count as holding signal, where the margin is
# dropped (module docstring; round 2, session 53). Under the soft mask chance's scatter is nearer
# 1.5/√n (``benchmarks/bench_report.chance_fsc_sd``); three of those, 4.5, measured on 34 runs:
# beta-galactosidase 0.5 % coarser at 0.5 (its gain with 3 gone), the mean deficit under the
# better peer 0.0041 → 0.0047.
DATA_SIGNAL_SIGMAS = 3.0


@dataclass(frozen=True)
class _KeptShells:
    """Shell means over the kept frequencies of the half grid: ``keep`` (real, on the half
    grid), the grid's ``(shells, multiplicity)`` and the count kept per shell."""

    keep: torch.Tensor
    grid: tuple[torch.Tensor, torch.Tensor]
    counts: torch.Tensor

    def mean(self, values: torch.Tensor) -> torch.Tensor:
        """The mean per shell of ``values`` (real, on the half grid)."""
        return shell_sums(values * self.keep, self.grid) / self.counts.clamp_min(1.0)

    def power(self, x: torch.Tensor) -> torch.Tensor:
        """The mean ``|x|²`` per shell of a spectrum."""
        return self.mean(power(x))

    def cross(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The mean ``Re(x conj y)`` per shell of two spectra."""
        return self.mean(cross_power(x, y))


def model_weights_by_shell(
    model_a: torch.Tensor,
    model_b: torch.Tensor,
    data_a: torch.Tensor,
    data_b: torch.Tensor,
    grid: tuple[torch.Tensor, torch.Tensor] | None = None,
    sampled: torch.Tensor | None = None,
) -> np.ndarray:
    """``α`` per shell (``D//2 + 1``,) for :func:`blend_halves`, from the four maps' spectra.

    Parameters
    ----------
    model_a, model_b : torch.Tensor, complex (D, D, D//2 + 1)
        Real FFTs of the half models' maps.
    data_a, data_b : torch.Tensor, complex, same shape
        Real FFTs of the half sets' direct inversions.
    grid : (shells, multiplicity), optional
        :func:`cryosplat.validation.fsc.half_grid_shells` of the box, when the caller has it.
    sampled : torch.Tensor, bool, same shape, optional
        The frequencies the data hold (:meth:`~cryosplat.validation.sampling.SampledFrequencies.mask`
        at :data:`BLEND_SAMPLED_WEIGHT`): the shell means are taken over those (``α`` 1 where a
        shell has none). Default: all.
    """
    alpha, _, _ = _weights((model_a, model_b, data_a, data_b), grid, sampled)
    return alpha.cpu().numpy()


def _weights(
    spectra: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    grid: tuple[torch.Tensor, torch.Tensor] | None,
    sampled: torch.Tensor | None,
) -> tuple[torch.Tensor, MapTerms, _KeptShells]:
    """:func:`model_weights_by_shell`'s ``α`` (a tensor), with the shell means it read and the
    shells it read them over."""
    model_a, model_b, data_a, data_b = spectra
    grid = half_grid_shells(model_a.shape[0], model_a.device) if grid is None else grid
    keep = torch.ones_like(grid[1]) if sampled is None else sampled.to(grid[1])
    counts = shell_sums(keep, grid)
    shells = _KeptShells(keep, grid, counts)
    mean_power = shells.power
    noise = mean_power(data_a - data_b) / 2.0
    cross = (mean_power(model_a - data_b) + mean_power(model_b - data_a)) / 2.0
    own = (mean_power(model_a - data_a) + mean_power(model_b - data_b)) / 2.0
    # α = 1 − g / own with g = (cross + own)/2 − σ², what the models miss that the data share
    # (module docstring: E = cross − σ², C = (cross − own)/2). Where the models miss nothing, g
    # is the shell mean of Re(n_A conj n_B) over about count/2 independent coefficients (Friedel
    # pairs), of standard error σ²/√count: it is taken ERROR_MARGIN of those low where the
    # data's own FSC is within DATA_SIGNAL_SIGMAS of chance, so that pure noise is not let in on
    # a chance excess; where the data hold signal, as it is.
    root_counts = counts.clamp_min(1.0).sqrt()
    standard_error = noise / root_counts
    agreement = shells.cross(data_a, data_b)
    data_powers = (mean_power(data_a), mean_power(data_b))
    data_fsc = agreement / (data_powers[0] * data_powers[1]).sqrt().clamp_min(1e-300)
    holds_signal = data_fsc > DATA_SIGNAL_SIGMAS / root_counts
    margin = torch.where(holds_signal, 0.0, ERROR_MARGIN)
    missed = (cross + own) / 2.0 - noise - margin * standard_error
    alpha = torch.where(
        (own > 0) & (counts > 0), 1.0 - missed.clamp_min(0.0) / own.clamp_min(1e-300), 1.0
    )
    alpha = alpha.clamp(0.0, 1.0)
    terms = _map_terms(
        (model_a, model_b, data_a, data_b), (agreement, *data_powers), (own, noise), shells
    )
    alpha = weights_for_the_map(alpha, terms)
    alpha[0] = 1.0
    return alpha, terms, shells


def _map_terms(
    spectra: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor],
    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    errors: tuple[torch.Tensor, torch.Tensor],
    shells: _KeptShells,
) -> MapTerms:
    """The shell means the map's FSC with the truth is estimated from
    (:class:`~cryosplat.validation.map_blend_weights.MapTerms`).

    ``spectra``: ``M_A, M_B, D_A, D_B``; ``data``: the shell means ``⟨D_A, D_B⟩``, ``⟨|D_A|²⟩``
    and ``⟨|D_B|²⟩`` (as the caller has them); ``errors``: ``⟨|M_A − D_A|²⟩`` and ``σ²`` per
    shell; ``shells``: the shell means over the frequencies counted.
    """
    model_a, model_b, data_a, data_b = spectra
    with_truth_data, data_power_a, data_power_b = data  # ⟨D̄, T⟩ as ⟨D_A, D_B⟩
    mean_cross, mean_power = shells.cross, shells.power
    a_b, b_a = mean_cross(model_a, data_b), mean_cross(model_b, data_a)
    a_a, b_b = mean_cross(model_a, data_a), mean_cross(model_b, data_b)
    return MapTerms(
        with_truth_model=(a_b + b_a) / 2.0,  # each model against the other half's data
        with_truth_data=with_truth_data,
        model_power=(mean_power(model_a) + mean_power(model_b)) / 4.0
        + mean_cross(model_a, model_b) / 2.0,
        data_power=(data_power_a + data_power_b) / 4.0 + with_truth_data / 2.0,
        between=(a_a + a_b + b_a + b_b) / 4.0,
        data_power_a=data_power_a,
        data_power_b=data_power_b,
        own=errors[0],
        noise=errors[1],
        counts=shells.counts,
    )


@dataclass(frozen=True)
class Blend:
    """Both halves blended (:func:`blend_halves`).

    Attributes
    ----------
    halves : (np.ndarray, np.ndarray), shape (D, D, D), float64
    model_weight : np.ndarray (D//2 + 1,)
        The model's weight per shell in ``[0, 1]``: ``α``, or ``β`` where the shrunk inversion
        was taken.
    alpha : np.ndarray (D//2 + 1,)
        ``α`` itself (the weight against ``D``, which the zero-frequency correction reads).
    shrunk_shells : np.ndarray (D//2 + 1,), bool
        The shells that took the shrunk inversion (:mod:`cryosplat.validation.shrunk_blend`).
    plain : (np.ndarray, np.ndarray)
        The halves blended with ``D`` alone (``halves`` where no shell took the shrunk one).
    """

    halves: tuple[np.ndarray, np.ndarray]
    model_weight: np.ndarray
    alpha: np.ndarray
    shrunk_shells: np.ndarray
    plain: tuple[np.ndarray, np.ndarray]


def blend_halves(
    model_a: ArrayLike,
    model_b: ArrayLike,
    data_a: ArrayLike,
    data_b: ArrayLike,
    device: torch.device | str | None = None,
    mask: np.ndarray | None = None,
    sampled: torch.Tensor | None = None,
    shrunk: tuple[ArrayLike, ArrayLike] | None = None,
) -> Blend:
    """Both half maps corrected by their own data where the data hold more (module docstring).

    Parameters
    ----------
    model_a, model_b : array-like, shape (D, D, D)
        The half models' maps.
    data_a, data_b : array-like, shape (D, D, D)
        Direct inversions of the same half sets, in the same units (e.g.
        ``FourierStatistics.reconstruct_wiener(BLEND_REGULARIZATION)``).
    device : torch device, optional
        Where the transforms run (the CPU by default).
    mask : array-like, shape (D, D, D), optional
        Soft mask the weights are estimated within (e.g.
        :func:`~cryosplat.validation.masks.spherical_mask`); the whole box without it.
    sampled : torch.Tensor, bool, shape (D, D, D//2 + 1), optional
        The frequencies the data hold, on the real-FFT half grid
        (:meth:`~cryosplat.validation.sampling.SampledFrequencies.mask` at
        :data:`BLEND_SAMPLED_WEIGHT`): elsewhere the inversions hold nothing or little, so the
        half maps stay the models' there and ``α`` is estimated over the others (module
        docstring). Default: all.
    shrunk : (array-like, array-like), shape (D, D, D), optional
        The same halves' inversions with the Wiener constant
        :data:`~cryosplat.validation.shrunk_blend.SHRUNK_REGULARIZATION`: shells where the map
        gains by them take them in place of ``data`` (:mod:`cryosplat.validation.shrunk_blend`).
        Default: none.
    """
    given = (model_a, model_b, data_a, data_b) + (() if shrunk is None else tuple(shrunk))
    shapes = [np.shape(m) for m in given]
    shape = shapes[0]
    if len(shape) != 3 or len(set(shape)) != 1 or any(s != shape for s in shapes):
        raise ValueError(
            f"the half models' and the data's maps must be cubes of one shape, got {shapes}"
        )
    maps = [torch.as_tensor(np.asarray(m), dtype=torch.float64, device=device) for m in given[:2]]
    device = maps[0].device
    grid = half_grid_shells(shape[0], device)
    weight = None
    if mask is not None:
        weight = torch.as_tensor(np.asarray(mask), dtype=torch.float64, device=device)
        if weight.shape != shape:
            raise ValueError(f"mask has shape {tuple(weight.shape)}, the maps {tuple(shape)}")

    def spectrum(m) -> torch.Tensor:  # one masked map at a time (at box 256 each is 134 MB)
        m = torch.as_tensor(np.asarray(m), dtype=torch.float64, device=device)
        return torch.fft.rfftn(m if weight is None else m * weight)

    spectra = [spectrum(m) for m in given]
    if sampled is not None:
        sampled = sampled.to(device)
        if sampled.shape != spectra[0].shape:
            raise ValueError(
                f"sampled has shape {tuple(sampled.shape)}, the maps' half spectra "
                f"{tuple(spectra[0].shape)}"
            )
    alpha, terms, kept = _weights(tuple(spectra[:4]), grid, sampled)
    take = torch.zeros_like(alpha, dtype=torch.bool)
    model_weight = alpha
    if shrunk is not None:
        models, data, shrunk_spectra = spectra[0:2], spectra[2:4], spectra[4:6]
        choice = shrunk_terms(models, data, shrunk_spectra, terms, kept.cross)
        take, beta = shrunk_choice(alpha, choice)
        model_weight = torch.where(take, beta, alpha)
    shells = grid[0].clamp_max(shape[0] // 2 + 1)  # past Nyquist: the model (no data there)

    def per_point(weights: torch.Tensor) -> torch.Tensor:
        """The model's weight at every frequency: 1 past Nyquist and where no view samples."""
        point = torch.cat([weights, weights.new_ones(1)])[shells]
        return point if sampled is None else torch.where(sampled, point, 1.0)

    # A' = M + (1 − α)·(D − M) (or (1 − β)·(S − M)), the correction taken where α was estimated
    # (in the mask): the data's noise in the solvent, which α did not weigh, stays out of the map.
    def blended(weights: torch.Tensor, data: list[torch.Tensor]) -> list[np.ndarray]:
        return [
            (maps[i] + torch.fft.irfftn((1.0 - weights) * (data[i] - spectra[i]), s=shape))
            .cpu()
            .numpy()
            for i in (0, 1)
        ]

    plain = halves = blended(per_point(alpha), spectra[2:4])
    if take.any():
        from_shrunk = torch.cat([take, take.new_zeros(1)])[shells]
        data = [torch.where(from_shrunk, spectra[i + 4], spectra[i + 2]) for i in (0, 1)]
        halves = blended(per_point(model_weight), data)
    return Blend(
        (halves[0], halves[1]),
        model_weight.cpu().numpy(),
        alpha.cpu().numpy(),
        take.cpu().numpy(),
        (plain[0], plain[1]),
    )


def masked_mean_correction(
    model: ArrayLike, data: ArrayLike, alpha: ArrayLike, mask: ArrayLike | None = None
) -> float:
    """The zero-frequency part of the blend's correction of one half: ``(1 − α(1)) ⟨m (D − M)⟩``
    (module docstring), a constant to add to that half of the map.

    Parameters
    ----------
    model, data : array-like, shape (D, D, D)
        The half model's map and its half set's direct inversion, as :func:`blend_halves` took
        them.
    alpha : array-like (D//2 + 1,)
        The blend's ``α`` per shell, as :func:`blend_halves` returned it (``Blend.alpha``).
    mask : array-like, shape (D, D, D), optional
        The mask the blend was taken in; the whole box without it.

    Returns
    -------
    float, in the maps' units.
    """
    model, data = np.asarray(model), np.asarray(data)
    if model.shape != data.shape or model.ndim != 3:
        raise ValueError(
            f"model and data must be maps of one shape, got {model.shape} and {data.shape}"
        )
    weights = np.asarray(alpha, dtype=np.float64)
    if weights.ndim != 1 or len(weights) < 2:
        raise ValueError(f"alpha must be one weight per shell, got shape {weights.shape}")
    m = np.ones(model.shape) if mask is None else np.asarray(mask)
    if m.shape != model.shape:
        raise ValueError(f"mask has shape {m.shape}, the maps {model.shape}")
    # float64 sums without a float64 copy of either map (at box 256 each is 134 MB)
    difference = np.einsum("ijk,ijk->", m, data, dtype=np.float64) - np.einsum(
        "ijk,ijk->", m, model, dtype=np.float64
    )
    return float((1.0 - weights[1]) * difference / model.size)
