"""The gridded loss: a map against Fourier sufficient statistics, without the images.

For statistics ``W``, ``B`` (:mod:`cryosplat.reconstruct.grid.statistics`) of images of box ``d``,

    ``L(V) = (1/d²) [Σ_K W(K) |X̂(K)|² − 2 Re(conj X̂(K) · B(K)) + data_power]``

with ``X̂ = pixel · DFT(pad(V · apodisation))`` the padded transform of the map (density per Å³)
in the units of the image spectra. ``L`` is the sum over images of squared pixel residuals. The map
is multiplied by the real-space apodisation of trilinear insertion
(:func:`cryosplat.core.padded_transform.trilinear_apodization`), so that the minimiser is the unapodised
density, as RELION's gridding correction gives. The sum runs over the full grid; on the stored half
grid the ``Kx > 0`` points count twice (:func:`half_grid_multiplicity`). One evaluation is a real
FFT of the zero-padded map; the backward pass is analytic (one inverse real FFT).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.coarse_spectrum import (
    add_coarse_spectrum,
    coarse_offset,
    coarse_spectrum_adjoint,
    embed_coarse_spectrum,
)
from cryosplat.core.fourier import squared_radius
from cryosplat.core.padded_transform import (
    corner_rfft_adjoint,
    trilinear_apodization,
    wrapped_to_corner_phase,
)
from cryosplat.model.gaussians import GaussianModel
from cryosplat.model.two_grid import TwoGridVolume
from cryosplat.reconstruct.grid.statistics import FourierStatistics, padded_shell_index

__all__ = [
    "GridLoss",
    "gridded_loss",
    "half_grid_multiplicity",
    "low_shell_weights",
    "noise_power_by_shell",
    "pooled_fsc",
    "shell_prior_ratios",
]

MAX_LOW_SHELL_RATIO = 20.0


def half_grid_multiplicity(
    shape: Sequence[int],
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Weights (1, 1, P//2 + 1) turning a half-grid sum into the full-grid sum: 1 at ``Kx = 0``, else 2."""
    m = torch.full((1, 1, shape[-1]), 2.0, device=device, dtype=dtype)
    m[..., 0] = 1.0
    return m


def noise_power_by_shell(stats: FourierStatistics) -> torch.Tensor:
    """Noise power per image pixel in each one-pixel frequency shell, estimated from the data.

    The images' power in shell ``k`` less what the best map on the statistics' grid explains
    (``Σ |B|² / W``, the minimum of the gridded loss voxel by voxel), over the number of image
    pixels in the shell: the residual power of a maximum-likelihood fit, i.e. the noise (coloured
    by the detector and the ice) plus what no map can hold. Shells without data repeat their
    neighbour. Returns float64 (``floor(max_radius) + 1``,), index = shell.
    """
    n_shells = int(math.floor(stats.max_radius)) + 1
    r2 = torch.arange(stats.power.shape[0], dtype=torch.float64)
    shell2d = torch.round(torch.sqrt(r2)).long().clamp_max(n_shells - 1)
    power = torch.zeros(n_shells, dtype=torch.float64).index_add_(
        0, shell2d, stats.power.double().cpu()
    )
    radius = torch.sqrt(squared_radius(stats.box, 2, dtype=torch.float64))
    inside = radius <= stats.max_radius
    pixels = torch.zeros(n_shells, dtype=torch.float64).index_add_(
        0,
        torch.round(radius[inside]).long().clamp_max(n_shells - 1),
        torch.ones(int(inside.sum()), dtype=torch.float64),
    )
    weights = torch.fft.ifftshift(stats.weights.double().cpu(), dim=(0, 1))
    data = torch.fft.ifftshift(stats.data.cpu(), dim=(0, 1))
    explained = data.abs().square().double() / weights.clamp_min(1e-12 * float(weights.max()))
    explained = explained * half_grid_multiplicity(weights.shape, dtype=torch.float64)
    shell3d = padded_shell_index(stats.padded_box, stats.pad, "cpu")
    keep = shell3d < n_shells
    fitted = torch.zeros(n_shells, dtype=torch.float64).index_add_(
        0, shell3d[keep], explained[keep]
    )
    noise = (power - fitted).clamp_min(0.05 * power) / (stats.n_particles * pixels).clamp_min(1)
    good = (pixels > 0) & (power > 0)
    if not bool(good.any()):
        return torch.ones(n_shells, dtype=torch.float64)
    idx = torch.arange(n_shells)
    valid = idx[good]
    nearest = valid[torch.argmin((idx[:, None] - valid[None, :]).abs(), dim=1)]
    return noise[nearest]


