"""Fit a Gaussian mixture to Fourier sufficient statistics, coarse to fine.

The loss of :mod:`cryosplat.statistics` is evaluated for the mixture by voxelising it
(:func:`cryosplat.gaussians.voxelize_gaussians`, each Gaussian in its footprint), multiplying by the
real-space apodisation of trilinear insertion (so that the fitted map is the unapodised density, as
RELION's gridding correction gives), zero-padding and a real FFT; no image is read, so a step costs
the same for 1,000 or 1,000,000 particles.

Coarse to fine: stage ``s`` crops the statistics to a box ``d_s`` (:meth:`FourierStatistics.crop`:
same physical extent, pixel ``pixel · D / d_s``, frequencies below its Nyquist limit) and voxelises
on that grid, so most steps are cheap. Each stage runs Adam with exponentially decaying learning
rates and ends after its step budget or when its stopping rule fires: with ``heldout`` statistics
(the other half set) the held-out loss (an unbiased estimate of the prediction error on independent
images) must improve within ``patience`` checks, and the best parameters seen are kept; without, the
training loss must keep improving by ``min_improvement`` (relative, over its data-dependent part).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from cryosplat.errors import InputError
from cryosplat.fourier_slice import trilinear_apodization
from cryosplat.gaussians import GaussianModel, inverse_softplus, voxelize_gaussians
from cryosplat.statistics import FourierStatistics, half_grid_multiplicity

__all__ = ["GridFitConfig", "GridLoss", "gridded_loss", "fit_gaussians", "stage_boxes"]


@dataclass
class GridFitConfig:
    """Settings of :func:`fit_gaussians`.

    Attributes
    ----------
    n_gaussians : int
        Size of the random initial model (ignored when a model is given).
    stage_fractions : tuple of float
        Box of each stage as a fraction of the full box (rounded to even, at least 8), coarse to
        fine; the last should be 1.
    stage_steps : tuple of int
        Largest number of Adam steps of each stage.
    lr_means_pixels : float
        Adam learning rate of the means, in pixels of the stage grid.
    lr_scales_pixels : float
        Adam learning rate of the raw (softplus) scales, in pixels of the stage grid.
    lr_quaternions, lr_amplitudes : float
        Adam learning rates of the raw quaternions and raw (softplus) amplitudes; amplitudes are
        fitted relative to their mean, so this is about a relative step.
    lr_final_fraction : float
        Learning rates decay exponentially to this fraction over each stage's step budget.
    min_scale_pixels, max_scale_pixels : float
        Scales are kept within these many pixels of the stage grid: the sampling limit below; above,
        a bound on the footprint (a misplaced Gaussian would otherwise spread out rather than
        fade).
    init_radius_fraction : float
        Random initial means fill a ball of this radius (fraction of the box edge).
    n_sigma : float
        Voxelisation footprint half-width in standard deviations.
    gridding_correction : bool
        Apodise the voxelised map as trilinear insertion does (recommended).
    check_every : int
        Steps between evaluations of the stopping rule (and calls of ``callback``).
    patience : int
        Checks without improvement before a stage ends.
    min_improvement : float
        Relative improvement of the criterion that counts as one.
    seed : int
        Seed of the random initial model.
    device : str
        torch device of the fit.
    """

    n_gaussians: int = 3000
    stage_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    stage_steps: tuple[int, ...] = (40, 20, 20, 15)
    lr_means_pixels: float = 0.2
    lr_scales_pixels: float = 0.02
    lr_quaternions: float = 0.01
    lr_amplitudes: float = 0.1
    lr_final_fraction: float = 0.1
    min_scale_pixels: float = 0.5
    max_scale_pixels: float = 1.0
    init_radius_fraction: float = 0.3
    n_sigma: float = 3.0
    gridding_correction: bool = True
    check_every: int = 5
    patience: int = 3
    min_improvement: float = 1e-4
    seed: int = 0
    device: str = "cpu"

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first bad setting."""
        if self.n_gaussians < 1:
            raise InputError(f"n_gaussians must be at least 1, got {self.n_gaussians}")
        if not self.stage_fractions or len(self.stage_fractions) != len(self.stage_steps):
            raise InputError(f"stage_fractions {self.stage_fractions} and stage_steps "
                             f"{self.stage_steps} must be non-empty and of equal length")
        if any(not 0 < f <= 1 for f in self.stage_fractions):
            raise InputError(f"stage_fractions must lie in (0, 1], got {self.stage_fractions}")
        if any(s < 0 for s in self.stage_steps):
            raise InputError(f"stage_steps must be non-negative, got {self.stage_steps}")
        positive = ("lr_means_pixels", "lr_scales_pixels", "lr_quaternions", "lr_amplitudes",
                    "lr_final_fraction", "min_scale_pixels", "init_radius_fraction", "n_sigma")
        if not self.max_scale_pixels >= self.min_scale_pixels:
            raise InputError(f"max_scale_pixels ({self.max_scale_pixels}) must be at least "
                             f"min_scale_pixels ({self.min_scale_pixels})")
        for name in positive:
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")
        if self.check_every < 1 or self.patience < 1:
            raise InputError(f"check_every and patience must be at least 1, got "
                             f"{self.check_every} and {self.patience}")


