"""Fit a Gaussian mixture to Fourier sufficient statistics, coarse to fine.

The loss of :mod:`cryosplat.reconstruct.grid.loss` is evaluated for the mixture by voxelising it
(:func:`cryosplat.model.voxelize.voxelize_gaussians`, each Gaussian in its footprint; broad ones on a
grid of twice the voxel size where that is cheaper, :mod:`cryosplat.model.two_grid`); no image is
read, so a step costs the same for 1,000 or 1,000,000 particles. ``GridLoss`` and ``gridded_loss`` are
re-exported here.

Coarse to fine: stage ``s`` crops the statistics to a box ``d_s`` (:meth:`FourierStatistics.crop`:
same physical extent, pixel ``pixel · D / d_s``, frequencies below its Nyquist limit) and voxelises
on that grid, so most steps are cheap. Scales stay within ``[min, max]_scale_pixels`` stage pixels.
Each stage runs Adam with exponentially decaying learning rates and ends after its step budget or
when its stopping rule fires: with ``heldout`` statistics (images not fitted, e.g. 10 % of the
same half set; ``reconstruct --heldout-fraction``, none by default) the held-out loss, an unbiased
estimate of the prediction error on new images, must improve within ``patience`` checks, and the
best parameters seen are kept; without, the training loss must keep improving by
``min_improvement`` (relative, over its data-dependent part).

On a CPU shared with other work, ``torch.set_num_threads(1)`` is often 2–4× faster than the
default (many small tensor operations per step).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence

import torch
from numpy.typing import ArrayLike

from cryosplat.core.errors import InputError
from cryosplat.core.fourier import squared_radius
from cryosplat.core.optim import Adam
from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.grid.density_control import grow_heaviest, split_heaviest
from cryosplat.reconstruct.grid.fit_config import GridFitConfig
from cryosplat.reconstruct.grid.init_centre import initial_ball
from cryosplat.reconstruct.grid.loss import (
    GridLoss,
    gridded_loss,
    low_shell_weights,
    noise_power_by_shell,
)
from cryosplat.reconstruct.grid.parameters import FitParameters
from cryosplat.reconstruct.grid.prior import fit_prior_ratios
from cryosplat.reconstruct.grid.statistics import FourierStatistics

__all__ = [
    "GridFitConfig",
    "GridLoss",
    "gridded_loss",
    "fit_gaussians",
    "stage_boxes",
]


def stage_boxes(box: int, fractions: Iterable[float]) -> list[int]:
    """Even stage boxes ``round(f · box)`` (at least 8, at most ``box``), one per fraction."""
    return [min(box, max(8, 2 * round(f * box / 2))) for f in fractions]


def _scale_bounds(params: FitParameters, pixel: float, config: GridFitConfig) -> tuple:
    scale_pixels = (config.min_scale_pixels, config.max_scale_pixels)
    return params.scale_bounds(pixel, scale_pixels, config.negative_scale_pixels)


def _loss_options(config: GridFitConfig, shell_weights=None) -> dict:
    return {"exclude_zero_frequency": config.exclude_zero_frequency, "shell_weights": shell_weights}


WORKING_POWER = 1000.0
"""The images' power per pixel the fits work at, whatever the images' unit: the grid fit's loss
is stated as if the images' power were this (:func:`loss_unit`), the per-image engine divides its
images by the power of two nearest to bringing theirs here (:func:`image_unit`). The grid fit
measured flat from 20 to 30,000 on fourteen sets, two seeds (round 2, session 68); the benchmark
sets' own powers span 11–58,000."""


def loss_unit(stats: FourierStatistics) -> float:
    """What the fit divides its loss (the sum of squared residuals over the images) by: the
    number of images times their power per pixel
    (:attr:`~cryosplat.reconstruct.grid.statistics.FourierStatistics.power_per_pixel`) over
    :data:`WORKING_POWER`.

    The loss is then the same number whatever unit the images come in (RELION's normalised
    noise, detector counts, a simulator's potential), so Adam's ``eps`` (an absolute 1e-8) weighs
    the same against its gradients, and images times ``2**k`` give the fit times ``2**k`` to the
    bit. Stated per image in data units instead (round 2, session 67 and before), the fit hardly
    moved on images of noise s.d. 1e-4 (its map the data's inversion, silently: EMD-5625 at 0.5
    17.9 → 24.3 Å) and the benchmark sets, whose powers span 11–58,000, each met ``eps`` at
    another weight.
    """
    return stats.n_particles * stats.power_per_pixel / WORKING_POWER


