"""The Gaussian mixture model of a density map and its voxelisation.

``V(r) = Σᵢ Aᵢ N(r; μᵢ, Σᵢ)`` with ``Σ = R S Sᵀ Rᵀ``: means ``μ`` in Å (internal frame of
:mod:`cryosplat.core.conventions`), scales ``s`` in Å (softplus of a raw parameter), rotations from
quaternions ``(w, x, y, z)``, amplitudes ``A`` (softplus of a raw parameter; the mass of each
Gaussian, so a map integrates to ``Σ A``).

Saved models are ``.npz`` files with arrays ``means_angstrom (N, 3)``, ``scales_angstrom (N, 3)``,
``quaternions (N, 4)``, ``amplitudes (N,)`` (activated values) and scalars ``box``,
``pixel_size_angstrom``, ``format = "cryosplat-gaussians"``, ``version = 1``, and optionally
``symmetry`` (a point group of :mod:`cryosplat.core.symmetry`; absent means C1).

A model with a symmetry other than C1 holds the Gaussians of one asymmetric unit: its density is the
sum of the ``|G|`` copies ``(R_g μ, R_g Σ R_gᵀ)`` (:meth:`GaussianModel.expanded_parameters`), which
:meth:`GaussianModel.voxelize` draws; :meth:`GaussianModel.expanded` is the same molecule as a C1
model holding every copy (what ``reconstruct`` exports).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike

from cryosplat.core.errors import InputError
from cryosplat.core.mixture import Mixture
from cryosplat.core.rotations import quaternion_to_matrix, random_quaternions
from cryosplat.core.symmetry import expand_gaussians, normalize_symmetry, symmetry_operators
from cryosplat.io.atomic import atomic_path
from cryosplat.model.voxelize import voxelize_gaussians

__all__ = ["GaussianModel", "inverse_softplus"]

FORMAT_NAME = "cryosplat-gaussians"
FORMAT_VERSION = 1


def inverse_softplus(x: torch.Tensor) -> torch.Tensor:
    """``y`` with ``softplus(y) = x`` for ``x > 0``."""
    return x + torch.log(-torch.expm1(-x))


class GaussianModel(torch.nn.Module):
    """A mixture of anisotropic 3D Gaussians with positive scales and amplitudes (or signed ones).

    Parameters
    ----------
    means_angstrom : torch.Tensor, shape (N, 3)
    scales_angstrom : torch.Tensor, shape (N, 3), > 0
    quaternions : torch.Tensor, shape (N, 4)
    amplitudes : torch.Tensor, shape (N,), > 0 unless ``signed``
    box : int
        Box of the maps this model is voxelised to by default.
    pixel_size_angstrom : float
    symmetry : str
        Point group (``"C1"``: none); otherwise the Gaussians are one asymmetric unit's.
    signed : bool, optional
        Amplitudes may be negative (density below the solvent level: halos, flattened solvent
        edges); their raw parameter is then the amplitude itself, not its inverse softplus. Default:
        signed when any amplitude is not positive. The splatting renderers need positive
        amplitudes; voxelisation and the grid engine take either.
    """

    def __init__(
        self,
        means_angstrom: torch.Tensor,
        scales_angstrom: torch.Tensor,
        quaternions: torch.Tensor,
        amplitudes: torch.Tensor,
        box: int,
        pixel_size_angstrom: float,
        symmetry: str = "C1",
        signed: bool | None = None,
    ) -> None:
        super().__init__()
        self.symmetry = normalize_symmetry(symmetry)
        means_angstrom = torch.as_tensor(means_angstrom)
        dtype = means_angstrom.dtype if means_angstrom.is_floating_point() else torch.float32
        n = means_angstrom.shape[0]
        shapes = {
            "means_angstrom": (means_angstrom, (n, 3)),
            "scales_angstrom": (torch.as_tensor(scales_angstrom), (n, 3)),
            "quaternions": (torch.as_tensor(quaternions), (n, 4)),
            "amplitudes": (torch.as_tensor(amplitudes), (n,)),
        }
        for name, (t, shape) in shapes.items():
            if tuple(t.shape) != shape:
                raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
            if not torch.isfinite(t).all():
                raise ValueError(f"{name} holds NaN or infinite values")
        if signed is None:
            signed = bool((shapes["amplitudes"][0] <= 0).any())
        if (shapes["scales_angstrom"][0] <= 0).any():
            raise ValueError("scales_angstrom must be positive")
        if not signed and (shapes["amplitudes"][0] <= 0).any():
            raise ValueError("amplitudes must be positive (or the model signed)")
        self.signed = bool(signed)
        if box < 1 or not pixel_size_angstrom > 0:
            raise ValueError(f"bad box {box} or pixel_size_angstrom {pixel_size_angstrom}")
        self.box = int(box)
        self.pixel_size_angstrom = float(pixel_size_angstrom)

        def param(t: torch.Tensor) -> torch.nn.Parameter:
            return torch.nn.Parameter(torch.as_tensor(t, dtype=dtype).detach().clone())

        self.means = param(means_angstrom)
        self.raw_scales = param(inverse_softplus(shapes["scales_angstrom"][0].to(dtype)))
        self.raw_quaternions = param(shapes["quaternions"][0])
        amplitudes = shapes["amplitudes"][0].to(dtype)
        self.raw_amplitudes = param(amplitudes if signed else inverse_softplus(amplitudes))

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def scales(self) -> torch.Tensor:
        """Scales (Å), shape (N, 3)."""
        return F.softplus(self.raw_scales)

    @property
    def quaternions(self) -> torch.Tensor:
        """Unit quaternions ``(w, x, y, z)``, shape (N, 4)."""
        return self.raw_quaternions / self.raw_quaternions.norm(dim=-1, keepdim=True).clamp_min(
            1e-12
        )

    @property
    def amplitudes(self) -> torch.Tensor:
        """Amplitudes (integrated density of each Gaussian), shape (N,)."""
        return self.raw_amplitudes if self.signed else F.softplus(self.raw_amplitudes)

    def symmetry_operators(self) -> np.ndarray | None:
        """The group's rotations ``(|G|, 3, 3)``, or None for C1."""
        return None if self.symmetry == "C1" else symmetry_operators(self.symmetry)

    def mixture(self) -> Mixture:
        """Means, scales, unit quaternions and amplitudes (activated, differentiable)."""
        return Mixture(self.means, self.scales, self.quaternions, self.amplitudes)

    def expanded_parameters(self) -> Mixture:
        """The mixture of all ``|G|`` copies (differentiable)."""
        return expand_gaussians(self.mixture(), self.symmetry_operators())

    def expanded(self) -> GaussianModel:
        """The full molecule as a C1 model (``|G| · N`` Gaussians); ``self`` when C1."""
        if self.symmetry == "C1":
            return self
        with torch.no_grad():
            params = self.expanded_parameters().detach()
        model = GaussianModel(*params, self.box, self.pixel_size_angstrom, signed=self.signed)
        return model.to(self.means.device)

    def covariances(self) -> torch.Tensor:
        """``Σ = R S Sᵀ Rᵀ`` (Å²), shape (N, 3, 3)."""
        rot = quaternion_to_matrix(self.raw_quaternions)
        return (rot * self.scales.pow(2)[:, None, :]) @ rot.transpose(-1, -2)

    @classmethod
    def random(
        cls,
        n_gaussians: int,
        box: int,
        pixel_size_angstrom: float,
        seed: int = 0,
        radius_fraction: float = 0.4,
        scale_angstrom: float | None = None,
        total_amplitude: float = 1.0,
        dtype: torch.dtype = torch.float32,
        symmetry: str = "C1",
        centre_angstrom: ArrayLike | None = None,
    ) -> GaussianModel:
        """Random initialisation: means uniform in a sphere, isotropic scales, random rotations.

        Parameters
        ----------
        n_gaussians : int
        box, pixel_size_angstrom : the map grid
        seed : int
        radius_fraction : float
            Sphere radius as a fraction of the box edge.
        scale_angstrom : float, optional
            Initial scale; default ``2 × pixel``.
        total_amplitude : float
            Sum of amplitudes, shared equally.
        symmetry : str
            Point group: the ``n_gaussians`` are one asymmetric unit's.
        centre_angstrom : array-like (3,), optional
            The sphere's centre ``(x, y, z)``, Å from the box's centre voxel; default that voxel.
        """
        if n_gaussians < 1:
            raise ValueError(f"n_gaussians must be positive, got {n_gaussians}")
        rng = np.random.default_rng(seed)
        radius = radius_fraction * box * pixel_size_angstrom
        direction = rng.normal(size=(n_gaussians, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        r = radius * rng.uniform(size=(n_gaussians, 1)) ** (1.0 / 3.0)
        s = 2.0 * pixel_size_angstrom if scale_angstrom is None else scale_angstrom
        means = torch.tensor(direction * r, dtype=dtype)
        if centre_angstrom is not None:
            centre = torch.as_tensor(np.asarray(centre_angstrom, dtype=np.float64), dtype=dtype)
            if centre.shape != (3,):
                raise ValueError(
                    f"centre_angstrom must be (x, y, z), got shape {tuple(centre.shape)}"
                )
            means = means + centre
        return cls(
            means,
            torch.full((n_gaussians, 3), float(s), dtype=dtype),
            torch.tensor(random_quaternions(n_gaussians, rng), dtype=dtype),
            torch.full((n_gaussians,), total_amplitude / n_gaussians, dtype=dtype),
            box,
            pixel_size_angstrom,
            symmetry,
        )

    def voxelize(
        self, box: int | None = None, pixel_size_angstrom: float | None = None, n_sigma: float = 3.0
    ) -> torch.Tensor:
        """The density map (D, D, D) on this model's grid, or on another ``box``/pixel size.

        All ``|G|`` copies of a symmetric model are drawn.
        """
        return voxelize_gaussians(
            self.expanded_parameters(),
            self.box if box is None else box,
            self.pixel_size_angstrom if pixel_size_angstrom is None else pixel_size_angstrom,
            n_sigma=n_sigma,
        )

    def subset(self, keep: torch.Tensor) -> GaussianModel:
        """A new model with the Gaussians selected by ``keep`` (mask or indices)."""
        with torch.no_grad():
            return self._with_parameters(
                self.means[keep], self.scales[keep], self.quaternions[keep], self.amplitudes[keep]
            )

    def with_amplitudes_times(self, factor: float) -> GaussianModel:
        """A new model, the same but for its amplitudes times ``factor`` (> 0)."""
        if not factor > 0:
            raise ValueError(f"factor must be positive, got {factor}")
        with torch.no_grad():
            return self._with_parameters(
                self.means, self.scales, self.quaternions, self.amplitudes * factor
            )

    def _with_parameters(self, means, scales, quaternions, amplitudes) -> GaussianModel:
        """A new model of these parameters on this one's grid, symmetry and sign."""
        return GaussianModel(
            means,
            scales,
            quaternions,
            amplitudes,
            self.box,
            self.pixel_size_angstrom,
            self.symmetry,
            signed=self.signed,
        )

    @classmethod
    def average(cls, models: list[GaussianModel]) -> GaussianModel:
        """The mixture whose density is the mean of the models' densities: their Gaussians
        together, each amplitude divided by the number of models (one model: that model).

        Voxelising it gives the mean of the models' maps (voxelisation is linear in the
        amplitudes). The models must share box, pixel size and symmetry.
        """
        if not models:
            raise ValueError("average of no models")
        if len(models) == 1:
            return models[0]
        first = models[0]
        for m in models[1:]:
            if (m.box, m.pixel_size_angstrom, m.symmetry) != (
                first.box,
                first.pixel_size_angstrom,
                first.symmetry,
            ):
                raise ValueError(
                    f"models differ: box {m.box}, {m.pixel_size_angstrom} Å/px, {m.symmetry} "
                    f"against box {first.box}, {first.pixel_size_angstrom} Å/px, {first.symmetry}"
                )
        with torch.no_grad():
            return cls(
                torch.cat([m.means for m in models]),
                torch.cat([m.scales for m in models]),
                torch.cat([m.quaternions for m in models]),
                torch.cat([m.amplitudes for m in models]) / len(models),
                first.box,
                first.pixel_size_angstrom,
                first.symmetry,
                signed=any(m.signed for m in models),
            )

    def state_arrays(self) -> dict[str, np.ndarray]:
        """Activated parameters as numpy arrays (the saved format)."""
        with torch.no_grad():
            return {
                "means_angstrom": self.means.detach().cpu().double().numpy(),
                "scales_angstrom": self.scales.detach().cpu().double().numpy(),
                "quaternions": self.quaternions.detach().cpu().double().numpy(),
                "amplitudes": self.amplitudes.detach().cpu().double().numpy(),
            }

    def save(self, path: str | Path) -> None:
        """Write the model atomically as ``.npz`` (format in the module docstring)."""
        extra = {} if self.symmetry == "C1" else {"symmetry": self.symmetry}
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(
                tmp,
                format=FORMAT_NAME,
                version=FORMAT_VERSION,
                box=self.box,
                pixel_size_angstrom=self.pixel_size_angstrom,
                **extra,
                **self.state_arrays(),
            )

    @classmethod
    def load(cls, path: str | Path, dtype: torch.dtype = torch.float32) -> GaussianModel:
        """Read a model written by :meth:`save`."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: Gaussian model file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                if "format" not in z or str(z["format"]) != FORMAT_NAME:
                    raise InputError(f"{path}: not a cryosplat Gaussian model (.npz)")
                arrays = {k: z[k] for k in z.files}
        except (ValueError, OSError) as exc:
            raise InputError(f"{path}: cannot read Gaussian model ({exc})") from None
        if int(arrays["version"]) > FORMAT_VERSION:
            raise InputError(
                f"{path}: model format version {int(arrays['version'])} is newer "
                f"than this cryosplat ({FORMAT_VERSION})"
            )
        try:
            return cls(
                *(
                    torch.tensor(arrays[k], dtype=dtype)
                    for k in ("means_angstrom", "scales_angstrom", "quaternions", "amplitudes")
                ),
                int(arrays["box"]),
                float(arrays["pixel_size_angstrom"]),
                str(arrays["symmetry"]) if "symmetry" in arrays else "C1",
            )
        except ValueError as exc:
            raise InputError(f"{path}: {exc}") from None
