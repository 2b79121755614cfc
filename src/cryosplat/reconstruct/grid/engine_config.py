"""Settings of the Fourier-statistics engine (:mod:`cryosplat.reconstruct.grid.engine`):
:class:`GridEngineConfig`, apart from the engine so that a run's settings can be named by what
the engine is given (:class:`cryosplat.reconstruct.engine_job.EngineJob`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryosplat.core.errors import InputError
from cryosplat.reconstruct.grid.fit_config import GridFitConfig
from cryosplat.reconstruct.grid.gather import AccumulateConfig

__all__ = ["GridEngineConfig", "MAX_MEMBERS"]

MAX_MEMBERS = 16


@dataclass
class GridEngineConfig:
    """Settings of the Fourier-statistics engine.

    Attributes
    ----------
    accumulate : how the statistics are gathered (padding, batch size, resolution limit)
    fit : the coarse-to-fine fit (stages, steps, learning rates); its ``n_gaussians``, ``seed`` and
        ``device`` are set by ``reconstruct``
    heldout_fraction : part of each half set kept out of its fit to decide when a stage stops
        and which of its steps to keep. 0 (the default): every particle is fitted and each stage
        runs its budget unless the training loss stops improving. Since the prior on the map
        (:func:`cryosplat.reconstruct.grid.loss.shell_prior_ratios`) the held-out loss seldom
        stops a stage, so the 10 % held out until round 2, session 7 mostly cost data: fitting
        them moved the 0.5 crossing 1.2 % finer on average over 14 sets and 2 seeds (EMD-5625
        4-8 %), 1.6 % coarser on the worst (benchmarks/RESULTS.md).
    concurrent_halves : on a CPU with two or more threads, gather and fit the two halves side by
        side, a thread each (:func:`~cryosplat.reconstruct.grid.side_by_side.concurrent_halves`);
        ``reconstruct`` turns it off when the memory plan cannot hold both at once
    gaussians_from_data : raise the number of Gaussians of the last stage above the box's
        default where the data hold more information
        (:func:`cryosplat.reconstruct.grid.capacity.gaussians_for_data`, decided after the
        statistics pass): the stages before it fit the default, and the last splits the heaviest
        of them (:func:`cryosplat.reconstruct.grid.density_control.grow_heaviest`);
        ``reconstruct`` turns it off when ``n_gaussians`` is given
    members : fits of each half set whose mean is the half model (:meth:`GaussianModel.average`:
        their Gaussians together, amplitudes divided by ``members``), each alone against the half
        set's statistics. Fits of the same data differ where the data are weak (EMD-5625 set: FSC
        0.84–0.88 between two fits from different starts at the 0.5 crossing), and the mean keeps
        what they share. Default 1.
    member_stages : the last stages each member fits on its own, from the shared fit of the
        stages before them (member 0's), with its own density-control draws; as many as the
        stages (or more): every stage, each member from its own random start (round 2, session
        17). Most of the fits' disagreement arises in the last two stages, where the density
        control moves Gaussians the finer grid can resolve (the last two stages run again with
        another seed agree with the first fit to FSC 0.90 at the 0.5 crossing, a new start to
        0.88), while the first stages, coarse and many steps long, are a third of a small box's
        fit. Two members, measured over 48 fits of 29 sets against one (benchmarks/RESULTS.md,
        round 2, session 18): with 2 (the default) the 0.5 crossing 0.62 % finer on average, the
        worst 0.14 % coarser, for 1.55 times the fit's time at box 56; from separate random starts
        0.72 % finer, the worst 0.17 % coarser, for twice the time.
    stage_mean : the half maps take, at each frequency, the mean of the fits of the last this
        many stages whose grids hold it (:mod:`cryosplat.reconstruct.stage_mean`; 1: the last
        fit alone): ``EngineResult.earlier_stages`` carry those stages' half models and Nyquist
        shells
    image_weights : weigh each image by the inverse of its noise variance, read in its corners,
        where the images' noise levels differ beyond what their estimation explains
        (:mod:`cryosplat.reconstruct.grid.noise_levels`; normalised particles, whose backgrounds
        all have one sd, are weighed alike). Default on.
    """

    accumulate: AccumulateConfig = field(default_factory=AccumulateConfig)
    fit: GridFitConfig = field(default_factory=GridFitConfig)
    heldout_fraction: float = 0.0
    concurrent_halves: bool = True
    gaussians_from_data: bool = True
    members: int = 1
    member_stages: int = 2
    stage_mean: int = 3
    image_weights: bool = True

    def validate(self) -> None:
        if not 0.0 <= self.heldout_fraction < 0.5:
            raise InputError(f"heldout_fraction must be in [0, 0.5), got {self.heldout_fraction}")
        if not 1 <= self.members <= MAX_MEMBERS:
            raise InputError(f"members must be 1 to {MAX_MEMBERS}, got {self.members}")
        if self.member_stages < 1:
            raise InputError(f"member_stages must be at least 1, got {self.member_stages}")
        if self.stage_mean < 1:
            raise InputError(f"stage_mean must be at least 1, got {self.stage_mean}")
        self.accumulate.validate()
        self.fit.validate()