def image_unit(stats: Sequence[FourierStatistics]) -> float:
    """The power of two the per-image engine divides its images by: the one that brings their
    power per pixel (the mean over ``stats``) nearest to :data:`WORKING_POWER`.
    A power of two, so that images times ``2**k`` are the same images inside the engine to the
    bit."""
    power = sum(s.power_per_pixel for s in stats) / len(stats)
    if not (math.isfinite(power) and power > 0):
        return 1.0
    return 2.0 ** round(0.5 * math.log2(power / WORKING_POWER))


def inverse_noise_weights(stats: FourierStatistics) -> torch.Tensor:
    """``mean σ² / σ²(k)`` per shell (:func:`noise_power_by_shell`), the mean over image pixels."""
    noise = noise_power_by_shell(stats)
    radius = torch.sqrt(squared_radius(stats.box, 2, dtype=torch.float64))
    shells = torch.round(radius[radius <= stats.max_radius]).long().clamp_max(len(noise) - 1)
    return float(noise[shells].mean()) / noise


def fit_shell_weights(stats: FourierStatistics, config: GridFitConfig) -> torch.Tensor | None:
    """The per-shell weights of the loss the config asks for (product of the low-shell and the
    inverse-noise weights), or None for none."""
    weights = None
    if config.low_shell_weighting:
        weights = low_shell_weights(stats)
    if config.noise_weighting:
        noise = inverse_noise_weights(stats)
        weights = noise if weights is None else weights * noise
    return weights


def _stage_statistics(stats: FourierStatistics, box: int, config: GridFitConfig):
    """``stats`` cropped to a stage's box, unpadded above ``config.unpadded_above_box``."""
    return _unpadded_if_large(stats.crop(box), config)


def _unpadded_if_large(cropped: FourierStatistics, config: GridFitConfig) -> FourierStatistics:
    limit = config.unpadded_above_box
    return cropped.unpadded() if limit is not None and cropped.box > limit else cropped


COARSE_COST_FACTOR = 4.0