def low_shell_weights(stats: FourierStatistics) -> torch.Tensor:
    """Weights that lift the shells the CTF leaves nearly empty, below its first maximum.

    ``W`` (the summed CTF²) is small at the lowest frequencies, where the CTF is about its
    amplitude contrast (``Q² ≈ 0.01``): there the squared error barely weighs the map's overall
    shape, its envelope and its negative halo, and a fit of Gaussians reaches them last (FSC 0.97
    with the truth at the first shell where a direct inversion has 0.999; issue 11). Each shell
    ``k`` below the shell of the largest mean ``W`` gets ``sqrt(mean W(peak) / mean W(k))`` (the
    ratio capped at :data:`MAX_LOW_SHELL_RATIO`), every other shell 1. The minimiser of the loss
    over all maps is unchanged (``B / W`` voxel by voxel); only the fit's priorities change. The
    square root is a compromise measured on the map-based benchmark sets: the full ratio lifts the
    first shell most but, under coloured noise (strong at low frequency), costs the middle band
    (beta-galactosidase: FSC-truth 0.5 at 18.8 Å against 15.1 Å without and 15.2 Å with the root).

    Returns float64 (``floor(max_radius) + 1``,), index = image-frequency shell (as
    :func:`noise_power_by_shell`).
    """
    mean = stats.mean_weight_by_shell()
    n_shells = mean.shape[0]
    out = torch.ones(n_shells, dtype=torch.float64)
    if n_shells < 3 or not float(mean[1:].max()) > 0:
        return out
    peak = int(torch.argmax(mean[1:])) + 1
    ratio = float(mean[peak]) / mean[1:peak].clamp_min(float(mean[peak]) / MAX_LOW_SHELL_RATIO)
    out[1:peak] = ratio.sqrt()
    out[0] = out[1]
    return out


def pooled_fsc(half_fsc: ArrayLike, pool_shells: int) -> np.ndarray:
    """``half_fsc`` with each shell but the first replaced by the mean over ``pool_shells``
    shells on each side of it (fewer at the ends; shell 0 is left out of every mean).

    Parameters
    ----------
    half_fsc : array (M,)
        FSC by shell, shell 0 first.
    pool_shells : int
        Non-negative; 0 returns the curve as it is.

    Returns float64 (M,).
    """
    if pool_shells < 0:
        raise ValueError(f"pool_shells must be non-negative, got {pool_shells}")
    curve = np.asarray(half_fsc, dtype=np.float64).reshape(-1)
    if pool_shells == 0 or curve.size < 3:
        return curve.copy()
    out = curve.copy()
    for k in range(1, curve.size):
        out[k] = curve[max(1, k - pool_shells) : k + pool_shells + 1].mean()
    return out


