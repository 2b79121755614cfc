"""Cross-validated resolution of model maps: each half model against the other half's data.

Two Gaussian models fitted to independent halves are smooth, and their high-frequency content is a
deterministic extension of their shapes: the FSC between them stays high where neither is right (the
CryoSplat paper's FSCs never fall below 0.143). What the data can vouch for is measured against data:
with ``D_A``, ``D_B`` the direct Fourier inversions of the two half sets (independent noise) and
``M_A``, ``M_B`` the half models,

    ``C(s) = ½ [FSC(M_A, D_B) + FSC(M_B, D_A)] / sqrt(FSC(D_A, D_B))``

estimates, per shell, the correlation of a half model with the truth (``D_B`` = truth + noise
independent of ``M_A``; ``FSC(D_A, D_B)`` estimates the truth's share of ``D``'s power). Where the
data's own FSC is within noise of zero, nothing can be vouched for and ``C`` is 0. The resolution is
where ``C`` falls below 0.5, the criterion for a map against a reference; the half-map equivalent
``C² / (2 − C²)`` crosses 0.143 at the same shell (Rosenthal & Henderson's ``C_ref`` inverted).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from cryosplat.validation.fsc import _shell_index, fsc, resolution_at, shell_resolutions
from cryosplat.validation.masks import spherical_mask

__all__ = ["CrossValidatedFSC", "cross_validated_fsc", "data_half_maps", "ResolutionMonitor"]


@dataclass
class CrossValidatedFSC:
    """Per-shell curves (D//2+1,) of the cross-validation and the resolution they give."""

    box: int
    pixel_size_angstrom: float
    data_fsc: np.ndarray
    model_a_vs_data_b: np.ndarray
    model_b_vs_data_a: np.ndarray
    model_vs_truth_estimate: np.ndarray
    half_map_equivalent: np.ndarray

    @property
    def resolution_angstrom(self) -> float:
        """Where the estimated model-vs-truth correlation falls below 0.5."""
        return resolution_at(self.model_vs_truth_estimate, 0.5, self.box, self.pixel_size_angstrom)

    @property
    def data_resolution_angstrom(self) -> float:
        """0.143 of the data's own half-map FSC (what direct inversion achieves)."""
        return resolution_at(self.data_fsc, 0.143, self.box, self.pixel_size_angstrom)

    def to_dict(self) -> dict:
        res = shell_resolutions(self.box, self.pixel_size_angstrom)
        return {
            "resolution_angstrom": self.resolution_angstrom,
            "definition": "C = mean(FSC(M_A, D_B), FSC(M_B, D_A)) / sqrt(FSC(D_A, D_B)); "
            "resolution where C < 0.5 (half-map equivalent C^2/(2-C^2) < 0.143)",
            "data_half_map_resolution_0143_angstrom": self.data_resolution_angstrom,
            "resolution_per_shell_angstrom": [
                None if not np.isfinite(r) else float(r) for r in res
            ],
            "curves": {
                name: [float(x) for x in getattr(self, name)]
                for name in (
                    "data_fsc",
                    "model_a_vs_data_b",
                    "model_b_vs_data_a",
                    "model_vs_truth_estimate",
                    "half_map_equivalent",
                )
            },
        }


def _noise_floor(box: int, sigmas: float = 4.0) -> np.ndarray:
    """FSC noise level per shell: ``sigmas / sqrt(n/2)`` with ``n`` voxels in the shell.

    (The first shells hold too few voxels for this to mean anything; they are always kept.)
    """
    shells = _shell_index(box).reshape(-1).numpy()
    counts = np.bincount(shells, minlength=box // 2 + 1)[: box // 2 + 1].astype(np.float64)
    return sigmas / np.sqrt(np.maximum(counts, 2.0) / 2.0)


def cross_validated_fsc(
    model_a: np.ndarray,
    model_b: np.ndarray,
    data_a: np.ndarray,
    data_b: np.ndarray,
    mask: np.ndarray,
    pixel_size_angstrom: float,
) -> CrossValidatedFSC:
    """Estimate how well half models match the truth from the half sets' own data.

    Parameters
    ----------
    model_a, model_b : (D, D, D) maps of the half models
    data_a, data_b : (D, D, D) direct Fourier inversions of the same half sets
    mask : (D, D, D) soft mask applied to all four
        All five numpy arrays, or all five tensors on one device (the FSCs are computed there).
    pixel_size_angstrom : float

    Returns
    -------
    CrossValidatedFSC
    """
    box = model_a.shape[0]
    data_fsc = fsc(data_a * mask, data_b * mask)
    cross_a = fsc(model_a * mask, data_b * mask)
    cross_b = fsc(model_b * mask, data_a * mask)
    valid = data_fsc > np.minimum(_noise_floor(box), 0.3)
    valid[0] = True
    # Shells past the first one the data cannot vouch for stay unvouched.
    first_invalid = np.flatnonzero(~valid[1:])
    if first_invalid.size:
        valid[first_invalid[0] + 1 :] = False
    root = np.sqrt(np.where(valid, data_fsc, 1.0))
    estimate = np.where(valid, 0.5 * (cross_a + cross_b) / root, 0.0)
    estimate = np.clip(estimate, -1.0, 1.0)
    estimate[0] = 1.0 if estimate[0] > 0 else estimate[0]
    c2 = estimate**2
    equivalent = np.sign(estimate) * c2 / (2.0 - c2)
    return CrossValidatedFSC(
        box, float(pixel_size_angstrom), data_fsc, cross_a, cross_b, estimate, equivalent
    )


def data_half_maps(statistics, sign: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Direct Fourier inversions ``D_A, D_B`` of two half sets' statistics (``FourierStatistics``).

    ``sign = -1`` for images that hold protein dark.
    """
    return tuple(sign * s.reconstruct_wiener().cpu().numpy() for s in statistics)


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
    """

    def __init__(
        self,
        data_maps: tuple[np.ndarray, np.ndarray],
        pixel_size_angstrom: float,
        device: torch.device | str | None = None,
    ):
        self.device = torch.device("cpu" if device is None else device)
        self.data_maps = tuple(
            torch.as_tensor(np.asarray(d), dtype=torch.float64).to(self.device) for d in data_maps
        )
        self.pixel_size_angstrom = float(pixel_size_angstrom)
        mask = spherical_mask(data_maps[0].shape[0])
        self.mask = torch.as_tensor(mask, dtype=torch.float64).to(self.device)

    def __call__(self, model_a, model_b) -> float:
        """Resolution (Å) of two :class:`~cryosplat.model.gaussians.GaussianModel` half models."""
        with torch.no_grad():
            a, b = (
                m.voxelize().detach().to(self.device, torch.float64) for m in (model_a, model_b)
            )
        cv = cross_validated_fsc(a, b, *self.data_maps, self.mask, self.pixel_size_angstrom)
        return cv.resolution_angstrom
