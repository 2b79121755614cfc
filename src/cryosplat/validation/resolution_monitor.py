"""The cross-validated resolution of two half models, checked as a fit goes (after each stage).

:func:`cryosplat.validation.crossval.cross_validated_fsc` of the half models against the half sets'
direct inversions, the models voxelised on a coarse stage's grid where that is all they hold.
"""

from __future__ import annotations

import numpy as np
import torch

from cryosplat.core.fourier import fourier_pad_volume
from cryosplat.validation.crossval import cross_validate
from cryosplat.validation.masks import spherical_mask
from cryosplat.validation.shell_terms import DataSpectra

__all__ = ["ResolutionMonitor"]


class ResolutionMonitor:
    """The cross-validated resolution of two half models, evaluated as a fit goes.

    Parameters
    ----------
    data_maps : (D_A, D_B)
        Direct Fourier inversions of the two half sets (:func:`data_half_maps`).
    pixel_size_angstrom : float
    device : torch device, optional
        Where the maps are kept and the FSCs computed (in double precision); the CPU by default.
        On a GPU this takes the per-stage check off the CPU (a few seconds per call at box 256).
    sampled_share : array (D//2 + 1,), optional
        Per shell, the share of its frequencies the data sample
        (:class:`~cryosplat.validation.shell_terms.DataSpectra`).
    """

    def __init__(
        self,
        data_maps: tuple[np.ndarray, np.ndarray],
        pixel_size_angstrom: float,
        device: torch.device | str | None = None,
        sampled_share: np.ndarray | None = None,
    ):
        self.device = torch.device("cpu" if device is None else device)
        data = [
            torch.as_tensor(np.asarray(d), dtype=torch.float64).to(self.device) for d in data_maps
        ]
        self.box = data[0].shape[0]
        self.pixel_size_angstrom = float(pixel_size_angstrom)
        mask = torch.as_tensor(spherical_mask(self.box)).to(self.device)  # float32: exact
        # The data's masked spectra and sums, made once: each check transforms only the models.
        self.data = DataSpectra(*data, mask, sampled_share=sampled_share)

    def __call__(self, model_a, model_b, box: int | None = None) -> float:
        """Resolution (Å) of two :class:`~cryosplat.model.gaussians.GaussianModel` half models.

        ``box``: voxelise them on a coarser grid of the same extent (a coarse stage's grid, where
        its broad Gaussians are cheap: at the full box they were most of this check's time) and
        compare them, Fourier-padded, with the full box's data: the same check, up to that grid's
        Nyquist limit. The full box by default.
        """
        full = self.box
        box = full if box is None else min(int(box), full)
        pixel = self.pixel_size_angstrom * full / box
        with torch.no_grad():
            a, b = (
                fourier_pad_volume(m.voxelize(box, pixel).detach().double(), full).to(self.device)
                for m in (model_a, model_b)
            )
        cv = cross_validate(self.data, a, b, self.pixel_size_angstrom)
        return cv.resolution_angstrom
