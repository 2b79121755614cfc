"""Fit a Gaussian mixture to Fourier sufficient statistics, coarse to fine.

The loss of :mod:`cryosplat.reconstruct.grid.loss` is evaluated for the mixture by voxelising it
(:func:`cryosplat.model.voxelize.voxelize_gaussians`, each Gaussian in its footprint); no image is read,
so a step costs the same for 1,000 or 1,000,000 particles. ``GridLoss`` and ``gridded_loss`` are
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
from collections.abc import Callable
from dataclasses import dataclass

import torch

from cryosplat.core.errors import InputError
from cryosplat.core.fourier import squared_radius
from cryosplat.core.optim import Adam
from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.grid.density_control import split_heaviest
from cryosplat.reconstruct.grid.loss import (
    GridLoss,
    gridded_loss,
    low_shell_weights,
    noise_power_by_shell,
    shell_prior_ratios,
)
from cryosplat.reconstruct.grid.parameters import FitParameters
from cryosplat.reconstruct.grid.statistics import (
    DEFAULT_WIENER_REGULARIZATION,
    FourierStatistics,
)

__all__ = [
    "GridFitConfig",
    "GridLoss",
    "gridded_loss",
    "fit_gaussians",
    "prior_ratios",
    "fsc_weight_ratio",
    "stage_boxes",
]


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
        fade). 0.35 below (was 0.5 until round 2, session 5): measured on the eight benchmark sets,
        two seeds each, the FSC with the truth is level at 0.5, finer at 0.143 on EMD-1832 (14.5
        → 13.9 Å, coloured 14.7 → 13.8 Å) and coloured EMD-5625 (14.0 → 13.7 Å), and EMD-1832's
        last shells are no longer negative (−0.02 to −0.05 before): Gaussians of half a pixel
        could not carry the finest detail the data hold, and what their shapes put there instead
        was anti-correlated with the truth.
    init_radius_fraction : float
        Random initial means fill a ball of this radius (fraction of the box edge).
    n_sigma : float
        Voxelisation footprint half-width in standard deviations.
    gridding_correction : bool
        Apodise the voxelised map as trilinear insertion does (recommended).
    signed_amplitudes : bool
        Amplitudes may become negative (raw parameter = relative amplitude, no softplus), so the
        mixture can hold density below the solvent level (halos, normalised or filtered maps).
    negative_fraction : float
        Part of a random initial model whose Gaussians hold negative density (a second population
        with fixed sign, softplus magnitudes): density below the solvent level (the negative halo
        of a normalised or filtered map). A starting model with negative amplitudes keeps its
        signs. Without it a positive mixture cannot hold a map's lowest frequencies (issue 11:
        FSC to a real-map truth 0.95 at the first shell, 0.998 with it).
    negative_scale_pixels : (float, float)
        Scale range of the negative population in pixels of the stage grid: broad, as halos are
        (narrow negative Gaussians cost the mid frequencies what they give the lowest).
    exclude_zero_frequency : bool
        Leave the zero frequency out of the loss: images are normalised to a zero background, so
        their mean is not signal (:class:`GridLoss`).
    low_shell_weighting : bool
        Lift the shells below the CTF's first maximum, where the summed CTF² is small, towards
        the weight of that maximum (:func:`cryosplat.reconstruct.grid.loss.low_shell_weights`):
        the map's envelope and negative halo are fitted early instead of last. Measured on the six
        map-based benchmark sets: first shell 0.978-0.996 with the truth (was 0.964-0.996), the
        0.143 crossing of EMD-1832 16.6 Å (was 18.6 Å), 0.5 crossings within ±1 %.
    noise_weighting : bool
        Weight each frequency shell of the loss by the inverse of its noise power, estimated from
        the fitted statistics (:func:`cryosplat.reconstruct.grid.loss.noise_power_by_shell`; normalised to mean
        one over the image pixels): the maximum-likelihood fit under coloured Gaussian noise.
    prior_strength : float
        Strength of the per-shell Gaussian prior on the map (RELION's regularised likelihood,
        :func:`cryosplat.reconstruct.grid.loss.shell_prior_ratios`), set from the FSC of the
        two half sets' direct inversions (``half_fsc`` of :func:`fit_gaussians`) and the ``W``
        that FSC sees (:func:`fsc_weight_ratio`); 0 turns it off. Without it the Gaussians fit
        the noise of the shells that hold little signal with whatever their shapes make there:
        on EMD-1832 the FSC with the truth fell to -0.1 from 19 to 13 Å. 1 (the value for a map
        free voxel by voxel) is too strong for a mixture, which is a prior of its own. 0.5 since
        round 2 session 22, when the signal's power came to be read with the ``W`` the FSC sees
        rather than the shell's mean (half the mean with the real view distribution most
        benchmark sets have, so 0.5 is there the 0.3 measured best on them in session 7; a
        fifth of it with preferred orientation, where the mean's prior was some five times too
        strong: EMD-6824 with 85 % of the views within 15° of one axis fell 0.034 under
        cryoDRGN's curve at 18–21 Å, 0.004 with it; benchmarks/RESULTS.md).
    prior_cap : float
        Largest prior term of a shell, in units of the shell's mean ``W``.
    prior_pool_shells : int
        The prior's FSC is the mean over this many shells on each side of each shell
        (:func:`cryosplat.reconstruct.grid.loss.pooled_fsc`; 0: each shell's own). A mixture of
        Gaussians, smooth in Fourier space, cannot follow a penalty that jumps several-fold for
        one shell: where a map's spectrum dips (EMD-6824 at 18–20 Å, where the data's FSC drops
        for a shell) the Gaussians pushed out of the dip's shell distort its neighbours, and on
        a set whose FSC with the truth stays above 0.5 to 9.7 Å it fell to 0.49 in the dip
        (crossing 0.5 at 20.6 Å, four seeds); pooled over ±1 shell 0.51–0.52 there (9.6 Å).
        Elsewhere no change beyond the fit's noise: 0.5 crossings −0.03 % and +0.06 % on
        average over 29 and 19 sets (seeds 0, 1), 0.143 −0.06 % and +0.27 %, one
        preferred-orientation EMD-5625 fit flipping across its plateau at 0.5 (+6 %; over four
        seeds +1.2 %) (benchmarks/RESULTS.md, round 2, session 20).
    density_control_fraction : float
        Density control (:func:`cryosplat.reconstruct.grid.density_control.split_heaviest`):
        this part of the positive population, the Gaussians that hold the most mass, is split in
        two and as many that hold the least are pruned. In ``[0, 0.5)``; 0 turns it off. Done
        when a stage starts from a fitted model (every stage after the first, and the first when
        a model is given) and every ``density_control_every`` steps within a stage.
    density_control_every : int
        Steps between density controls within a stage (0: between stages only); none in the last
        ``density_control_every / 2`` steps of a stage. Measured on twelve sets, three seeds
        (round 2, session 6): with 0.1 every 20 steps the 0.5 crossing is 1.3 % finer on
        average (8ZPM 5 %, beta-galactosidase 2.5–3.5 %; coloured EMD-1832 1.3 % coarser) and
        the 0.143 crossing 0.4 % (between stages only, two seeds: 0.9 % finer and 0.3 %
        coarser; every 10 steps, one seed, the EMD-1832 and EMD-5625 sets lose 1–3 %).
    unpadded_above_box : int or None
        Stages whose box is larger than this fit the statistics restated on the unpadded grid
        (:meth:`FourierStatistics.unpadded`): the loss's transform is 8× smaller, and from box
        ~50 up that transform is most of a step's time (and at large boxes of its memory). None:
        every stage padded. 64 (was 128 until round 2, session 11): on the sets of the fit's
        sweeps with a larger box, two seeds, the same FSC with the truth to ±0.3 % (one fit
        flipping across beta-galactosidase's plateau aside) and the fit 25-40 % faster (box 100:
        25 → 17 s per half, box 128: 63 → 36 s). Not lower: with 32, EMD-5625 (box 56, a
        molecule that fills the box: the restated loss cuts the CTF²'s real-space kernel at half
        a box) came out 2.4 % coarser at 0.5 over four seeds of the engine, the other small-box
        sets 0-1 %.
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
    symmetry : str
        Point group of a random initial model (:mod:`cryosplat.core.symmetry`): its ``n_gaussians`` are
        one asymmetric unit's, voxelised with all ``|G|`` copies. A given model keeps its own.
    """

    n_gaussians: int = 3000
    stage_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    stage_steps: tuple[int, ...] = (80, 40, 40, 30)
    lr_means_pixels: float = 0.2
    lr_scales_pixels: float = 0.02
    lr_quaternions: float = 0.01
    lr_amplitudes: float = 0.1
    lr_final_fraction: float = 0.3
    min_scale_pixels: float = 0.35
    max_scale_pixels: float = 1.0
    init_radius_fraction: float = 0.3
    n_sigma: float = 3.0
    gridding_correction: bool = True
    signed_amplitudes: bool = False
    negative_fraction: float = 0.15
    negative_scale_pixels: tuple[float, float] = (1.0, 3.0)
    exclude_zero_frequency: bool = False
    low_shell_weighting: bool = True
    noise_weighting: bool = False
    prior_strength: float = 0.5
    prior_cap: float = 2.0
    prior_pool_shells: int = 1
    density_control_fraction: float = 0.1
    density_control_every: int = 20
    unpadded_above_box: int | None = 64
    check_every: int = 5
    patience: int = 3
    min_improvement: float = 1e-4
    seed: int = 0
    device: str = "cpu"
    symmetry: str = "C1"

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first bad setting."""
        if self.n_gaussians < 1:
            raise InputError(f"n_gaussians must be at least 1, got {self.n_gaussians}")
        if not self.stage_fractions or len(self.stage_fractions) != len(self.stage_steps):
            raise InputError("stage_fractions and stage_steps must be non-empty, of equal length")
        if any(not 0 < f <= 1 for f in self.stage_fractions):
            raise InputError(f"stage_fractions must lie in (0, 1], got {self.stage_fractions}")
        if any(s < 0 for s in self.stage_steps):
            raise InputError(f"stage_steps must be non-negative, got {self.stage_steps}")
        if sum(self.stage_steps) == 0:
            raise InputError(
                f"stage_steps {self.stage_steps} leave the model unfitted: give at least one "
                "stage a positive number of steps"
            )
        fractions = self.stage_fractions
        if any(b < a for a, b in zip(fractions[:-1], fractions[1:], strict=True)):
            raise InputError(
                f"stage_fractions {self.stage_fractions} must not decrease: the fit goes coarse "
                "to fine (e.g. 0.25,0.5,0.75,1)"
            )
        positive = "lr_means_pixels lr_scales_pixels lr_quaternions lr_amplitudes lr_final_fraction"
        for name in (positive + " min_scale_pixels init_radius_fraction n_sigma").split():
            if not getattr(self, name) > 0:
                raise InputError(f"{name} must be positive, got {getattr(self, name)}")
        for name in ("prior_strength", "prior_cap"):
            if not getattr(self, name) >= 0:
                raise InputError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.density_control_every < 0:
            raise InputError(
                f"density_control_every must be non-negative, got {self.density_control_every}"
            )
        if self.prior_pool_shells < 0:
            raise InputError(
                f"prior_pool_shells must be non-negative, got {self.prior_pool_shells}"
            )
        if not 0.0 <= self.density_control_fraction < 0.5:
            raise InputError(
                f"density_control_fraction must be in [0, 0.5), got {self.density_control_fraction}"
            )
        if not 0.0 <= self.negative_fraction < 1.0:
            raise InputError(f"negative_fraction must be in [0, 1), got {self.negative_fraction}")
        if not self.max_scale_pixels >= self.min_scale_pixels:
            raise InputError(f"max_scale_pixels {self.max_scale_pixels} < min_scale_pixels")
        if self.check_every < 1 or self.patience < 1:
            raise InputError(
                f"check_every and patience must be >= 1: {self.check_every}, {self.patience}"
            )


def stage_boxes(box: int, fractions) -> list[int]:
    """Even stage boxes ``round(f · box)`` (at least 8, at most ``box``), one per fraction."""
    return [min(box, max(8, 2 * round(f * box / 2))) for f in fractions]


def _scale_bounds(params: FitParameters, pixel: float, config: GridFitConfig) -> tuple:
    scale_pixels = (config.min_scale_pixels, config.max_scale_pixels)
    return params.scale_bounds(pixel, scale_pixels, config.negative_scale_pixels)


def _loss_options(config: GridFitConfig, shell_weights=None) -> dict:
    return {"exclude_zero_frequency": config.exclude_zero_frequency, "shell_weights": shell_weights}


def fit_prior_ratios(
    stats: FourierStatistics, config: GridFitConfig, half_fsc
) -> torch.Tensor | None:
    """The prior's ``λ / W̄`` per shell the config asks for, or None (no FSC, or strength 0)."""
    if half_fsc is None or config.prior_strength == 0:
        return None
    return prior_ratios(half_fsc, int(math.floor(stats.max_radius)) + 1, config, stats)


