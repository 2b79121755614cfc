"""The raw tensors of a Gaussian mixture while :mod:`cryosplat.reconstruct.grid.fit` fits it.

Means, softplus scales, raw quaternions and amplitudes relative to their mean (free-signed, or a
fixed sign per Gaussian times a softplus magnitude), the voxelisation of all symmetry copies, and
the model they make.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from cryosplat.core.errors import CryosplatError
from cryosplat.core.mixture import Mixture
from cryosplat.core.symmetry import expand_gaussians, symmetrize_on_grid, voxel_permutations
from cryosplat.model.gaussians import GaussianModel, inverse_softplus
from cryosplat.model.two_grid import TwoGridVolume, voxelize_two_grids
from cryosplat.model.voxelize import voxelize_gaussians

__all__ = ["FitParameters"]


class FitParameters:
    """Raw tensors of a mixture being fitted (amplitudes relative to ``amplitude_unit``).

    Free-signed amplitudes (``signed``) are their raw parameter; otherwise each amplitude is
    ``sign · softplus(raw)`` with a fixed sign per Gaussian (all +1 unless the starting model holds
    negative amplitudes: a negative population). A symmetric model's tensors are one asymmetric
    unit's.
    """

    def __init__(self, model: GaussianModel, device, signed: bool = False) -> None:
        self.signed = signed
        self.symmetry = model.symmetry
        ops = model.symmetry_operators()
        self.operators = None if ops is None else torch.as_tensor(ops, device=device)
        self._permutations: dict[int, torch.Tensor | None] = {}
        with torch.no_grad():
            amplitudes = model.amplitudes.detach().to(device, torch.float32)
            self.signs = None
            if not signed and bool((amplitudes < 0).any()):
                self.signs = torch.where(amplitudes < 0, -1.0, 1.0).to(device)
                amplitudes = amplitudes.abs().clamp_min(1e-30)
            self.amplitude_unit = float(amplitudes.abs().mean() if signed else amplitudes.mean())
            self.means = model.means.detach().to(device, torch.float32).clone()
            self.raw_scales = model.raw_scales.detach().to(device, torch.float32).clone()
            self.raw_quaternions = model.raw_quaternions.detach().to(device, torch.float32).clone()
            relative = amplitudes / self.amplitude_unit
            self.raw_amplitudes = relative.clone() if signed else inverse_softplus(relative)
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

    def activated(self) -> Mixture:
        """Means, scales, unit quaternions and relative amplitudes."""
        quaternions = self.raw_quaternions / self.raw_quaternions.norm(dim=-1, keepdim=True)
        scales = F.softplus(self.raw_scales)
        amplitudes = self.raw_amplitudes if self.signed else F.softplus(self.raw_amplitudes)
        if self.signs is not None:
            amplitudes = amplitudes * self.signs
        return Mixture(self.means, scales, quaternions, amplitudes)

    def voxelize(
        self, box: int, pixel: float, n_sigma: float, coarse_min_saving: float | None = None
    ) -> TwoGridVolume:
        """The map of all ``|G|`` copies, broad Gaussians on a grid of twice the voxel size
        unless ``coarse_min_saving`` is None (where that saves at least so many footprint
        values: :func:`~cryosplat.model.two_grid.voxelize_two_grids`). For groups that
        move voxels onto voxels (D2, C4, O, ...) the asymmetric unit is voxelised once and its
        rotated copies gathered (exact, ``|G|`` times less voxelisation); otherwise the expanded
        Gaussians are voxelised."""
        if self.operators is None:
            return self._voxelize(self.activated(), box, pixel, n_sigma, coarse_min_saving)
        perm = self._permutation(box)
        if perm is None:
            expanded = expand_gaussians(self.activated(), self.operators)
            return self._voxelize(expanded, box, pixel, n_sigma, coarse_min_saving)
        unit = self._voxelize(self.activated(), box, pixel, n_sigma, coarse_min_saving)
        coarse = unit.coarse
        if coarse is not None:
            coarse = symmetrize_on_grid(coarse, self._permutation(coarse.shape[-1]))
        return TwoGridVolume(symmetrize_on_grid(unit.fine, perm), coarse)

    @staticmethod
    def _voxelize(mixture: Mixture, box, pixel, n_sigma, min_saving) -> TwoGridVolume:
        if min_saving is not None:
            return voxelize_two_grids(mixture, box, pixel, n_sigma, min_saving)
        return TwoGridVolume(voxelize_gaussians(mixture, box, pixel, n_sigma=n_sigma))

    def _permutation(self, box: int) -> torch.Tensor | None:
        if box not in self._permutations:
            self._permutations[box] = voxel_permutations(self.symmetry, box, self.means.device)
        return self._permutations[box]

    def scale_bounds(
        self, pixel: float, scale_pixels: tuple[float, float], negative_pixels: tuple[float, float]
    ) -> tuple:
        """Bounds of the raw (softplus) scales for :meth:`clamp_scales`: ``scale_pixels``
        (``negative_pixels`` for a negative population) in pixels of a stage grid; floats when
        every Gaussian shares them, else ``(N, 1)`` tensors."""
        bounds = inverse_softplus(torch.tensor(scale_pixels, dtype=torch.float64) * pixel)
        if self.signs is None:
            return float(bounds[0]), float(bounds[1])
        negative = inverse_softplus(torch.tensor(negative_pixels, dtype=torch.float64) * pixel)
        device, dtype = self.raw_scales.device, self.raw_scales.dtype
        negative_rows = (self.signs < 0)[:, None]
        return tuple(
            torch.where(negative_rows, float(negative[i]), float(bounds[i])).to(device, dtype)
            for i in range(2)
        )

    def clamp_scales(self, bounds: tuple) -> None:
        """Keep the raw scales within ``bounds`` (:meth:`scale_bounds`)."""
        with torch.no_grad():
            self.raw_scales.clamp_(min=bounds[0], max=bounds[1])

    def model(self, amplitude_scale: float, box: int, pixel: float) -> GaussianModel:
        if not all(bool(torch.isfinite(t).all()) for t in self.tensors()):
            raise CryosplatError(
                "the fit diverged: the Gaussians' parameters became NaN or infinite; nothing "
                "was written (try smaller learning rates, or check the images and CTF)"
            )
        with torch.no_grad():
            means, scales, quaternions, amplitudes = self.activated()
            amplitudes = amplitudes * amplitude_scale
            signed = self.signed or self.signs is not None
            if not self.signed:
                magnitudes = amplitudes.abs().clamp_min(1e-30)
                amplitudes = magnitudes if self.signs is None else magnitudes * self.signs
            model = GaussianModel(
                means, scales, quaternions, amplitudes, box, pixel, self.symmetry, signed=signed
            )
        return model.to(self.means.device)
