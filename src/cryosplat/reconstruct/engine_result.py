"""What an engine hands to the run's outputs, and how the outputs make the map of it.

Both engines (:mod:`cryosplat.reconstruct.grid.engine`, :mod:`cryosplat.reconstruct.splat.runner`)
return an :class:`EngineResult`; :func:`cryosplat.reconstruct.report.write_outputs` turns it into
the half maps, the map, the FSC and the models, as :class:`MapSettings` says.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cryosplat.model.gaussians import GaussianModel
from cryosplat.validation.sampling import SampledFrequencies
from cryosplat.validation.user_mask import FSCMask

__all__ = ["EngineResult", "MapSettings"]

DataMaps = tuple[np.ndarray, np.ndarray]


@dataclass
class EngineResult:
    """The two half models and what the outputs need besides them.

    Attributes
    ----------
    models : (GaussianModel, GaussianModel)
        The half models of halves A and B (on the fit's device).
    data_maps : (D_A, D_B) or None
        Each half set's direct Fourier inversion, shape (D, D, D), for the cross-validated
        resolution; None on ranks other than 0 (they write nothing) or where none was made.
    blend_maps : (D_A, D_B) or None
        The inversions each half map is blended with by shell
        (:mod:`cryosplat.validation.data_blend`); None: no blend.
    earlier_stages : list of (GaussianModel, GaussianModel, float)
        Earlier stages' half models, each with its stage's Nyquist shell (in shells of the full
        box): the half maps are, at each frequency, the mean of the fits that hold it
        (:mod:`cryosplat.reconstruct.stage_mean`). Empty: the last fit alone.
    history : list of dict
        One entry per stage (grid) or epoch (splat), with its cross-validated resolution.
    timings_s : dict or None
        Wall time of the engine's parts (s).
    sampling : SampledFrequencies or None
        The map's frequencies the data sample at all, and their share per shell
        (:mod:`cryosplat.validation.sampling`); None: taken as all.
    left_out : dict or None
        The images left out for their background's structure
        (:meth:`~cryosplat.reconstruct.grid.noise_levels.NoiseLevels.structure_summary`); None:
        none.
    left_out_rows : np.ndarray or None
        Those images' rows of the particle set, sorted (written for the user by
        :mod:`cryosplat.reconstruct.left_out`); None where no limit was set.
    shrunk_maps : (S_A, S_B) or None
        ``blend_maps`` shrunk (:mod:`cryosplat.validation.shrunk_blend`), which the shells where
        the map gains by them take instead; None: none.
    """

    models: tuple[GaussianModel, GaussianModel]
    data_maps: DataMaps | None = None
    blend_maps: DataMaps | None = None
    earlier_stages: list[tuple[GaussianModel, GaussianModel, float]] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    timings_s: dict[str, float] | None = None
    sampling: SampledFrequencies | None = None
    left_out: dict | None = None
    left_out_rows: np.ndarray | None = None
    shrunk_maps: DataMaps | None = None

    def last_resolution_angstrom(self) -> float:
        """The cross-validated resolution of the last stage or epoch in :attr:`history` (Å;
        infinite where none was measured)."""
        for record in reversed(self.history):
            value = record.get("resolution_angstrom")
            if value is not None:
                return float(value)
        return float("inf")

    def summary(self) -> dict:
        """What ``run.json`` keeps of it: the history, the timings and the images left out for
        their background's structure."""
        out: dict = {"history": self.history}
        if self.timings_s is not None:
            out["timings_s"] = self.timings_s
        if self.left_out is not None:
            out["background_structure"] = self.left_out
        return out


@dataclass(frozen=True)
class MapSettings:
    """How the map is made of the half maps and how its FSC is masked.

    Attributes
    ----------
    soft_width_px : float
        Soft edge of the spherical mask (voxels).
    symmetry : str
        The models' point group (a symmetric model is written expanded: the whole molecule).
    local_weight_sigma_px : float or None
        Window of the map's local Wiener weight (voxels;
        :func:`~cryosplat.validation.local_weight.apply_local_weight`); 0: the plain mean of the
        half maps; None (the default): from the fit's last cross-validated resolution
        (:func:`~cryosplat.validation.local_weight.window_for_resolution`).
    origin_angstrom : float
        Header origin of a map written at the working box, and shift of the exported
        pseudo-atoms (Å, each axis): 0 but for images of an odd box, used cropped to the even box
        below (:func:`~cryosplat.core.conventions.cropped_map_origin_angstrom`).
    fsc_mask : FSCMask or None
        A mask the user gave, on the map's grid: the resolution is read within it
        (:mod:`cryosplat.validation.user_mask`); None: the soft sphere, or the automatic mask.
    source_box : int or None
        The images' odd box, cropped by one voxel to the engines' even box: the maps are
        written back at it, at the images' own pixel and header origin 0 (the pseudo-atoms
        still shifted by ``origin_angstrom``; :mod:`cryosplat.reconstruct.written_grid`); None:
        at the working box.
    """

    soft_width_px: float = 6.0
    symmetry: str = "C1"
    local_weight_sigma_px: float | None = None
    origin_angstrom: float = 0.0
    fsc_mask: FSCMask | None = None
    source_box: int | None = None

    def __post_init__(self) -> None:
        if not self.soft_width_px >= 0:
            raise ValueError(f"soft_width_px must be ≥ 0, got {self.soft_width_px}")
        if self.local_weight_sigma_px is not None and not self.local_weight_sigma_px >= 0:
            raise ValueError(f"local_weight_sigma_px must be ≥ 0, got {self.local_weight_sigma_px}")