def prior_ratios(
    half_fsc, n_shells: int, config: GridFitConfig, stats: FourierStatistics | None = None
) -> torch.Tensor:
    """:func:`cryosplat.reconstruct.grid.loss.shell_prior_ratios` with the config's strength,
    cap and pooling, and the ``W`` that the FSC sees relative to the mean ``W`` of ``stats``
    (:func:`fsc_weight_ratio`; views sampled alike without them): the one place the fit's
    settings become its prior."""
    return shell_prior_ratios(
        half_fsc,
        n_shells,
        config.prior_strength,
        config.prior_cap,
        config.prior_pool_shells,
        None if stats is None else fsc_weight_ratio(stats),
    )


def fsc_weight_ratio(stats: FourierStatistics) -> torch.Tensor:
    """``W_F / W̄`` per shell: the ``W`` the halves' FSC sees
    (:meth:`FourierStatistics.fsc_weight_by_shell`, at the Wiener constant of the data maps
    that FSC is made from) over the mean ``W``; 1 where a shell holds no ``W``."""
    mean = stats.mean_weight_by_shell()
    seen = stats.fsc_weight_by_shell(DEFAULT_WIENER_REGULARIZATION)
    return torch.where(mean > 0, seen / mean.clamp_min(1e-300), torch.ones_like(mean))


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
    cropped = stats.crop(box)
    limit = config.unpadded_above_box
    return cropped.unpadded() if limit is not None and box > limit else cropped


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
            "the images correlate negatively with any positive density at low "
            "resolution: they may hold protein dark (invert their contrast)"
        )
    return alpha