def stage_boxes(box: int, fractions) -> list[int]:
    """Even stage boxes ``round(f · box)`` (at least 8, at most ``box``), one per fraction."""
    return [min(box, max(8, 2 * round(f * box / 2))) for f in fractions]


def _fft_order_phase(size: int, pad: int, device) -> torch.Tensor:
    """``exp(iπ(Kx + Ky + Kz)/pad)`` on the rfft grid: moves the map origin from index 0 to D/2."""
    k = torch.fft.fftfreq(size, 1.0 / size, device=device, dtype=torch.float64)
    kx = torch.arange(size // 2 + 1, device=device, dtype=torch.float64)
    total = k[:, None, None] + k[None, :, None] + kx[None, None, :]
    return torch.polar(torch.ones_like(total), math.pi * total / pad)


class _SpectrumLoss(torch.autograd.Function):
    """``(volume) → (loss less constant, spectrum)`` with an analytic backward.

    ``F = rfftn(volume, s=(P,)*3)``, ``L = Σ W|F|² − 2 Σ Re(conj(F) B)``; ``∂L/∂F = 2(W F − B)``
    and the adjoint of the zero-padded real FFT is ``P³ · irfftn`` (interior ``x`` planes halved,
    as ``irfftn`` counts them twice) cropped to the volume.
    """

    @staticmethod
    def forward(ctx, volume, weights, data, size):
        spectrum = torch.fft.rfftn(volume, s=(size,) * 3)
        residual = weights * spectrum - data
        loss = (spectrum.conj() * (residual - data)).real.sum()
        ctx.save_for_backward(residual)
        ctx.size, ctx.box = size, volume.shape[-1]
        ctx.mark_non_differentiable(spectrum)
        return loss, spectrum

    @staticmethod
    def backward(ctx, grad_loss, grad_spectrum):
        (residual,) = ctx.saved_tensors
        size, box = ctx.size, ctx.box
        grad = residual * (2.0 * size**3)
        grad[..., 1 : size // 2] *= 0.5
        volume_grad = torch.fft.irfftn(grad, s=(size,) * 3)[:box, :box, :box]
        return volume_grad * grad_loss, None, None, None


class GridLoss:
    """The loss of :mod:`cryosplat.statistics` for maps on one statistics grid.

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
    """

    def __init__(self, stats: FourierStatistics, amplitude_scale: float = 1.0,
                 gridding_correction: bool = True, device=None, dtype=torch.float32) -> None:
        device = stats.weights.device if device is None else torch.device(device)
        self.box, self.pad, self.size = stats.box, stats.pad, stats.padded_box
        self.pixel_size_angstrom = stats.pixel_size_angstrom
        self.n_particles = stats.n_particles
        self.constant = stats.data_power / self.box**2
        scale = stats.pixel_size_angstrom * amplitude_scale
        mult = half_grid_multiplicity(stats.weights.shape, stats.weights.device, torch.float64)
        weights = torch.fft.ifftshift(stats.weights.double() * mult, dim=(0, 1))
        data = torch.fft.ifftshift(stats.data.to(torch.complex128) * mult, dim=(0, 1))
        data = data * _fft_order_phase(self.size, self.pad, data.device).conj()
        norm = 1.0 / self.box**2
        complex_dtype = torch.complex128 if dtype == torch.float64 else torch.complex64
        # Loss = norm·[Σ (s²W)|F|² − 2 Re Σ conj(F)(s B)]; ``weights`` and ``data`` hold it.
        self.weights = (weights * scale**2 * norm).to(device=device, dtype=dtype)
        self.data = (data * scale * norm).to(device=device, dtype=complex_dtype)
        self.apodization = (trilinear_apodization(self.box, self.pad, device, dtype)
                            if gridding_correction else None)

    def data_term_and_spectrum(self, volume: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(1/d²)[Σ W|X̂|² − 2 Re(conj X̂ B)]`` (the loss less its constant; differentiable)
        and the uncentred padded rFFT of the (apodised) map, for :meth:`data_term`."""
        if tuple(volume.shape) != (self.box,) * 3:
            raise ValueError(f"volume has shape {tuple(volume.shape)}, expected {(self.box,) * 3}")
        if self.apodization is not None:
            volume = volume * self.apodization
        return _SpectrumLoss.apply(volume, self.weights, self.data, self.size)

    def data_term(self, spectrum: torch.Tensor) -> torch.Tensor:
        """The loss less its constant for a spectrum from another grid's
        :meth:`data_term_and_spectrum` (same box and pad; e.g. held-out statistics)."""
        return (spectrum.conj() * (self.weights * spectrum - 2.0 * self.data)).real.sum()

    def __call__(self, volume: torch.Tensor) -> torch.Tensor:
        """The full loss (scalar tensor) of a map (D, D, D) on this grid."""
        return self.data_term_and_spectrum(volume)[0] + self.constant

    def best_scale(self, spectrum: torch.Tensor, max_radius: float) -> float:
        """Least-squares factor ``α`` minimising the loss of ``α · map`` (``spectrum`` from
        :meth:`data_term_and_spectrum`) over ``|k| ≤ max_radius`` (pixels)."""
        k = torch.fft.fftfreq(self.size, 1.0 / self.size, device=spectrum.device)
        kx = torch.arange(self.size // 2 + 1, device=spectrum.device)
        r2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + kx[None, None, :] ** 2
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
    loss = GridLoss(stats, gridding_correction=gridding_correction, device=volume.device,
                    dtype=volume.dtype)
    return loss(volume)


class _Parameters:
    """Raw tensors of a mixture being fitted (amplitudes relative to ``amplitude_unit``)."""

    def __init__(self, model: GaussianModel, device) -> None:
        with torch.no_grad():
            amplitudes = model.amplitudes.detach().to(device, torch.float32)
            self.amplitude_unit = float(amplitudes.mean())
            self.means = model.means.detach().to(device, torch.float32).clone()
            self.raw_scales = model.raw_scales.detach().to(device, torch.float32).clone()
            self.raw_quaternions = model.raw_quaternions.detach().to(device, torch.float32).clone()
            self.raw_amplitudes = inverse_softplus(amplitudes / self.amplitude_unit)
        for t in self.tensors():
            t.requires_grad_(True)

    def tensors(self) -> list[torch.Tensor]:
        return [self.means, self.raw_scales, self.raw_quaternions, self.raw_amplitudes]

    def snapshot(self) -> list[torch.Tensor]:
        return [t.detach().clone() for t in self.tensors()]

    def restore(self, saved: list[torch.Tensor]) -> None:
        with torch.no_grad():
            for t, s in zip(self.tensors(), saved, strict=True):
                t.copy_(s)

    def voxelize(self, box: int, pixel: float, n_sigma: float) -> torch.Tensor:
        quaternions = self.raw_quaternions / self.raw_quaternions.norm(dim=-1, keepdim=True)
        return voxelize_gaussians(self.means, F.softplus(self.raw_scales), quaternions,
                                  F.softplus(self.raw_amplitudes), box, pixel, n_sigma=n_sigma)

    def clamp_scales(self, minimum_angstrom: float, maximum_angstrom: float) -> None:
        with torch.no_grad():
            bounds = inverse_softplus(torch.tensor([minimum_angstrom, maximum_angstrom],
                                                   dtype=torch.float64))
            self.raw_scales.clamp_(min=float(bounds[0]), max=float(bounds[1]))

    def model(self, amplitude_scale: float, box: int, pixel: float) -> GaussianModel:
        with torch.no_grad():
            quaternions = self.raw_quaternions / self.raw_quaternions.norm(dim=-1, keepdim=True)
            amplitudes = F.softplus(self.raw_amplitudes) * amplitude_scale
            return GaussianModel(self.means, F.softplus(self.raw_scales), quaternions,
                                 amplitudes.clamp_min(1e-30), box, pixel).to(self.means.device)


def _initial_model(stats: FourierStatistics, config: GridFitConfig, first_pixel: float):
    return GaussianModel.random(config.n_gaussians, stats.box, stats.pixel_size_angstrom,
                                seed=config.seed, radius_fraction=config.init_radius_fraction,
                                scale_angstrom=2.0 * first_pixel)


def _amplitude_factor(params: _Parameters, stats: FourierStatistics, config: GridFitConfig,
                      device) -> float:
    """Least-squares factor from the fitted (relative) amplitudes to the data's, at low resolution."""
    probe = GridLoss(stats, 1.0, config.gridding_correction, device)
    params.clamp_scales(config.min_scale_pixels * stats.pixel_size_angstrom,
                         config.max_scale_pixels * stats.pixel_size_angstrom)
    with torch.no_grad():
        volume = params.voxelize(stats.box, stats.pixel_size_angstrom, config.n_sigma)
        alpha = probe.best_scale(probe.data_term_and_spectrum(volume)[1], max_radius=2.0)
    if not alpha > 0:
        raise InputError("the images correlate negatively with any positive density at low "
                         "resolution: they may hold protein dark (invert their contrast)")
    return alpha


def fit_gaussians(
    stats: FourierStatistics,
    config: GridFitConfig | None = None,
    model: GaussianModel | None = None,
    heldout: FourierStatistics | None = None,
    progress: Callable[[int, int], None] | None = None,
    callback: Callable[[int, int, float, float | None], None] | None = None,
) -> GaussianModel:
    """Fit a Gaussian mixture to the statistics of one half set.

    Parameters
    ----------
    stats : FourierStatistics
        The half set to fit.
    config : GridFitConfig, optional
    model : GaussianModel, optional
        Starting model (not modified); default a random one (``GaussianModel.random`` with
        ``config.n_gaussians``, ``config.seed``). Its amplitudes are rescaled to the data first.
    heldout : FourierStatistics, optional
        Statistics of independent images (the other half set) for the stopping rule.
    progress : callable(done, total), optional
        Called after every step (``total`` = the sum of the step budgets).
    callback : callable(stage, step, loss, heldout_loss), optional
        Called at every check with the stage index, the step within it, the training loss per
        particle and the held-out loss per particle (None without ``heldout``), both without their
        constant terms.

    Returns
    -------
    GaussianModel on ``config.device`` with the box and pixel size of ``stats``.
    """
    config = GridFitConfig() if config is None else config
    config.validate()
    if heldout is not None:
        stats._check_compatible(heldout)
    device = torch.device(config.device)
    boxes = stage_boxes(stats.box, config.stage_fractions)
    first_pixel = stats.pixel_size_angstrom * stats.box / boxes[0]
    start = _initial_model(stats, config, first_pixel) if model is None else model
    params = _Parameters(start, device)
    total_steps = sum(config.stage_steps)
    done = 0
    alpha = _amplitude_factor(params, stats.crop(boxes[0]), config, device)
    for stage, (box, budget) in enumerate(zip(boxes, config.stage_steps, strict=True)):
        stage_stats = stats.crop(box)
        pixel = stage_stats.pixel_size_angstrom
        loss_fn = GridLoss(stage_stats, alpha, config.gridding_correction, device)
        held_fn = (None if heldout is None else
                   GridLoss(heldout.crop(box), alpha, config.gridding_correction, device))
        params.clamp_scales(config.min_scale_pixels * pixel, config.max_scale_pixels * pixel)
        optimizer = torch.optim.Adam([
            {"params": [params.means], "lr": config.lr_means_pixels * pixel},
            {"params": [params.raw_scales], "lr": config.lr_scales_pixels * pixel},
            {"params": [params.raw_quaternions], "lr": config.lr_quaternions},
            {"params": [params.raw_amplitudes], "lr": config.lr_amplitudes},
        ])
        decay = config.lr_final_fraction ** (1.0 / max(budget, 1))
        schedule = torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=decay)
        best, best_state, stale = math.inf, None, 0
        for step in range(budget):
            data_term, spectrum = loss_fn.data_term_and_spectrum(
                params.voxelize(box, pixel, config.n_sigma))
            loss = data_term / stats.n_particles
            if step % config.check_every == 0 or step == budget - 1:
                with torch.no_grad():
                    held = (None if held_fn is None else
                            float(held_fn.data_term(spectrum)) / heldout.n_particles)
                criterion = float(loss) if held is None else held
                if math.isinf(best) or criterion < best - config.min_improvement * abs(best):
                    best, stale = criterion, 0
                    if held is not None:
                        best_state = params.snapshot()
                else:
                    stale += 1
                if callback is not None:
                    callback(stage, step, float(loss.detach()), held)
                if stale >= config.patience:
                    break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            params.clamp_scales(config.min_scale_pixels * pixel, config.max_scale_pixels * pixel)
            done += 1
            if progress is not None:
                progress(done, total_steps)
        if best_state is not None:
            params.restore(best_state)
    return params.model(alpha, stats.box, stats.pixel_size_angstrom)