def shell_prior_ratios(
    half_fsc: ArrayLike,
    n_shells: int,
    strength: float,
    cap: float,
    pool_shells: int = 0,
    weight_ratio: torch.Tensor | ArrayLike | None = None,
) -> torch.Tensor:
    """The prior term of each shell relative to the shell's mean ``W``: ``λ(k) / W̄(k)``.

    A Gaussian prior on the map's Fourier coefficients, of variance ``τ²(k)`` per shell, adds
    ``λ(k) |X̂|²`` to the loss with ``λ = σ² / τ²`` (RELION's regularised likelihood: the
    minimiser over all maps becomes ``B / (W + λ)``). The FSC of the two halves' direct
    inversions gives the signal's power: ``τ² / σ² = FSC / (1 − FSC) / W_F`` with ``W_F`` the
    shell's ``W`` as that FSC sees it
    (:meth:`~cryosplat.reconstruct.grid.statistics.FourierStatistics.fsc_weight_by_shell`; the
    mean ``W̄`` where every direction is sampled alike, less where the views are uneven), so
    ``λ / W̄ = strength · (W_F / W̄) · (1 − FSC) / FSC``, at most ``cap``. ``strength = 1`` is
    the Bayesian value for a map free voxel by voxel; a mixture of Gaussians is a stronger prior
    of its own and measured best with less (see ``GridFitConfig.prior_strength``). The cap
    keeps shells with no signal from dominating the fit: a Gaussian can only lower its content
    there by spreading out, which costs the shells that hold signal.

    Parameters
    ----------
    half_fsc : array (M,)
        FSC between the half sets' direct inversions, index = shell (pixels of the full box);
        shells past its end repeat its last value.
    n_shells : int
        Number of shells wanted (``floor(max_radius) + 1`` of the statistics).
    strength, cap : float
        Non-negative.
    pool_shells : int
        The FSC pooled over this many shells on each side first (:func:`pooled_fsc`;
        ``GridFitConfig.prior_pool_shells``).
    weight_ratio : array (L,), optional
        ``W_F / W̄`` per shell, positive (shells past its end repeat its last value); 1 (views
        sampled alike) when not given.

    Returns float64 (``n_shells``,).
    """
    if not strength >= 0 or not cap >= 0:
        raise ValueError(f"strength and cap must be non-negative, got {strength}, {cap}")
    curve = np.asarray(half_fsc, dtype=np.float64).reshape(-1)
    if curve.size == 0:
        raise ValueError("half_fsc is empty")
    fsc = _per_shell(
        torch.as_tensor(pooled_fsc(np.nan_to_num(curve, nan=0.0), pool_shells)), n_shells
    )
    fsc = fsc.clamp(1e-3, 0.999)  # NaN already 0 (above)
    ratios = strength * (1.0 - fsc) / fsc
    if weight_ratio is not None:
        ratio = torch.as_tensor(np.asarray(weight_ratio, dtype=np.float64)).reshape(-1)
        if ratio.numel() == 0 or not bool((ratio > 0).all()):
            raise ValueError("weight_ratio must hold positive values")
        ratios = ratios * _per_shell(ratio, n_shells)
    return ratios.clamp_max(cap)


def _per_shell(values: torch.Tensor, n_shells: int) -> torch.Tensor:
    """The first ``n_shells`` values, the last repeated where there are fewer."""
    if values.numel() < n_shells:
        values = torch.cat([values, values[-1:].expand(n_shells - values.numel())])
    return values[:n_shells]


class _SpectrumLoss(torch.autograd.Function):
    """``(volume, coarse) → (loss less constant, spectrum)`` with an analytic backward.

    ``F = rfftn(map, s=(P,) * 3)`` (the map zero-padded at its corner: voxel ``i`` at index
    ``i``; ``B`` must be stated for that placement, :func:`~cryosplat.core.padded_transform.wrapped_to_corner_phase`),
    plus, when a ``coarse`` map (box D/2, twice the voxel) is given, its spectrum taken to the fine
    grid (:func:`~cryosplat.core.coarse_spectrum.add_coarse_spectrum`);
    ``L = Σ W|F|² − 2 Σ Re(conj(F) B)``; ``∂L/∂F = 2(W F − B)`` and the map gradient is
    :func:`~cryosplat.core.padded_transform.corner_rfft_adjoint` of it (the coarse map's through
    :func:`~cryosplat.core.coarse_spectrum.coarse_spectrum_adjoint` first). Only the residual
    ``W F − B`` is kept for the backward pass (plain autograd, :func:`spectrum_loss_reference`,
    keeps more grids: at large boxes these are most of the memory); no gradient grid is made for
    the spectrum, which is not differentiable.
    """

    @staticmethod
    def forward(ctx, volume, coarse, weights, data, size):
        spectrum = torch.fft.rfftn(volume, s=(size, size, size))
        ctx.box, ctx.size = volume.shape[-1], size
        if coarse is not None:
            half = size // 2
            coarse_spectrum = torch.fft.rfftn(coarse, s=(half, half, half))
            add_coarse_spectrum(spectrum, coarse_spectrum, coarse_offset(ctx.box))
        loss, residual = _data_term_and_residual(spectrum, weights, data)
        ctx.save_for_backward(residual)
        ctx.coarse_box = None if coarse is None else coarse.shape[-1]
        ctx.mark_non_differentiable(spectrum)
        ctx.set_materialize_grads(False)
        return loss, spectrum

    @staticmethod
    def backward(ctx, grad_loss, grad_spectrum):
        if grad_loss is None:
            return None, None, None, None, None
        (residual,) = ctx.saved_tensors
        volume_grad = corner_rfft_adjoint(residual, ctx.box, ctx.size, scale=2.0)
        coarse_grad = None
        if ctx.coarse_box is not None and ctx.needs_input_grad[1]:
            coarse_residual = coarse_spectrum_adjoint(residual, coarse_offset(ctx.box))
            coarse_grad = corner_rfft_adjoint(
                coarse_residual, ctx.coarse_box, ctx.size // 2, scale=2.0
            )
            coarse_grad = coarse_grad * grad_loss
        return volume_grad * grad_loss, coarse_grad, None, None, None