def fit_gaussians(
    stats: FourierStatistics,
    config: GridFitConfig | None = None,
    model: GaussianModel | None = None,
    heldout: FourierStatistics | None = None,
    progress: Callable[[int, int], None] | None = None,
    callback: Callable[[int, int, float, float | None], None] | None = None,
    half_fsc=None,
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
        Statistics of images kept out of the fit, for the stopping rule (for gold-standard half
        maps, a part of the same half set, not the other half).
    progress : callable(done, total), optional
        Called after every step (``total`` = the sum of the step budgets).
    callback : callable(stage, step, loss, heldout_loss), optional
        Called at every check with the stage index, the step within it, the training loss per
        particle and the held-out loss per particle (None without ``heldout``), both without their
        constant terms.
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


def _fit(stats, config, model, heldout, progress, callback, half_fsc) -> GaussianModel:
    _check_finite_statistics(stats, "fitted")
    if heldout is not None:
        stats._check_compatible(heldout)
        _check_finite_statistics(heldout, "held-out")
    device = torch.device(config.device)
    boxes = stage_boxes(stats.box, config.stage_fractions)
    first_pixel = stats.pixel_size_angstrom * stats.box / boxes[0]
    given = model is not None  # a fitted model: density control before its first stage too
    if model is None:
        model = GaussianModel.random(
            config.n_gaussians,
            stats.box,
            stats.pixel_size_angstrom,
            seed=config.seed,
            radius_fraction=config.init_radius_fraction,
            scale_angstrom=config.max_scale_pixels * first_pixel,
            symmetry=config.symmetry,
        )
        n_negative = int(round(config.negative_fraction * len(model)))
        if n_negative:
            with torch.no_grad():
                amplitudes = model.amplitudes.clone()
                amplitudes[len(model) - n_negative :] *= -1.0
                model = GaussianModel(
                    model.means,
                    model.scales,
                    model.quaternions,
                    amplitudes,
                    model.box,
                    model.pixel_size_angstrom,
                    model.symmetry,
                    signed=True,
                )
    params = FitParameters(model, device, config.signed_amplitudes)
    shell_weights = fit_shell_weights(stats, config)
    prior = fit_prior_ratios(stats, config, half_fsc)
    total_steps = sum(config.stage_steps)
    done = 0
    alpha = None
    for stage, (box, budget) in enumerate(zip(boxes, config.stage_steps, strict=True)):
        if config.density_control_fraction > 0 and (stage > 0 or given):
            split_heaviest(params, config.density_control_fraction, config.seed * 7919 + box)
        stage_stats = _stage_statistics(stats, box, config)
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
        optimizer = Adam(
            [
                {"params": [params.means], "lr": config.lr_means_pixels * pixel},
                {"params": [params.raw_scales], "lr": config.lr_scales_pixels * pixel},
                {"params": [params.raw_quaternions], "lr": config.lr_quaternions},
                {"params": [params.raw_amplitudes], "lr": config.lr_amplitudes},
            ]
        )
        decay = config.lr_final_fraction ** (1.0 / max(budget, 1))
        best, best_state, stale = math.inf, None, 0
        for step in range(budget):
            volume = params.voxelize(box, pixel, config.n_sigma)
            data_term, spectrum = loss_fn.data_term_and_spectrum(volume)
            loss = data_term / stats.n_particles
            if step % config.check_every == 0 or step == budget - 1:
                held = None
                if held_fn is not None:
                    held = float(held_fn.data_term(spectrum)) / heldout.n_particles
                criterion = float(loss.detach()) if held is None else held
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
        if best_state is not None:
            params.restore(best_state)
        if progress is not None and done < sum(config.stage_steps[: stage + 1]):
            done = sum(config.stage_steps[: stage + 1])
            progress(done, total_steps)
    return params.model(1.0 if alpha is None else alpha, stats.box, stats.pixel_size_angstrom)
