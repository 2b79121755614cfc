"""What defines a reconstruction run: :class:`ReconstructConfig`, and the default number of
Gaussians per half model (:func:`default_n_gaussians`).

Apart from the run itself (:mod:`cryosplat.reconstruct.run`), which imports the engines, so that
what an engine is given (:class:`cryosplat.reconstruct.engine_job.EngineJob`) can name it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from cryosplat.core.errors import InputError
from cryosplat.core.helical import HelicalSymmetry
from cryosplat.core.symmetry import normalize_symmetry
from cryosplat.particles.dust import DUST_SDS, check_dust_sds
from cryosplat.reconstruct.engine_result import MapSettings
from cryosplat.reconstruct.grid.capacity import GAUSSIANS_CAP
from cryosplat.reconstruct.grid.engine_config import GridEngineConfig
from cryosplat.reconstruct.grid.memory_plan import MemoryConfig
from cryosplat.reconstruct.pose_check import MODES as POSE_CHECK_MODES
from cryosplat.reconstruct.splat.engine import SplatEngineConfig
from cryosplat.validation.user_mask import FSCMask

__all__ = ["ENGINES", "OUTSIDE_IDENTITY", "ReconstructConfig", "default_n_gaussians"]

ENGINES = ("grid", "splat")  # the engines a run may use (run.py maps each to its run)
MAX_GAUSSIANS = 1_000_000
OUTSIDE_IDENTITY = (
    "device",
    "memory",
    "local_weight_sigma_px",
    "blend_with_data",
    "keep_checkpoints",
    "deterministic",
    "fsc_mask",
    "pose_check",
)
MAX_LOCAL_WEIGHT_SIGMA_PX = 20.0  # wider averages nothing locally


@dataclass
class ReconstructConfig:
    """Everything that defines a reconstruction run.

    Attributes
    ----------
    engine : ``"grid"`` (Fourier sufficient statistics, default) or ``"splat"`` (per-image)
    n_gaussians : Gaussians per half model; default from the box (:func:`default_n_gaussians`),
        raised by the grid engine where the data hold more (``grid.gaussians_from_data``)
    seed : seeds the half split, both random initialisations and the batch order
    device : ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``
    invert_contrast : the images hold protein dark (not RELION's convention); flip their sign
    dust_sds : single pixels this many standard deviations of their image from both its mean and
        their neighbours' median are replaced by that median as the images are read
        (:mod:`cryosplat.particles.dust`); 0: every pixel kept
    use_random_subset : honour ``rlnRandomSubset`` for the halves when present
    init_radius_fraction : random means lie in a sphere of at most this radius (fraction of the box
        edge; either engine's is smaller for a molecule smaller than that sphere)
    mask_soft_width_px : soft edge of the FSC masks (voxels)
    local_weight_sigma_px : window (voxels) of the local Wiener weight the map (the mean of the
        half maps) is multiplied by (:mod:`cryosplat.validation.local_weight`); 0: the plain mean;
        None (the default): a third of the fit's last cross-validated resolution in voxels, at
        least 1.5 (:func:`~cryosplat.validation.local_weight.window_for_resolution`)
    blend_with_data : the map is made of half maps corrected, shell by shell, by their own half
        set's direct inversion where that holds more (:mod:`cryosplat.validation.data_blend`)
    keep_checkpoints : keep ``checkpoints/`` once the run is complete (by default removed then:
        a complete run is resumed only to make its outputs again from them)
    deterministic : on a GPU, PyTorch's deterministic kernels for the scatter sums, so that the
        same run twice gives the same map (:func:`cryosplat.core.device.deterministic_algorithms`;
        the CPU path is deterministic without it)
    symmetry : point group in RELION's conventions (:mod:`cryosplat.core.symmetry`; ``"C1"``: none):
        each particle counts once per operator and each half model holds one asymmetric unit's
        Gaussians (``n_gaussians / |G|``), drawn with all copies
    helical : helical symmetry summed into each half set's statistics before the point group's,
        as ``relion_reconstruct --helical_twist --helical_rise --nr_helical_asu`` does
        (:mod:`cryosplat.core.helical`; grid engine); None: none
    fsc_mask : a mask (MRC) the resolution is read within (:mod:`cryosplat.validation.user_mask`),
        on the map's grid or the particles'; None: the soft sphere, or the automatic mask
    pose_check : whether the poses are checked against a converter's slips, and the images'
        CTF state against the metadata's, before the run
        (:func:`cryosplat.reconstruct.pose_check.apply_pose_check`): ``"auto"`` on large sets,
        ``"on"``, ``"off"``
    splat : settings of the per-image engine
    grid : settings of the Fourier-statistics engine
    memory : the memory bound and any Fourier crop of the images
        (:mod:`cryosplat.reconstruct.grid.memory_plan`)
    """

    engine: str = "grid"
    n_gaussians: int | None = None
    seed: int = 0
    device: str = "auto"
    invert_contrast: bool = False
    dust_sds: float = DUST_SDS
    use_random_subset: bool = True
    init_radius_fraction: float = 0.3
    mask_soft_width_px: float = 6.0
    local_weight_sigma_px: float | None = None
    blend_with_data: bool = True
    keep_checkpoints: bool = False
    deterministic: bool = False
    symmetry: str = "C1"
    helical: HelicalSymmetry | None = None
    fsc_mask: str | None = None
    pose_check: str = "auto"
    splat: SplatEngineConfig = field(default_factory=SplatEngineConfig)
    grid: GridEngineConfig = field(default_factory=GridEngineConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)

    def validate(self) -> None:
        self.symmetry = normalize_symmetry(self.symmetry)
        if self.grid.fit.symmetry != self.symmetry:  # one record of the group in config.json
            self.grid = replace(self.grid, fit=replace(self.grid.fit, symmetry=self.symmetry))
        if self.engine not in ENGINES:
            raise InputError(f"engine must be one of {', '.join(ENGINES)}, got '{self.engine}'")
        if self.helical is not None:
            self.helical.validate()
            if self.engine != "grid":
                raise InputError(
                    "helical symmetry is imposed on the grid engine's statistics; the per-image "
                    f"engine ({self.engine}) has none: leave out --engine {self.engine}"
                )
        if self.pose_check not in POSE_CHECK_MODES:
            raise InputError(
                f"pose_check must be one of {', '.join(POSE_CHECK_MODES)}, got {self.pose_check!r}"
            )
        if self.n_gaussians is not None and self.n_gaussians < 1:
            raise InputError(f"n_gaussians must be at least 1, got {self.n_gaussians}")
        if self.n_gaussians is not None and self.n_gaussians > MAX_GAUSSIANS:
            raise InputError(
                f"n_gaussians {self.n_gaussians} is more than {MAX_GAUSSIANS:,} (the default is "
                "1,000-30,000 from the box); that many would not fit in memory"
            )
        check_dust_sds(self.dust_sds)
        if self.seed < 0:
            raise InputError(f"seed must be a non-negative integer, got {self.seed}")
        sigma = self.local_weight_sigma_px
        if sigma is not None and not 0 <= sigma <= MAX_LOCAL_WEIGHT_SIGMA_PX:
            raise InputError(
                f"local_weight_sigma_px must be from 0 (off) to {MAX_LOCAL_WEIGHT_SIGMA_PX} "
                f"voxels, got {self.local_weight_sigma_px}"
            )
        if not 0 < self.init_radius_fraction <= 0.5:
            raise InputError(
                f"init_radius_fraction must be in (0, 0.5], got {self.init_radius_fraction}"
            )
        try:
            self.splat.validate()
        except ValueError as exc:
            raise InputError(str(exc)) from None
        self.grid.validate()
        self.memory.validate()

    def map_settings(
        self,
        origin_angstrom: float = 0.0,
        fsc_mask: FSCMask | None = None,
        source_box: int | None = None,
    ) -> MapSettings:
        """How the outputs make the map of the half models
        (:func:`~cryosplat.reconstruct.report.write_outputs`), the maps' header origin
        ``origin_angstrom`` (:attr:`MemoryPlan.map_origin_angstrom`), the user's mask as read
        (:func:`~cryosplat.validation.user_mask.load_fsc_mask`), the odd box the maps are written
        back at (:func:`~cryosplat.reconstruct.written_grid.source_box_to_write`)."""
        return MapSettings(
            self.mask_soft_width_px,
            self.symmetry,
            self.local_weight_sigma_px,
            origin_angstrom,
            fsc_mask,
            source_box,
        )


def default_n_gaussians(box: int) -> int:
    """Gaussians per half model: about one per 40 voxels of a sphere of radius 0.4·D, 1k–30k.

    Measured on the benchmark sets (FSC 0.5 with the truth): one per 80 voxels gave 3.62 / 5.25 /
    9.19 Å on 8ZPM (box 96) / 6VXX (box 128) / EMD-6824 (box 70); twice as many 3.56 / 5.02 /
    9.06 Å at the same time on 8ZPM and +17 % on 6VXX; more still helps the spike a little more
    (4.80 Å at 25k) at a further +25 % in time.
    """
    sphere_voxels = 4.0 / 3.0 * math.pi * (0.4 * box) ** 3
    return int(min(GAUSSIANS_CAP, max(1_000, round(sphere_voxels / 40.0, -2))))
