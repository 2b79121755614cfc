"""Clean particle images of a model file, for simulation: splatted Gaussians or Fourier slices.

A projector holds a model on a ``box`` × ``pixel`` grid and makes images ``(B, D, D)`` per Å²
(line integrals of density per Å³) for map→image rotations ``A``, RELION origins (``image(p) =
projection(p + o)``) and an optional centred CTF, as in :mod:`cryosplat.core.conventions`:

* :class:`SplatProjector`: a :class:`~cryosplat.model.gaussians.GaussianModel` (from atoms or a saved
  ``.npz``) splatted by :func:`cryosplat.render.imaging.predict_images`;
* :class:`MapProjector`: a map's central slices from its zero-padded transform (trilinear, with the
  gridding correction; :mod:`cryosplat.core.fourier_slice`), shifted and CTF-multiplied in Fourier space.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryosplat.core.errors import InputError
from cryosplat.core.fourier import fft2_centered, ifft2_centered, phase_shift_2d
from cryosplat.core.fourier_slice import SliceReader
from cryosplat.io.mrc import read_map
from cryosplat.model.atoms import ATOM_SUFFIXES, model_from_atoms
from cryosplat.model.gaussians import GaussianModel
from cryosplat.render.imaging import predict_images

__all__ = [
    "ProjectorConfig",
    "SplatProjector",
    "MapProjector",
    "load_gaussian_model",
    "load_projector",
]

log = logging.getLogger(__name__)

MAP_SUFFIXES = (".mrc", ".map")
FOURIER_PAD = 2


@dataclass
class ProjectorConfig:
    """How to turn a model file into a projector.

    Attributes
    ----------
    box : int or None
        Image size D; required for atoms; for a map, must equal its box when given.
    pixel_size_angstrom : float or None
        Required for atoms; defaults to the Gaussian model's or the map header's.
    projection : str
        Atoms and Gaussian models: ``"splat"`` or ``"fourier"`` (slices of the voxelised model).
    backend : str
        Splatting backend of :mod:`cryosplat.render`.
    device : str
        torch device.
    bfactor_extra_angstrom2 : float
        B-factor added to every atom.
    n_sigma : float
        Splat footprint half-width in standard deviations.
    """

    box: int | None = None
    pixel_size_angstrom: float | None = None
    projection: str = "splat"
    backend: str = "auto"
    device: str = "cpu"
    bfactor_extra_angstrom2: float = 0.0
    n_sigma: float = 3.0


class SplatProjector:
    """Projects a Gaussian model (from atoms or a saved model) by splatting (``cryosplat.render.imaging``).

    Parameters
    ----------
    model : GaussianModel
        Rendered on its own ``box`` and ``pixel_size_angstrom``.
    backend : str
        Splatting backend (``"auto"``, ``"reference"`` or ``"fast"``).
    device : str
    source : Path
        The file it came from (named in error messages).
    n_sigma : float
        Splat footprint half-width in standard deviations.
    """

    def __init__(
        self, model: GaussianModel, backend: str, device: str, source: Path, n_sigma: float = 3.0
    ) -> None:
        self.model, self.source = model.to(device), source
        self.box, self.pixel_size_angstrom = model.box, model.pixel_size_angstrom
        self.backend, self.device, self.n_sigma = backend, torch.device(device), n_sigma
        self.method = f"Gaussian splatting ({len(model)} Gaussians, backend {backend})"

    def truth(self) -> np.ndarray:
        """The voxelised model (D, D, D), density per Å³."""
        with torch.no_grad():
            return self.model.voxelize().cpu().numpy()

    def images(
        self, rotations: np.ndarray, shifts_angstrom: np.ndarray, ctf: torch.Tensor | None
    ) -> np.ndarray:
        """Images (B, D, D) per Å² for rotations (B, 3, 3), RELION origins (B, 2) Å, CTF (B, D, D)."""
        with torch.no_grad():
            rot = torch.as_tensor(rotations, dtype=torch.float32, device=self.device)
            sh = torch.as_tensor(shifts_angstrom, dtype=torch.float32, device=self.device)
            out = predict_images(
                self.model, rot, sh, ctf, backend=self.backend, n_sigma=self.n_sigma
            )
        return out.cpu().numpy()


class MapProjector:
    """Projects a map by Fourier slices of its zero-padded transform (``cryosplat.core.fourier_slice``).

    The slices need an even grid. A map of odd box ``D`` is projected on the grid one voxel
    larger with a zero plane before each axis, which keeps its rotation centre (voxel ``D // 2``
    becomes ``(D + 1) // 2``, the even grid's), and each projection is cropped back by its first
    row and column before the shift and the CTF are applied on the ``D`` grid, as a projector of
    box ``D`` applies them.

    Parameters
    ----------
    volume : np.ndarray, shape (D, D, D), ``[z, y, x]``, density per Å³
    pixel_size_angstrom : float
    device : str
    source : Path
        The file it came from (named in error messages).
    """

    def __init__(
        self, volume: np.ndarray, pixel_size_angstrom: float, device: str, source: Path
    ) -> None:
        self.volume, self.source = volume, source
        self.box, self.pixel_size_angstrom = volume.shape[0], pixel_size_angstrom
        self.device = torch.device(device)
        self._odd = self.box % 2
        vol = torch.as_tensor(volume, dtype=torch.float32, device=self.device)
        if self._odd:
            vol = torch.nn.functional.pad(vol, (1, 0) * 3)
        self._slices = SliceReader.from_map(vol, FOURIER_PAD, pixel_size_angstrom)
        self.method = f"Fourier slices (trilinear with gridding correction, padding {FOURIER_PAD})"
        if self._odd:
            self.method += f", odd box {self.box} projected at {self.box + 1} and cropped"

    def truth(self) -> np.ndarray:
        """The input map (D, D, D)."""
        return self.volume

    def images(
        self, rotations: np.ndarray, shifts_angstrom: np.ndarray, ctf: torch.Tensor | None
    ) -> np.ndarray:
        """Images (B, D, D) per Å² for rotations (B, 3, 3), RELION origins (B, 2) Å, CTF (B, D, D)."""
        rot = torch.as_tensor(rotations, dtype=torch.float32, device=self.device)
        spectra = self._slices.slices(rot)
        if self._odd:
            spectra = fft2_centered(ifft2_centered(spectra).real[..., 1:, 1:])
        spectra = phase_shift_2d(
            spectra, torch.as_tensor(shifts_angstrom, device=self.device), self.pixel_size_angstrom
        )
        if ctf is not None:
            spectra = spectra * ctf
        return ifft2_centered(spectra).real.cpu().numpy()


def _model_projector(model: GaussianModel, config: ProjectorConfig, source: Path):
    if config.projection == "splat":
        return SplatProjector(model, config.backend, config.device, source, config.n_sigma)
    with torch.no_grad():
        volume = model.voxelize().cpu().numpy()
    return MapProjector(volume, model.pixel_size_angstrom, config.device, source)


def load_gaussian_model(
    path: str | Path,
    box: int | None,
    pixel_size_angstrom: float | None,
    bfactor_extra_angstrom2: float = 0.0,
) -> GaussianModel:
    """A Gaussian model from atoms (centred, five Gaussians per atom) or a saved ``.npz`` model.

    Parameters
    ----------
    path : ``.pdb``/``.ent``/``.cif``/``.mmcif`` atoms or ``.npz`` Gaussian model
    box, pixel_size_angstrom : the model's grid; required for atoms, for a saved model they replace
        its own when given
    bfactor_extra_angstrom2 : B-factor added to every atom (Å²)

    Raises
    ------
    InputError
        Missing file, unknown suffix, atoms without a box or pixel size.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{path}: model file not found")
    if suffix in ATOM_SUFFIXES:
        if box is None or pixel_size_angstrom is None:
            raise InputError(f"{path}: an atomic model needs --box and --pixel-size")
        return model_from_atoms(
            path, box, pixel_size_angstrom, bfactor_extra=bfactor_extra_angstrom2
        )
    if suffix == ".npz":
        model = GaussianModel.load(path)
        model.box = box or model.box
        model.pixel_size_angstrom = pixel_size_angstrom or model.pixel_size_angstrom
        return model
    raise InputError(f"{path}: unknown model type '{suffix}' (expected .pdb, .cif or .npz)")


def load_projector(model_path: Path, config: ProjectorConfig) -> SplatProjector | MapProjector:
    """The projector of a model file, chosen by its suffix.

    Parameters
    ----------
    model_path : Path
        ``.pdb``/``.ent``/``.cif``/``.mmcif`` atoms (``cryosplat.model.atoms.model_from_atoms``; needs
        ``box`` and pixel size), ``.npz`` Gaussian model, or ``.mrc``/``.map`` map (its box; its
        header voxel size unless one is given).
    config : ProjectorConfig

    Raises
    ------
    InputError
        Missing or unknown file, missing box/pixel for atoms, a map of another box.
    """
    suffix = model_path.suffix.lower()
    if not model_path.is_file():
        raise InputError(f"{model_path}: model file not found")
    if suffix in ATOM_SUFFIXES + (".npz",):
        model = load_gaussian_model(
            model_path, config.box, config.pixel_size_angstrom, config.bfactor_extra_angstrom2
        )
        return _model_projector(model, config, model_path)
    if suffix in MAP_SUFFIXES:
        volume, voxel = read_map(model_path)
        if config.box is not None and config.box != volume.shape[0]:
            raise InputError(
                f"{model_path}: the map's box is {volume.shape[0]}, not {config.box}; "
                "resample the map or leave out --box"
            )
        pixel = config.pixel_size_angstrom or voxel
        if not pixel > 0:
            raise InputError(f"{model_path}: the map header has no voxel size; give --pixel-size")
        if not math.isclose(pixel, voxel, rel_tol=1e-3):
            log.warning(
                "%s: using pixel size %.4f Å instead of the header's %.4f Å",
                model_path,
                pixel,
                voxel,
            )
        return MapProjector(volume, pixel, config.device, model_path)
    raise InputError(
        f"{model_path}: unknown model type '{suffix}' (expected .pdb/.cif atoms, a "
        ".npz Gaussian model or an .mrc/.map map)"
    )
