"""Gaussian mixtures from atomic models: each atom as five Gaussians of its electron form factor.

The elastic electron scattering factor of a neutral atom is fitted by Peng et al. (1996, Acta
Cryst. A52, 257) as ``f(s) = Σₖ aₖ exp(-bₖ s²)`` with ``s = sinθ/λ = |k|/2`` (Å⁻¹), ``aₖ`` in Å and
``bₖ`` in Å². We use gemmi's copy of these coefficients (``gemmi.Element(...).c4322``: International
Tables Vol. C, Table 4.3.2.2, the 0–6 Å⁻¹ fit of that paper) for every element gemmi knows.

With an isotropic atomic displacement ``B`` the form factor becomes ``f(s)·exp(-B s²)``. Term ``k``
is then ``aₖ exp(-(bₖ + B)|k|²/4)``, which is the Fourier transform of a 3D Gaussian of mass ``aₖ``
and variance ``σₖ² = (bₖ + B)/(8π²)`` (a Gaussian of variance σ² has transform
``exp(-2π²σ²|k|²)``). Its density peaks at ``aₖ (4π/(bₖ + B))^{3/2}`` per Å³. An atom is therefore
five isotropic Gaussians at its position with amplitudes ``occupancy·aₖ`` and scales ``σₖ``; the
voxelised or splatted mixture is the atom's Coulomb potential in the units of ``f`` (Å per Å³).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import gemmi
import numpy as np
import torch

from cryosplat.core.conventions import file_origin_angstrom
from cryosplat.core.errors import InputError
from cryosplat.model.gaussians import GaussianModel

__all__ = [
    "ATOM_SUFFIXES",
    "AtomTable",
    "read_atoms",
    "electron_form_factor_gaussians",
    "model_from_atoms",
]

ATOM_SUFFIXES = (".pdb", ".ent", ".cif", ".mmcif")  # the files read as atomic models


class AtomTable:
    """Atoms of one model of a structure file.

    Attributes
    ----------
    positions_angstrom : np.ndarray, shape (M, 3), file coordinates (Å)
    elements : list[str], length M
    bfactors_angstrom2 : np.ndarray, shape (M,), isotropic B (Å²)
    occupancies : np.ndarray, shape (M,)
    masses_dalton : np.ndarray, shape (M,)
    """

    def __init__(self, positions_angstrom, elements, bfactors_angstrom2, occupancies, masses):
        self.positions_angstrom = np.asarray(positions_angstrom, dtype=np.float64).reshape(-1, 3)
        self.elements = list(elements)
        self.bfactors_angstrom2 = np.asarray(bfactors_angstrom2, dtype=np.float64)
        self.occupancies = np.asarray(occupancies, dtype=np.float64)
        self.masses_dalton = np.asarray(masses, dtype=np.float64)

    def __len__(self) -> int:
        return int(self.positions_angstrom.shape[0])


def read_atoms(
    path: str | Path, include_hydrogens: bool = False, include_waters: bool = False
) -> AtomTable:
    """Read the first model of a PDB or mmCIF file (atoms with zero occupancy are dropped).

    Raises
    ------
    InputError
        Missing or unreadable file, no atoms left, or an element without form factor.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: atomic model file not found")
    try:
        structure = gemmi.read_structure(str(path))
    except (RuntimeError, ValueError) as exc:
        raise InputError(f"{path}: cannot read atomic model ({exc})") from None
    if len(structure) == 0:
        raise InputError(f"{path}: no models in the file")
    pos, elements, bfac, occ, mass = [], [], [], [], []
    for chain in structure[0]:
        for residue in chain:
            if residue.is_water() and not include_waters:
                continue
            for atom in residue:
                if atom.element.is_hydrogen and not include_hydrogens:
                    continue
                if atom.occ <= 0:
                    continue
                if atom.element.atomic_number == 0:
                    raise InputError(
                        f"{path}: atom {atom.name} of residue {residue.name} {residue.seqid} "
                        f"(chain {chain.name}) has unknown element {atom.element.name!r}"
                    )
                pos.append(atom.pos.tolist())
                elements.append(atom.element.name)
                bfac.append(atom.b_iso)
                occ.append(atom.occ)
                mass.append(atom.element.weight)
    if not pos:
        raise InputError(f"{path}: no atoms left after removing hydrogens/waters")
    return AtomTable(pos, elements, bfac, occ, mass)