def _data_term_and_residual(spectrum, weights, data) -> tuple[torch.Tensor, torch.Tensor]:
    """``Σ W|F|² − 2 Σ Re(conj(F) B)`` and the residual ``W F − B``: ``Σ Re(conj(F)(WF − B)) −
    Σ Re(conj(F) B)`` as two real dot products.

    ``W F`` is made on the real views (``(…, 2)`` times ``W[..., None]``) straight into the
    residual, no grid made besides it: a real ``W`` times a complex grid of the same shape takes
    PyTorch's casting path (this function alone at box 56, pad 2, one thread, torch 2.13: 7.4
    against 2.1 ms; the loss's forward and backward 12.7–13.3 against 12.3–12.7 ms, the fastest of
    40 in four alternations; round 2 session 23)."""
    residual = torch.empty_like(spectrum)
    real = torch.view_as_real(residual)
    torch.mul(torch.view_as_real(spectrum), weights.unsqueeze(-1), out=real)
    real -= torch.view_as_real(data)  # in place: one grid fewer made per step
    flat = torch.view_as_real(spectrum).reshape(-1)
    loss = torch.dot(flat, real.reshape(-1))
    loss = loss - torch.dot(flat, torch.view_as_real(data).reshape(-1))
    return loss, residual


def spectrum_loss_reference(
    volume: torch.Tensor,
    coarse: torch.Tensor | None,
    weights: torch.Tensor,
    data: torch.Tensor,
    size: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """:class:`_SpectrumLoss` in plain PyTorch autograd (same arguments and results).

    The twin the custom backward is tested against; slower and with more memory.
    """
    spectrum = torch.fft.rfftn(volume, s=(size, size, size))
    if coarse is not None:
        half = size // 2
        coarse_spectrum = torch.fft.rfftn(coarse, s=(half, half, half))
        offset = coarse_offset(volume.shape[-1])
        spectrum = spectrum + embed_coarse_spectrum(coarse_spectrum, size, offset)
    loss = (spectrum.conj() * (weights * spectrum - 2.0 * data)).real.sum()
    return loss, spectrum.detach()


class GridLoss:
    """The loss of :mod:`cryosplat.reconstruct.grid.statistics` for maps on one statistics grid.

    ``loss(V) = (1/d²) [Σ_K W |X̂|² − 2 Re(conj X̂ · B) + data_power]`` with ``X̂ = pixel · c ·
    DFT(pad(V · apodisation))``: the sum over images of squared pixel residuals (images of box d).

    Parameters
    ----------
    stats : FourierStatistics
    amplitude_scale : float
        ``c``: the map is multiplied by this before the comparison (fits in relative units).
    gridding_correction : bool
        Apodise maps as trilinear insertion does.
    device, dtype : where and in which real precision to evaluate.
    exclude_zero_frequency : bool
        Leave the zero frequency out (``W(0) = B(0) = 0``; the constant term keeps the images'
        power): the images' means, which normalisation sets to a zero background, are not fitted.
    shell_weights : torch.Tensor, optional
        A weight per image-frequency shell (index ``round(|k|)`` in pixels of the full box, as
        :func:`noise_power_by_shell`; a cropped stage keeps the indices): every term of shell
        ``k`` is multiplied by it, e.g. the inverse noise power for a maximum-likelihood fit under
        coloured Gaussian noise.
    prior_ratios : torch.Tensor, optional
        ``λ(k) / W̄(k)`` per shell (:func:`shell_prior_ratios`, same indices): ``λ(k) |X̂|²`` is
        added to the loss, ``W̄`` being the statistics' mean ``W`` in the shell (on a cropped
        stage, the crop's). Shells past its end get none.
    """

    def __init__(
        self,
        stats: FourierStatistics,
        amplitude_scale: float = 1.0,
        gridding_correction: bool = True,
        device=None,
        dtype=torch.float32,
        exclude_zero_frequency: bool = False,
        shell_weights: torch.Tensor | None = None,
        prior_ratios: torch.Tensor | None = None,
    ) -> None:
        device = stats.weights.device if device is None else torch.device(device)
        self.box, self.pad, self.size = stats.box, stats.pad, stats.padded_box
        self.pixel_size_angstrom = stats.pixel_size_angstrom
        self.n_particles = stats.n_particles
        self.constant = stats.data_power / self.box**2
        scale = stats.pixel_size_angstrom * amplitude_scale
        norm = 1.0 / self.box**2
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        # Loss = norm·[Σ (s²W)|F|² − 2 Re Σ conj(F)(s B)]; ``weights`` and ``data`` hold it. Built
        # in the working precision and in place: at large boxes these grids are most of the memory.
        mult = half_grid_multiplicity(stats.weights.shape, stats.weights.device, dtype)
        weights = torch.fft.ifftshift(stats.weights.to(dtype) * mult, dim=(0, 1))
        shells = None
        if shell_weights is not None or prior_ratios is not None:
            shells = padded_shell_index(self.size, self.pad, weights.device)
        if prior_ratios is not None:
            mean = stats.mean_weight_by_shell()
            n = min(prior_ratios.shape[0], mean.shape[0])
            lam = torch.zeros(n + 1, dtype=torch.float64)
            lam[:n] = prior_ratios[:n].to(torch.float64).cpu() * mean[:n]
            weights += lam.to(weights.device)[shells.clamp_max(n)].to(dtype) * mult
        weights *= scale**2 * norm
        data = torch.fft.ifftshift(stats.data.to(complex_dtype) * mult, dim=(0, 1))
        data *= scale * norm
        if shell_weights is not None:
            shell_weights = shell_weights.to(torch.float64).cpu()
            shells = shells.clamp_max(shell_weights.shape[0] - 1)
            factor = shell_weights.to(data.device)[shells].to(dtype)
            weights *= factor
            data *= factor
            r2 = torch.arange(stats.power.shape[0], dtype=torch.float64)
            shell2d = torch.round(torch.sqrt(r2)).long().clamp_max(shell_weights.shape[0] - 1)
            self.constant = float((stats.power.double().cpu() * shell_weights[shell2d]).sum())
            self.constant /= self.box**2
        if exclude_zero_frequency:  # index 0 of the uncentred grid is K = 0
            weights[0, 0, 0] = 0.0
            data[0, 0, 0] = 0.0
        # The statistics are stated for the map's origin at index 0; the loss places it at the
        # corner (cheaper transforms), so the data take the phase of that shift.
        along_zy, along_x = wrapped_to_corner_phase(self.box, self.size, data.device, data.dtype)
        data *= along_zy[:, None, None]
        data *= along_zy[None, :, None]
        data *= along_x
        self.weights = weights.to(device)
        self.data = data.to(device)
        insertion_pad = stats.insertion_pad or stats.pad
        apodization = trilinear_apodization(self.box, insertion_pad, device, dtype)
        self.apodization = apodization if gridding_correction else None
        # the apodisation at the coarse grid's voxels (coarse voxel j is fine voxel 2j + c)
        self._coarse_apodization = None
        if self.apodization is not None and self.box % 2 == 0:
            step = slice(coarse_offset(self.box), None, 2)
            self._coarse_apodization = self.apodization[step, step, step].contiguous()

    def rescale(self, factor: float) -> None:
        """Compare ``factor · map`` from now on (``amplitude_scale`` times ``factor``)."""
        self.weights *= factor**2
        self.data *= factor

    def data_term_and_spectrum(
        self, volume: torch.Tensor | TwoGridVolume
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(1/d²)[Σ W|X̂|² − 2 Re(conj X̂ B)]`` (the loss less its constant; differentiable)
        and the half spectrum of the (apodised) map zero-padded at its corner, for :meth:`data_term`.

        ``volume`` is a D³ map, or a :class:`~cryosplat.model.two_grid.TwoGridVolume` whose
        coarse part is taken to this grid's spectrum (:mod:`cryosplat.core.coarse_spectrum`)."""
        parts = volume if isinstance(volume, TwoGridVolume) else TwoGridVolume(volume)
        fine, coarse = parts.fine, parts.coarse
        if tuple(fine.shape) != (self.box,) * 3:
            raise ValueError(f"volume has shape {tuple(fine.shape)}, expected {(self.box,) * 3}")
        if coarse is not None and (self.box % 2 or tuple(coarse.shape) != (self.box // 2,) * 3):
            raise ValueError(
                f"coarse part has shape {tuple(coarse.shape)}, expected {(self.box // 2,) * 3} "
                f"(and an even box, got {self.box})"
            )
        if self.apodization is not None:
            fine = fine * self.apodization
            if coarse is not None:
                coarse = coarse * self._coarse_apodization
        return _SpectrumLoss.apply(fine, coarse, self.weights, self.data, self.size)

    def data_term(self, spectrum: torch.Tensor) -> torch.Tensor:
        """The loss less its constant for a spectrum from another grid's
        :meth:`data_term_and_spectrum` (same box and pad; e.g. held-out statistics)."""
        return _data_term_and_residual(spectrum, self.weights, self.data)[0]

    def __call__(self, volume: torch.Tensor) -> torch.Tensor:
        """The full loss (scalar tensor) of a map (D, D, D) on this grid."""
        return self.data_term_and_spectrum(volume)[0] + self.constant

    def best_scale(self, spectrum: torch.Tensor, max_radius: float) -> float:
        """Least-squares factor ``α`` minimising the loss of ``α · map`` (``spectrum`` from
        :meth:`data_term_and_spectrum`) over ``|k| ≤ max_radius`` (pixels)."""
        r2 = squared_radius(self.size, 3, half=True, centred=False, device=spectrum.device)
        low = r2 <= (self.pad * max_radius) ** 2
        quad = (self.weights * spectrum.abs().square())[low].sum()
        cross = (spectrum.conj() * self.data).real[low].sum()
        return float(cross / quad.clamp_min(1e-30))


def gridded_loss(
    model_or_volume: GaussianModel | torch.Tensor,
    stats: FourierStatistics,
    gridding_correction: bool = True,
    n_sigma: float = 3.0,
) -> torch.Tensor:
    """Loss of a model or map against the statistics: the sum over images of squared residuals.

    Parameters
    ----------
    model_or_volume : GaussianModel or torch.Tensor (D, D, D)
        A model is voxelised on the statistics' grid (box and pixel size); a map must be on it.
    stats : FourierStatistics
    gridding_correction : bool
        Apodise the map as trilinear insertion does.
    n_sigma : float
        Voxelisation footprint of a model.

    Returns
    -------
    torch.Tensor, scalar, differentiable in the model's parameters or the map.
    """
    if isinstance(model_or_volume, GaussianModel):
        volume = model_or_volume.voxelize(stats.box, stats.pixel_size_angstrom, n_sigma=n_sigma)
    else:
        volume = model_or_volume
    return GridLoss(stats, 1.0, gridding_correction, volume.device, volume.dtype)(volume)
