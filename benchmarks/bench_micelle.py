"""A detergent micelle round a membrane protein, added to a truth made of its atoms.

A membrane protein is imaged in a micelle (or a nanodisc): a belt of detergent or lipid round its
transmembrane part, disordered, so that its map holds a smooth, featureless density there at a
fraction of the protein's level, and nothing past low resolution. A large share of single-particle
maps are of such proteins (receptors, channels, transporters); no benchmark truth held one before
round 2, session 59.

The belt is an oblate ellipsoid about the membrane's normal: semi-axes ``radius_angstrom`` in the
membrane's plane and ``half_thickness_angstrom`` along the normal, with a soft edge (a logistic of
width ``edge_angstrom`` in the distance to its surface), at ``level`` times the protein's mean
density. The detergent is excluded where the protein is: the belt is weighted by ``1 − p``, with
``p`` the atoms' voxelised density over the protein's mean, clipped to ``[0, 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The protein's mean density: the mean over the voxels above this share of the atoms' peak.
PROTEIN_SHARE_OF_PEAK = 0.1


@dataclass(frozen=True)
class Micelle:
    """A detergent belt (module docstring), in the atomic model's file frame.

    Attributes
    ----------
    centre_angstrom : (x, y, z)
        The belt's centre, file coordinates (Å): the middle of the transmembrane part.
    normal : (x, y, z)
        The membrane's normal (any length but zero).
    radius_angstrom, half_thickness_angstrom : float
        Semi-axes of the belt's ellipsoid in the membrane's plane and along the normal.
    level : float
        The detergent's density over the protein's mean density.
    edge_angstrom : float
        Width of the belt's soft edge.
    """

    centre_angstrom: tuple[float, float, float]
    normal: tuple[float, float, float]
    radius_angstrom: float
    half_thickness_angstrom: float
    level: float
    edge_angstrom: float = 4.0

    def __post_init__(self) -> None:
        if not np.linalg.norm(self.normal) > 0:
            raise ValueError(f"the micelle's normal must not be zero, got {self.normal}")
        for name in ("radius_angstrom", "half_thickness_angstrom", "edge_angstrom"):
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"the micelle's {name} must be positive, got {getattr(self, name)}"
                )
        if not 0 < self.level <= 1:
            raise ValueError(f"the micelle's level must lie in (0, 1], got {self.level}")


def cubic_volume(atoms) -> np.ndarray:
    """``atoms`` as a float64 array, refused unless it is a cubic 3D volume."""
    volume = np.asarray(atoms, dtype=np.float64)
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise ValueError(f"atoms must be a cubic volume, got shape {volume.shape}")
    return volume


def belt_shape(
    box: int, pixel_size_angstrom: float, micelle: Micelle, origin_angstrom
) -> np.ndarray:
    """The belt's shape (D, D, D) ``[z, y, x]``, 1 inside and 0 far outside, on the grid whose
    voxel ``D // 2`` is the file point ``origin_angstrom`` (the truth's box centre)."""
    axis = (np.arange(box) - box // 2) * pixel_size_angstrom
    z, y, x = np.meshgrid(axis, axis, axis, indexing="ij")
    offset = np.asarray(micelle.centre_angstrom, float) - np.asarray(origin_angstrom, float)
    normal = np.asarray(micelle.normal, float) / np.linalg.norm(micelle.normal)
    rel = np.stack([x - offset[0], y - offset[1], z - offset[2]], axis=-1)
    along = rel @ normal
    across = np.sqrt(np.maximum((rel * rel).sum(-1) - along**2, 0.0))
    scaled = np.sqrt(
        (across / micelle.radius_angstrom) ** 2 + (along / micelle.half_thickness_angstrom) ** 2
    )
    # Distance to the surface, roughly, in Å: the scaled radius's excess times the smaller semi-axis.
    depth = (scaled - 1.0) * min(micelle.radius_angstrom, micelle.half_thickness_angstrom)
    return 1.0 / (1.0 + np.exp(np.clip(depth / (0.25 * micelle.edge_angstrom), -50.0, 50.0)))


def with_micelle(
    atoms: np.ndarray, pixel_size_angstrom: float, micelle: Micelle, origin_angstrom
) -> np.ndarray:
    """``atoms`` (the voxelised protein, (D, D, D)) with the belt added where the protein is not.

    ``origin_angstrom``: the file point at voxel ``D // 2`` (the model's centre in the box).
    """
    volume = cubic_volume(atoms)
    peak = volume.max()
    if not peak > 0:
        raise ValueError("atoms must hold positive density to set the micelle's level")
    protein_mean = volume[volume > PROTEIN_SHARE_OF_PEAK * peak].mean()
    protein = np.clip(volume / protein_mean, 0.0, 1.0)
    shape = belt_shape(volume.shape[0], pixel_size_angstrom, micelle, origin_angstrom)
    return (volume + micelle.level * protein_mean * shape * (1.0 - protein)).astype(np.float32)