def electron_form_factor_gaussians(element: str) -> tuple[np.ndarray, np.ndarray]:
    """Peng et al. (1996) coefficients of an element: ``a`` (Å), ``b`` (Å²), each shape (5,)."""
    el = gemmi.Element(element)
    if el.atomic_number == 0:
        raise InputError(f"no electron form factor for element {element!r}")
    coef = el.c4322
    return np.asarray(coef.a, dtype=np.float64), np.asarray(coef.b, dtype=np.float64)


def model_from_atoms(
    path: str | Path,
    box: int,
    pixel_size_angstrom: float,
    bfactor_extra: float = 0.0,
    keep_coordinates: bool = False,
    center_of_mass: Sequence[float] | None = None,
    include_hydrogens: bool = False,
    include_waters: bool = False,
    dtype: torch.dtype = torch.float32,
) -> GaussianModel:
    """A :class:`GaussianModel` of an atomic model's electron potential (five Gaussians per atom).

    Parameters
    ----------
    path : str or Path
        PDB or mmCIF file (first model).
    box : int
        Box D of the maps/images the model is for.
    pixel_size_angstrom : float
    bfactor_extra : float
        Å² added to every atom's B-factor (blurs the model; use it when atoms are narrower than a
        pixel). The total ``bₖ + B`` must stay positive.
    keep_coordinates : bool
        Keep the file's coordinates: file frame → internal frame by ``- (D//2)·pixel`` on each axis
        (so the atoms sit where they do on a map of this box with origin 0). Otherwise the model is
        centred.
    center_of_mass : sequence of 3 floats, optional
        The point (file coordinates, Å) placed at the box centre when not ``keep_coordinates``;
        default the mass-weighted centre of the kept atoms.
    include_hydrogens, include_waters : bool
    dtype : torch.dtype

    Returns
    -------
    GaussianModel with ``5 × atoms`` isotropic Gaussians.
    """
    if box < 1 or not pixel_size_angstrom > 0:
        raise InputError(f"bad box {box} or pixel size {pixel_size_angstrom} for {path}")
    atoms = read_atoms(path, include_hydrogens=include_hydrogens, include_waters=include_waters)
    if keep_coordinates:
        origin = np.full(3, file_origin_angstrom(box, pixel_size_angstrom))
    elif center_of_mass is not None:
        origin = np.asarray(center_of_mass, dtype=np.float64).reshape(3)
    else:
        weights = atoms.masses_dalton * atoms.occupancies
        origin = (atoms.positions_angstrom * weights[:, None]).sum(0) / weights.sum()
    positions = atoms.positions_angstrom - origin
    table = {el: electron_form_factor_gaussians(el) for el in set(atoms.elements)}
    a = np.stack([table[el][0] for el in atoms.elements])  # (M, 5)
    b = np.stack([table[el][1] for el in atoms.elements])
    total_b = b + (atoms.bfactors_angstrom2 + float(bfactor_extra))[:, None]
    if np.any(total_b <= 0):
        row = int(np.flatnonzero((total_b <= 0).any(axis=1))[0])
        raise InputError(
            f"{path}: atom {row + 1} has B-factor {atoms.bfactors_angstrom2[row]} + extra "
            f"{bfactor_extra}, too negative for its form factor (b + B must stay > 0)"
        )
    sigma = np.sqrt(total_b / (8.0 * math.pi**2))
    amplitudes = a * atoms.occupancies[:, None]
    n = amplitudes.size
    means = np.repeat(positions, 5, axis=0)
    scales = np.repeat(sigma.reshape(-1, 1), 3, axis=1)
    quats = np.tile(np.array([1.0, 0.0, 0.0, 0.0]), (n, 1))
    return GaussianModel(
        torch.tensor(means, dtype=dtype),
        torch.tensor(scales, dtype=dtype),
        torch.tensor(quats, dtype=dtype),
        torch.tensor(amplitudes.reshape(-1), dtype=dtype),
        box,
        pixel_size_angstrom,
    )