def _coarse_min_saving(loss: GridLoss, config: GridFitConfig) -> float | None:
    """The footprint values the coarse grid must save to be used (``config.two_grids``), or
    None for none: :data:`COARSE_COST_FACTOR` times its padded transform's size, ``(P/2)³``.

    Measured per step, forward and backward, one thread, the coarse grid forced on against off:
    box 76 and 100 unpadded (savings 44 and 27 × ``(P/2)³``) 48 → 37 and 61 → 39 ms; box 42
    and 56 padded (5.4 and 2.8 ×) 16 → 14 and 26 → 23 ms at best, level in the median; box 28
    and 50 padded with one broad Gaussian 8.6 → 10.5 and 37 → 41 ms (the coarse transforms for
    nothing)."""
    if not config.two_grids:
        return None
    return COARSE_COST_FACTOR * (loss.size // 2) ** 3


def _amplitude_factor(params: FitParameters, loss: GridLoss, config: GridFitConfig) -> float:
    """Least-squares factor from the fitted (relative) amplitudes to the data's, at low resolution."""
    params.clamp_scales(_scale_bounds(params, loss.pixel_size_angstrom, config))
    with torch.no_grad():
        volume = params.voxelize(loss.box, loss.pixel_size_angstrom, config.n_sigma)
        alpha = loss.best_scale(loss.data_term_and_spectrum(volume)[1], max_radius=2.0)
    if not math.isfinite(alpha):
        raise InputError(
            f"the Fourier statistics hold NaN or infinite values (amplitude factor {alpha}): "
            "an image with NaN, infinite or absurd pixels, or a non-finite CTF or shift, reached "
            "them; run with the images checked (the default) or --drop-bad-images"
        )
    if not alpha > 0:
        raise InputError(
            "the images, as read, correlate negatively with any positive density at low "
            "resolution: they hold protein dark (pass --invert-contrast), or bright where "
            "--invert-contrast was passed (leave it out); or structure in many images' "
            "backgrounds outweighs the molecule at low resolution (a support film's edge, "
            "contamination: look at the images low-pass filtered, and leave such particles out, "
            "e.g. by 2D classification)"
        )
    return alpha


def fit_gaussians(
    stats: FourierStatistics,
    config: GridFitConfig | None = None,
    model: GaussianModel | None = None,
    heldout: FourierStatistics | None = None,
    progress: Callable[[int, int], None] | None = None,
    callback: Callable[[int, int, float, float | None], None] | None = None,
    half_fsc: ArrayLike | None = None,
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
        A model with fewer than ``config.grow_to`` Gaussians is grown to that many first
        (:func:`~cryosplat.reconstruct.grid.density_control.grow_heaviest`).
    heldout : FourierStatistics, optional
        Statistics of images kept out of the fit, for the stopping rule (for gold-standard half
        maps, a part of the same half set, not the other half).
    progress : callable(done, total), optional
        Called after every step (``total`` = the sum of the step budgets).
    callback : callable(stage, step, loss, heldout_loss), optional
        Called at every check with the stage index, the step within it, the training loss and
        the held-out loss (None without ``heldout``), each over its :func:`loss_unit` (per
        particle, in a fraction of the images' power) and without its constant term.
    half_fsc : array (M,), optional
        FSC between the two half sets' direct inversions by shell (pixels of the full box), for
        the prior (``config.prior_strength``); without it the fit has none. The held-out loss
        never includes the prior.

    Returns
    -------
    GaussianModel on ``config.device`` with the box and pixel size of ``stats``.
    """
    config = GridFitConfig() if config is None else config
    config.validate()
    with torch.enable_grad():
        return _fit(stats, config, model, heldout, progress, callback, half_fsc)


def _check_finite_statistics(stats: FourierStatistics, what: str) -> None:
    for name in ("weights", "data"):
        if not bool(torch.isfinite(getattr(stats, name)).all()):
            raise InputError(
                f"the {what} Fourier statistics hold NaN or infinite {name}: an image with NaN, "
                "infinite or absurd pixels, or a non-finite CTF or shift, reached them; gather "
                "them again with the images checked (the default) or --drop-bad-images"
            )


def _control_now(config: GridFitConfig, steps_done: int, budget: int) -> bool:
    """Density control after this many steps of a stage: every ``density_control_every`` steps,
    unless fewer than half that many would follow before the stage's budget ends."""
    every = config.density_control_every
    if not every or config.density_control_fraction == 0:
        return False
    return steps_done % every == 0 and steps_done < budget - every // 2


def _copy_optimizer_rows(optimizer: Adam, to_rows: torch.Tensor, from_rows: torch.Tensor) -> None:
    """Give the second half of each split pair its parent's Adam moments (the pair was one
    Gaussian a step ago: the same gradient history)."""
    for state in optimizer.state.values():
        for key in ("exp_avg", "exp_avg_sq"):
            state[key][to_rows] = state[key][from_rows]


def random_start(
    stats: FourierStatistics, config: GridFitConfig, first_stage: FourierStatistics
) -> GaussianModel:
    """The random initial model: ``config.n_gaussians`` Gaussians of ``config.max_scale_pixels``
    pixels of the first stage (``first_stage``, the statistics cropped to its box) in a ball of
    ``init_radius_fraction`` of the box, or less for a molecule smaller than that
    (:func:`~cryosplat.reconstruct.grid.init_centre.initial_ball`;
    :meth:`GaussianModel.random`), about the half's own
    low-resolution density where that lies off the box's centre
    (:mod:`cryosplat.reconstruct.grid.init_centre`), the last ``negative_fraction`` of them
    holding negative density (a signed model; none: all positive)."""
    pixel_size_angstrom = first_stage.pixel_size_angstrom
    centre, radius = initial_ball(
        first_stage, config.init_radius_fraction, config.symmetry, config.init_radius_from_data
    )
    model = GaussianModel.random(
        config.n_gaussians,
        stats.box,
        stats.pixel_size_angstrom,
        seed=config.seed,
        radius_fraction=radius,
        scale_angstrom=config.max_scale_pixels * pixel_size_angstrom,
        symmetry=config.symmetry,
        centre_angstrom=centre,
    )
    n_negative = int(round(config.negative_fraction * len(model)))
    amplitudes = model.amplitudes.detach().clone()
    if n_negative:
        amplitudes[len(model) - n_negative :] *= -1.0
    return GaussianModel(
        model.means,
        model.scales,
        model.quaternions,
        amplitudes,
        model.box,
        model.pixel_size_angstrom,
        model.symmetry,
        signed=n_negative > 0,
    )


def _stage_optimizer(params: FitParameters, config: GridFitConfig, pixel: float) -> Adam:
    """Adam over the four parameter groups, the means' and scales' rates in stage pixels; the
    negative population's amplitudes at ``config.lr_negative_amplitudes``."""
    amplitudes = {"params": [params.raw_amplitudes], "lr": config.lr_amplitudes}
    if params.signs is not None and config.lr_negative_amplitudes != config.lr_amplitudes:
        ratio = config.lr_negative_amplitudes / config.lr_amplitudes
        amplitudes["lr_scale"] = torch.where(params.signs < 0, ratio, 1.0).reshape(
            params.raw_amplitudes.shape
        )
    return Adam(
        [
            {"params": [params.means], "lr": config.lr_means_pixels * pixel},
            {"params": [params.raw_scales], "lr": config.lr_scales_pixels * pixel},
            {"params": [params.raw_quaternions], "lr": config.lr_quaternions},
            amplitudes,
        ]
    )


class _StoppingRule:
    """A stage's stopping rule: stop after ``config.patience`` checks in a row without the
    criterion (the training or held-out loss) improving by ``config.min_improvement`` of its
    best; ``keep_best``: keep the parameters of the best check (with held-out statistics)."""

    def __init__(self, config: GridFitConfig, keep_best: bool) -> None:
        self.config, self.keep_best = config, keep_best
        self.best, self.stale = math.inf, 0
        self.best_state = None

    def check(self, criterion: float, params: FitParameters) -> bool:
        """Record one check's criterion; True when the stage should stop."""
        if math.isinf(self.best) or criterion < self.best - self.config.min_improvement * abs(
            self.best
        ):
            self.best, self.stale = criterion, 0
            if self.keep_best:
                self.best_state = params.snapshot()
        else:
            self.stale += 1
        return self.stale >= self.config.patience


def _fit(stats, config, model, heldout, progress, callback, half_fsc) -> GaussianModel:
    _check_finite_statistics(stats, "fitted")
    if heldout is not None:
        stats._check_compatible(heldout)
        _check_finite_statistics(heldout, "held-out")
    device = torch.device(config.device)
    boxes = stage_boxes(stats.box, config.stage_fractions)
    given = model is not None  # a fitted model: density control before its first stage too
    first_padded = stats.crop(boxes[0])
    first_stage = _unpadded_if_large(first_padded, config)
    if given:
        model = grow_heaviest(model, config.grow_to, config.seed * 7919 + 1)
    else:  # placed by the padded grid's inversion: the unpadded one's misplaces the molecule
        model = random_start(stats, config, first_padded)
    del first_padded
    params = FitParameters(model, device, config.signed_amplitudes)
    shell_weights = fit_shell_weights(stats, config)
    prior = fit_prior_ratios(stats, config, half_fsc)
    unit = loss_unit(stats)
    held_unit = None if heldout is None else loss_unit(heldout)
    total_steps = sum(config.stage_steps)
    done = 0
    alpha = None
    for stage, (box, budget) in enumerate(zip(boxes, config.stage_steps, strict=True)):
        if config.density_control_fraction > 0 and (stage > 0 or given):
            split_heaviest(params, config.density_control_fraction, config.seed * 7919 + box)
        stage_stats = first_stage if stage == 0 else _stage_statistics(stats, box, config)
        pixel = stage_stats.pixel_size_angstrom
        loss_fn = GridLoss(
            stage_stats,
            1.0,
            config.gridding_correction,
            device,
            prior_ratios=prior,
            **_loss_options(config, shell_weights),
        )
        if alpha is None:
            alpha = _amplitude_factor(params, loss_fn, config)
        loss_fn.rescale(alpha)
        held_fn = None
        if heldout is not None:
            held_fn = GridLoss(
                _stage_statistics(heldout, box, config),
                alpha,
                config.gridding_correction,
                device,
                **_loss_options(config, shell_weights),
            )
        bounds = _scale_bounds(params, pixel, config)
        params.clamp_scales(bounds)
        coarse_saving = _coarse_min_saving(loss_fn, config)
        optimizer = _stage_optimizer(params, config, pixel)
        decay = config.final_fraction(stage) ** (1.0 / max(budget, 1))
        rule = _StoppingRule(config, keep_best=held_fn is not None)
        for step in range(budget):
            volume = params.voxelize(box, pixel, config.n_sigma, coarse_saving)
            data_term, spectrum = loss_fn.data_term_and_spectrum(volume)
            loss = data_term / unit
            if step % config.check_every == 0 or step == budget - 1:
                held = None
                if held_fn is not None:
                    held = float(held_fn.data_term(spectrum)) / held_unit
                stop = rule.check(float(loss.detach()) if held is None else held, params)
                if callback is not None:
                    callback(stage, step, float(loss.detach()), held)
                if stop:
                    break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            for group in optimizer.param_groups:
                group["lr"] *= decay
            params.clamp_scales(bounds)
            if _control_now(config, step + 1, budget):
                seed = config.seed * 7919 + box * 31 + step
                rows = split_heaviest(params, config.density_control_fraction, seed)
                _copy_optimizer_rows(optimizer, *rows)
            done += 1
            if progress is not None:
                progress(done, total_steps)
        if rule.best_state is not None:
            params.restore(rule.best_state)
        if progress is not None and done < sum(config.stage_steps[: stage + 1]):
            done = sum(config.stage_steps[: stage + 1])
            progress(done, total_steps)
    return params.model(1.0 if alpha is None else alpha, stats.box, stats.pixel_size_angstrom)
