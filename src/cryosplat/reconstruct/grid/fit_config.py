"""Settings of the coarse-to-fine grid fit
(:func:`cryosplat.reconstruct.grid.fit.fit_gaussians`), each with what it does and what it was
measured to give."""

from __future__ import annotations

from dataclasses import dataclass, replace

from cryosplat.core.errors import InputError

__all__ = ["GridFitConfig"]


@dataclass
class GridFitConfig:
    """Settings of :func:`cryosplat.reconstruct.grid.fit.fit_gaussians`.

    Attributes
    ----------
    n_gaussians : int
        Size of the random initial model (ignored when a model is given).
    grow_to : int
        A given model with fewer Gaussians is grown to this many before the fit (its heaviest
        split: :func:`cryosplat.reconstruct.grid.density_control.grow_heaviest`); 0: as given.
        The grid engine grows the last stage's model to the number of Gaussians the data ask for
        (:mod:`cryosplat.reconstruct.grid.capacity`).
    stage_fractions : tuple of float
        Box of each stage as a fraction of the full box (rounded to even, at least 8), coarse to
        fine; the last should be 1.
    stage_steps : tuple of int
        Largest number of Adam steps of each stage (the training loss still falls 1.5-5 % over
        a stage's last 20 steps, so the budget, not the stopping rule, ends it). Twice the
        steps in every stage (round 2, session 86) let the 70S ribosome's models converge at
        ten times the benchmark's signal (0.5 crossing 20.97 → 17.03 Å) but make EMD-1832's
        follow the noise at the benchmark's signal (20.74 → 21.73 Å) and at high signal
        (15.78 → 16.73 Å).
    lr_means_pixels : float
        Adam learning rate of the means, in pixels of the stage grid. Measured again at the
        amplitudes' rate of 0.3 (thirteen map-based sets, round 2, session 51, as the scales'
        and quaternions' below): 0.1 and 0.4 level or coarser.
    lr_scales_pixels : float
        Adam learning rate of the raw (softplus) scales, in pixels of the stage grid. 0.04 is
        0.5 % coarser at 0.5; 0.01 leaves EMD-1832's finest shells at −0.2 and its 0.143
        crossing 16-24 % coarser.
    lr_quaternions, lr_amplitudes : float
        Adam learning rates of the raw quaternions (0.03 measured level) and raw (softplus)
        amplitudes; amplitudes are fitted relative to their mean, so this is about a relative
        step. 0.3 for the amplitudes (0.1 until round 2, session 50; the negative population's
        stays 0.1, ``lr_negative_amplitudes``): at 0.1, 49 % of the positive Gaussians fitted to
        three EMD-1832 copies in a box of 112 ended at the smallest scale (19 % at 0.3), a
        texture anti-correlated with the truth's finest shells; most likely their mass could not
        fall fast enough where the data asked, within a stage's steps. Measured on thirteen
        map-based sets, two seeds: the 0.5 crossing 1.3 % finer on average (three EMD-1832
        copies in a row in a box of 112 7-10 %, EMD-1832 alone in that box 2 %), none more than
        1.3 % coarser; level on fifteen sets not chosen on and on two elongated sets made after
        (``benchmarks/RESULTS.md``, round 2, session 50).
    lr_negative_amplitudes : float
        Adam learning rate of the negative population's raw amplitudes. At the positive
        Gaussians' 0.3 the population grows past the truth's negative mass on maps that fill
        their box (EMD-1832 in a box of 64: 1.18 times the positive mass, the truth's 1.10) and
        the 0.5 crossing loses 2-4 %. Measured again in round 2, session 86: 0.3 lifts the 70S
        ribosome's models at 160 Å from 0.81 to 0.96 (ten times the benchmark's signal) and
        coloured EMD-5625's 0.5 crossing 3.5 %, but costs EMD-1832 1.7-2.2 % at 0.5 and 7-8 %
        at 0.143; 0.15 is level.
    lr_final_fraction : float
        Learning rates decay exponentially to this fraction over each stage's step budget.
        Decayed further (0.15), the finest shells of four of five EMD-1832 sets go negative or
        deeper (to −0.11); less (0.6), they turn positive but the 0.5 crossing is 0.65 % coarser
        on average (round 2, session 51). The last stage decays to
        ``lr_final_fraction_last_stage`` instead.
    lr_final_fraction_last_stage : float
        The same for the last stage (the full grid), whose late pace sets the finest shells.
        0.6 since round 2, session 52 (0.3, the other stages', before): on thirteen map-based
        sets, two seeds, the 0.5 crossing level (−0.03 % on average, worst +1.1 %), 0.143
        −0.17 %, and the finest shells of three EMD-1832 copies in a box of 112 no longer
        negative (their lowest value −0.018 … −0.037 → +0.003 … +0.031); on fifteen sets not
        chosen on, two seeds, −0.11 % / +0.35 % (worst +0.5 %; at 0.143 the EMD-1832 sets
        +0.1 … +4.1 %, the largest within that set's spread over seeds). Not decayed at all
        (1.0): +0.05 % / +0.20 %; the last stage cut to 24 steps with it: +0.22 % / +0.62 % and
        the negative tails back. The last two stages at 0.6: +0.25 % / +0.15 %; every stage:
        +0.65 % at 0.5 (session 51).
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
        Random initial means fill a ball of at most this radius (fraction of the box edge); less
        for a molecule smaller than that ball
        (:func:`cryosplat.reconstruct.grid.init_centre.initial_radius_fraction`) when
        ``init_radius_from_data``.
    init_radius_from_data : bool
        Shrink the initial ball to the molecule's size read in the half's own data (off: the ball
        of ``init_radius_fraction`` whatever the molecule).
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
        FSC to a real-map truth 0.95 at the first shell, 0.998 with it). 0.10 (0.15 until round 2,
        session 24): over 23 map-based sets and two seeds the 0.5 crossing 0.3-0.8 % finer on
        average and 0.143 1.3 % finer, a fit step 7-13 % faster (the broad negative footprints are
        most of a small box's voxelisation), first shells 0.002-0.008 lower (the largest deficit
        under the better peer 0.012, was 0.010; ``benchmarks/RESULTS.md``).
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
        two half sets' direct inversions (``half_fsc`` of
        :func:`cryosplat.reconstruct.grid.fit.fit_gaussians`) and the ``W`` that FSC sees
        (:func:`cryosplat.reconstruct.grid.prior.fsc_weight_ratio`); 0 turns it off. Without
        it the Gaussians fit the noise of the shells that hold little signal with whatever their
        shapes make there: on EMD-1832 the FSC with the truth fell to -0.1 from 19 to 13 Å. 1
        (the value for a map free voxel by voxel) is too strong for a mixture, which is a prior of its own. 0.5 since
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
    two_grids : bool
        Voxelise Gaussians whose smallest scale is at least
        :data:`~cryosplat.model.two_grid.COARSE_MIN_SCALE_PIXELS` stage pixels on a grid of twice
        the voxel size and add that grid's spectrum to the loss's (:mod:`cryosplat.model.two_grid`;
        within 1e-3 of their spectrum's peak), in the stages where that saves more than it costs
        (:func:`cryosplat.reconstruct.grid.fit._coarse_min_saving`). The broad negative population
        has footprints of radius 9 voxels, most of a step's voxelisation at the finer stages:
        measured (round 2, session 23) the box-256 set's fit 138 → 108 s, beta-galactosidase's
        (box 100) 9.9 → 9.3 s, the same maps (FSC with the truth within ±0.02 Å at 0.5).
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
    grow_to: int = 0
    stage_fractions: tuple[float, ...] = (0.25, 0.5, 0.75, 1.0)
    stage_steps: tuple[int, ...] = (80, 40, 40, 30)
    lr_means_pixels: float = 0.2
    lr_scales_pixels: float = 0.02
    lr_quaternions: float = 0.01
    lr_amplitudes: float = 0.3
    lr_negative_amplitudes: float = 0.1
    lr_final_fraction: float = 0.3
    lr_final_fraction_last_stage: float = 0.6
    min_scale_pixels: float = 0.35
    max_scale_pixels: float = 1.0
    init_radius_fraction: float = 0.3
    init_radius_from_data: bool = True
    n_sigma: float = 3.0
    gridding_correction: bool = True
    signed_amplitudes: bool = False
    negative_fraction: float = 0.10
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
    two_grids: bool = True
    check_every: int = 5
    patience: int = 3
    min_improvement: float = 1e-4
    seed: int = 0
    device: str = "cpu"
    symmetry: str = "C1"

    def stage(self, index: int) -> GridFitConfig:
        """The settings of stage ``index`` alone, as the grid engine fits the stages (one call
        each, the model carried from one to the next): its grid, its steps and its decay."""
        if not 0 <= index < len(self.stage_fractions):
            raise ValueError(f"stage {index} of a fit of {len(self.stage_fractions)} stages")
        final = self.final_fraction(index)
        return replace(
            self,
            stage_fractions=(self.stage_fractions[index],),
            stage_steps=(self.stage_steps[index],),
            lr_final_fraction=final,
            lr_final_fraction_last_stage=final,
        )

    def final_fraction(self, index: int) -> float:
        """The fraction of its starting rates that stage ``index`` of this fit decays to."""
        last = index == len(self.stage_fractions) - 1
        return self.lr_final_fraction_last_stage if last else self.lr_final_fraction

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first bad setting."""
        if self.n_gaussians < 1:
            raise InputError(f"n_gaussians must be at least 1, got {self.n_gaussians}")
        if self.grow_to < 0:
            raise InputError(
                f"grow_to must be 0 (no growth) or a number of Gaussians, got {self.grow_to}"
            )
        if not self.stage_fractions or len(self.stage_fractions) != len(self.stage_steps):
            raise InputError(
                "stage_fractions and stage_steps must be non-empty, of equal length (one step "
                f"count per stage), got {len(self.stage_fractions)} fractions "
                f"{tuple(self.stage_fractions)} and {len(self.stage_steps)} step counts "
                f"{tuple(self.stage_steps)}: give --stage-fractions with --stage-steps"
            )
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
        positive += " lr_negative_amplitudes lr_final_fraction_last_stage"
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
