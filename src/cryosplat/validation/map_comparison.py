"""Maps compared with a reference by their Fourier shell correlation (``cryosplat fsc``).

A user compares cryosplat's map with the one RELION or cryoSPARC made from the same particles,
two half maps with each other, or, on simulated data, every method's map with the truth. Each map
is read, checked to lie on the reference's grid (box and voxel size) or, asked to, resampled onto
it centre on centre (a map of downsampled particles against one at the data's own pixel,
:mod:`cryosplat.core.resample`), turned and moved onto it where asked (a map in another frame,
:mod:`cryosplat.validation.map_fit`), masked alike (a soft sphere
by default, as the benchmarks read maps against their truths, or the user's mask, the FSC then
corrected for the mask's own correlation as ``relion_postprocess`` corrects it) and its FSC with
the reference read at 0.5 and 0.143:

* against a **truth or an independent reference**, the 0.5 crossing is the map's resolution (the
  FSC of a map against the truth crosses 0.5 where the half maps' FSC crosses 0.143,
  :func:`cryosplat.validation.fsc.half_map_equivalent`);
* between **two half maps** made from independent halves of the data, the 0.143 crossing is the
  gold-standard resolution.

An atomic model (PDB or mmCIF) may stand for any map: its density (five Gaussians per atom, its
B-factors) is drawn on the first map's grid, in that map's frame (a model fitted to the map in
ChimeraX or Coot, :func:`model_map`), or centred in the box as ``cryosplat simulate`` centres it.
The FSC of a map with its model crosses 0.5 at the map-model resolution.

Two slips that leave a comparison meaningless without saying so are named
(:func:`comparison_notes`): a map of the other hand (its FSC with the reference mirrored is
higher than as given, the usual sign of a reference of the wrong handedness or a converter's
flipped axis) and a map of inverted contrast (its FSC negative at the lowest shells).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryosplat.core.conventions import centre_voxel_xyz_angstrom, mirrored_map
from cryosplat.core.errors import InputError
from cryosplat.core.resample import resample_volume
from cryosplat.io.map_info import grid_text
from cryosplat.io.mrc import read_map, read_map_origin_xyz
from cryosplat.io.svg_plot import Curve, LinePlot
from cryosplat.model.atoms import ATOM_SUFFIXES, model_from_atoms
from cryosplat.validation.fsc import (
    map_spectrum,
    masked_fsc,
    resolution_at,
    shell_frequencies,
    spectra_fsc,
)
from cryosplat.validation.user_mask import VOXEL_TOLERANCE

__all__ = [
    "MapFSC",
    "MapComparison",
    "MapsOnGrid",
    "compare_maps",
    "comparison_notes",
    "model_map",
    "read_inputs_on_one_grid",
    "read_maps_on_one_grid",
]

# An atomic model with more than this share of its atoms outside the map's box is not in its frame.
MAX_OUTSIDE_SHARE = 0.5

# The lowest shells (after the zero frequency) read by the notes: where any two maps of one
# molecule agree, whatever their resolution (shells 1 to D / 8: periods of 8 voxels and more).
LOW_SHELLS_FRACTION = 1 / 8
# Voxel sizes this close (relative) are one sampling under --resample (headers hold float32).
SAME_VOXEL = 1e-4
# A mirrored map whose low shells correlate this much better than the map as given is named.
HAND_MARGIN = 0.2
# A map whose low shells' mean FSC is under minus this is named as of inverted contrast.
INVERTED_BELOW = 0.2


@dataclass(frozen=True)
class MapFSC:
    """One map's FSC with the reference.

    Attributes
    ----------
    name : str
        The map (its file).
    curve : np.ndarray, shape (D // 2 + 1,)
        FSC per shell 0 .. D // 2 (shell 0: the means).
    mirrored : np.ndarray, shape (D // 2 + 1,)
        The same with the map mirrored (z reversed about the box centre): the other hand.
    masked : np.ndarray or None
        Where :attr:`curve` is corrected for the mask's own correlation (a user's mask), the
        masked FSC before the correction.
    """

    name: str
    curve: np.ndarray
    mirrored: np.ndarray
    masked: np.ndarray | None = None

    def resolution_angstrom(self, threshold: float, pixel_size_angstrom: float) -> float:
        """Where :attr:`curve` first falls under ``threshold`` (Nyquist if never; ``inf`` if at
        the first shell)."""
        box = 2 * (len(self.curve) - 1)
        return resolution_at(self.curve, threshold, box, pixel_size_angstrom)


@dataclass(frozen=True)
class MapComparison:
    """Maps' FSCs with one reference, on one grid and under one mask.

    Attributes
    ----------
    reference : str
    box : int
    pixel_size_angstrom : float
    mask : str
        What the maps were multiplied by before the FSC (a soft sphere, a file, or none).
    maps : tuple of MapFSC
    """

    reference: str
    box: int
    pixel_size_angstrom: float
    mask: str
    maps: tuple[MapFSC, ...]

    def frequencies(self) -> np.ndarray:
        """Spatial frequency (1/Å) of each shell, shape (D // 2 + 1,)."""
        return shell_frequencies(self.box, self.pixel_size_angstrom)

    def to_json(self) -> dict:
        """The curves and crossings as a dict for JSON (a crossing at the first shell is
        infinite: :func:`cryosplat.reconstruct.run_folder.write_json_atomic` writes it as
        ``null``)."""
        px = self.pixel_size_angstrom
        return {
            "reference": self.reference,
            "box": self.box,
            "pixel_size_angstrom": px,
            "mask": self.mask,
            "frequency_per_angstrom": self.frequencies().tolist(),
            "maps": [
                {
                    "map": m.name,
                    "resolution_fsc_0.5_angstrom": m.resolution_angstrom(0.5, px),
                    "resolution_fsc_0.143_angstrom": m.resolution_angstrom(0.143, px),
                    "fsc": m.curve.tolist(),
                    "fsc_mirrored": m.mirrored.tolist(),
                    **({} if m.masked is None else {"fsc_masked_uncorrected": m.masked.tolist()}),
                }
                for m in self.maps
            ],
        }

    def plot(self) -> LinePlot:
        """Every map's FSC against spatial frequency (:mod:`cryosplat.io.svg_plot`)."""
        freq = self.frequencies()
        return LinePlot(
            x=freq,
            curves=[Curve(m.name, m.curve) for m in self.maps],
            xlim=(0.0, float(freq[-1])),
            ylim=(-0.2, 1.05),
            title=f"FSC with {self.reference} ({self.mask})",
            xlabel="spatial frequency (1/Å)",
            ylabel="FSC",
            hlines=[(0.143, "0.143"), (0.5, "0.5"), (0.0, "")],
            top_reciprocal_label="resolution (Å)",
        )


@dataclass(frozen=True)
class MapsOnGrid:
    """Maps read onto one grid, the first's.

    Attributes
    ----------
    volumes : list of np.ndarray, each (D, D, D)
    pixel_size_angstrom : float
    origin_xyz_angstrom : np.ndarray, shape (3,)
        Where the first map's header places its first voxel (:func:`read_map_origin_xyz`): a
        map written on this grid carries it, to overlay the first in ChimeraX.
    resampled : tuple of str
        One line per map that was resampled onto the grid (its own box and voxel size).
    apart : tuple of str
        A note per resampled map whose header places it apart from the first's (compared centre
        on centre: moot where the maps are fitted).
    """

    volumes: list[np.ndarray]
    pixel_size_angstrom: float
    origin_xyz_angstrom: np.ndarray
    resampled: tuple[str, ...] = ()
    apart: tuple[str, ...] = ()


def read_maps_on_one_grid(
    paths: Sequence[Path], pixel_size_angstrom: float | None = None, resample: bool = False
) -> MapsOnGrid:
    """Read maps that must share one grid: the first's box and voxel size.

    Parameters
    ----------
    paths : sequence of Path
        MRC maps, the reference first.
    pixel_size_angstrom : float, optional
        The voxel size (Å) of every map, where their headers do not hold it (0) or disagree only
        there; default: the headers'.
    resample : bool
        Resample each map of another box or voxel size (its header's) onto the first's grid,
        centre on centre (:func:`cryosplat.core.resample.resample_volume`), instead of refusing
        it.

    Raises
    ------
    InputError
        A map of another box, another voxel size (more than 1 % apart), or none in the headers
        and none given; with ``resample``, a map whose header holds no voxel size, or
        ``pixel_size_angstrom`` given too.
    """
    if pixel_size_angstrom is not None and not pixel_size_angstrom > 0:
        raise InputError(f"--angpix must be positive, got {pixel_size_angstrom}")
    if resample and pixel_size_angstrom is not None:
        raise InputError(
            "--angpix sets every map's voxel size alike, --resample reads each map's own from its "
            "header: give one of the two"
        )
    volumes, voxels = [], []
    for path in paths:
        volume, voxel = read_map(path, cubic=False)
        volumes.append(volume)
        voxels.append(voxel)
    if len(set(volumes[0].shape)) != 1:
        raise InputError(
            f"{paths[0]}: a map of {grid_text(volumes[0].shape)} voxels; the reference sets the grid "
            "the maps are compared on, a cube: give a cubic map first (e.g. your own), this one "
            "after it with --resample"
        )
    if resample:
        return _resampled(paths, volumes, voxels)
    box = volumes[0].shape[0]
    for path, volume in zip(paths[1:], volumes[1:], strict=True):
        if volume.shape != (box,) * 3:
            raise InputError(
                f"{path}: box {grid_text(volume.shape)}, the reference {paths[0]} has box {box}: "
                "--resample puts it on the reference's grid, centre on centre"
            )
    if pixel_size_angstrom is not None:
        return MapsOnGrid(volumes, float(pixel_size_angstrom), read_map_origin_xyz(paths[0]))
    pixel = voxels[0]
    if not pixel > 0:
        raise InputError(f"{paths[0]}: its header holds no voxel size; give --angpix (Å)")
    for path, voxel in zip(paths[1:], voxels[1:], strict=True):
        if voxel > 0 and abs(voxel - pixel) > VOXEL_TOLERANCE * pixel:
            raise InputError(
                f"{path}: voxel size {voxel:.4g} Å, the reference {paths[0]} has {pixel:.4g} Å: "
                "maps of different samplings (--resample puts it on the reference's grid), or a "
                "header that is wrong (--angpix sets every map's)"
            )
    return MapsOnGrid(volumes, float(pixel), read_map_origin_xyz(paths[0]))


def _resampled(paths: Sequence[Path], volumes: list[np.ndarray], voxels: list[float]) -> MapsOnGrid:
    """:func:`read_maps_on_one_grid` with ``resample``: every map onto the first's grid."""
    for path, voxel in zip(paths, voxels, strict=True):
        if not voxel > 0:
            raise InputError(
                f"{path}: its header holds no voxel size, which --resample needs (set it, e.g. "
                "relion_image_handler --angpix, or give maps of one grid and --angpix)"
            )
    box, pixel = volumes[0].shape[0], voxels[0]
    centre, centred = _header_centre(paths[0], box, pixel), _is_centred(paths[0], box, pixel)
    out, notes, apart = [volumes[0]], [], []
    for path, volume, voxel in zip(paths[1:], volumes[1:], voxels[1:], strict=True):
        if volume.shape == (box,) * 3 and abs(voxel - pixel) <= SAME_VOXEL * pixel:
            out.append(volume)
            continue
        out.append(resample_volume(volume, voxel, box, pixel))
        notes.append(
            f"{path}: box {grid_text(volume.shape)} of {voxel:.4g} Å resampled onto box {box} of "
            f"{pixel:.4g} Å, centre on centre"
            + (" (low-passed to the coarser Nyquist)" if voxel < pixel else "")
        )
        placed = not (centred and _is_centred(path, volume.shape, voxel))
        distance = float(np.linalg.norm(_header_centre(path, volume.shape, voxel) - centre))
        if placed and distance > 0.5 * max(pixel, voxel):
            apart.append(
                f"note: the headers of {path} and {paths[0]} place their centre voxels "
                f"{distance:.1f} Å apart; they were compared centre on centre, as RELION places its "
                "maps (maps in different frames need fitting first: --fit)"
            )
    origin = read_map_origin_xyz(paths[0])
    return MapsOnGrid(out, float(pixel), origin, tuple(notes), tuple(apart))


def _header_centre(
    path: Path, shape: int | tuple[int, int, int], pixel_size_angstrom: float
) -> np.ndarray:
    """Where a map's header places its centre voxel, ``D // 2`` on each axis (Å; x, y, z), as
    ChimeraX does; ``shape``: its box, or its (z, y, x) sizes."""
    sizes = tuple(np.broadcast_to(np.asarray(shape), (3,)))
    return centre_voxel_xyz_angstrom(read_map_origin_xyz(path), sizes, pixel_size_angstrom)


def _is_centred(path: Path, shape: int | tuple[int, int, int], pixel_size_angstrom: float) -> bool:
    """Whether a map's header says its molecule is centred in its box: an origin of zero
    (RELION's and cryosplat's) or its centre voxel placed at (0, 0, 0) (the EMDB's usual start
    indices of ``-D / 2``). Two centred maps are compared centre on centre without a note."""
    if not np.any(read_map_origin_xyz(path)):
        return True
    centre = _header_centre(path, shape, pixel_size_angstrom)
    return float(np.linalg.norm(centre)) <= 0.5 * pixel_size_angstrom


def model_map(
    path: Path, box: int, pixel_size_angstrom: float, origin_xyz_angstrom: np.ndarray, centre: bool
) -> np.ndarray:
    """An atomic model's density on a map's grid (five Gaussians per atom, the atoms'
    B-factors: :func:`cryosplat.model.atoms.model_from_atoms`).

    Parameters
    ----------
    path : Path
        PDB or mmCIF file.
    box, pixel_size_angstrom : the map's grid.
    origin_xyz_angstrom : np.ndarray, shape (3,)
        Where the map's first voxel lies (:func:`cryosplat.io.mrc.read_map_origin_xyz`): a model
        fitted to the map (ChimeraX, Coot) has its coordinates in that frame.
    centre : bool
        Place the model's centre of mass at the box centre instead, as ``cryosplat simulate``
        does.

    Raises
    ------
    InputError
        More than half the atoms outside the box (a model of another map's frame).
    """
    centre_point = (
        None
        if centre
        else centre_voxel_xyz_angstrom(origin_xyz_angstrom, (box,) * 3, pixel_size_angstrom)
    )
    model = model_from_atoms(path, box, pixel_size_angstrom, center_of_mass=centre_point)
    half_box = 0.5 * box * pixel_size_angstrom
    outside = float((model.means.detach().abs() > half_box).any(dim=1).float().mean())
    if outside > MAX_OUTSIDE_SHARE:
        raise InputError(
            f"{path}: {100 * outside:.0f} % of its atoms lie outside the map's box: a model in "
            "another frame than the map's (save it relative to the map in ChimeraX, or give it "
            "first with --centre-models --fit: the maps fitted onto it), or one the map was "
            "simulated from (centred in the box: --centre-models)"
        )
    return model.voxelize().detach().cpu().numpy()


def read_inputs_on_one_grid(
    paths: Sequence[Path],
    pixel_size_angstrom: float | None,
    centre_models: bool,
    resample: bool = False,
) -> MapsOnGrid:
    """Read maps and atomic models (by suffix, :data:`ATOM_SUFFIXES`) as maps on one grid: the
    maps' (:func:`read_maps_on_one_grid`), the models' density drawn on the first map's grid and
    in its frame (:func:`model_map`). At least one input must be a map."""
    is_model = [Path(p).suffix.lower() in ATOM_SUFFIXES for p in paths]
    maps = [p for p, m in zip(paths, is_model, strict=True) if not m]
    if not maps:
        raise InputError("only atomic models given: at least one map sets the grid to compare on")
    grid = read_maps_on_one_grid(maps, pixel_size_angstrom, resample)
    pixel, origin = grid.pixel_size_angstrom, grid.origin_xyz_angstrom
    box = grid.volumes[0].shape[0]
    read = iter(grid.volumes)
    volumes = [
        model_map(Path(p), box, pixel, origin, centre_models) if m else next(read)
        for p, m in zip(paths, is_model, strict=True)
    ]
    return MapsOnGrid(volumes, pixel, origin, grid.resampled, grid.apart)


def compare_maps(
    reference: np.ndarray,
    maps: Sequence[tuple[str, np.ndarray]],
    pixel_size_angstrom: float,
    mask: np.ndarray | None,
    names: tuple[str, str],
    correct_mask: bool = False,
) -> MapComparison:
    """FSC of each map with the reference, both multiplied by ``mask``.

    Parameters
    ----------
    reference : np.ndarray, shape (D, D, D)
    maps : sequence of (name, np.ndarray of shape (D, D, D))
    pixel_size_angstrom : float
    mask : np.ndarray of shape (D, D, D) in [0, 1], or None for no mask
    names : (str, str)
        The reference's name and the mask's description, for the report.
    correct_mask : bool
        Correct each FSC for what the mask's edge correlates by itself, as ``relion_postprocess``
        does for a tight mask (:func:`cryosplat.validation.fsc.masked_fsc`: phases randomised
        past the shell where the unmasked FSC falls under 0.8).
    """
    box = reference.shape[0]
    weight = None if mask is None else np.asarray(mask, dtype=np.float32)
    if weight is not None and weight.shape != reference.shape:
        raise ValueError(f"mask shape {weight.shape} differs from the maps' {reference.shape}")

    def spectrum(volume: np.ndarray, scratch: bool = False) -> torch.Tensor:
        """The masked map's spectrum; ``scratch``: ``volume`` is a copy, masked in place."""
        if weight is not None:
            volume = np.multiply(volume, weight, out=volume if scratch else None)
        return map_spectrum(volume)

    ref = spectrum(reference)  # once, for every map and its mirror image
    results = []
    for name, volume in maps:
        if volume.shape != reference.shape:
            raise ValueError(f"{name}: shape {volume.shape}, the reference's {reference.shape}")
        mirrored = spectra_fsc(spectrum(mirrored_map(volume), scratch=True), ref)
        if correct_mask and weight is not None:
            corrected = masked_fsc(volume, reference, weight, pixel_size_angstrom)
            results.append(MapFSC(name, corrected.corrected, mirrored, corrected.masked))
        else:
            results.append(MapFSC(name, spectra_fsc(spectrum(volume), ref), mirrored))
    return MapComparison(names[0], box, float(pixel_size_angstrom), names[1], tuple(results))


def comparison_notes(comparison: MapComparison) -> list[str]:
    """Warnings for maps whose comparison is not what it seems: the other hand, or inverted
    contrast (read over the shells 1 .. D / 8, where maps of one molecule agree)."""
    last = max(2, int(round(comparison.box * LOW_SHELLS_FRACTION)))
    notes = []
    for m in comparison.maps:
        as_given = float(np.mean(m.curve[1 : last + 1]))
        mirrored = float(np.mean(m.mirrored[1 : last + 1]))
        if as_given < -INVERTED_BELOW:
            notes.append(
                f"{m.name}: its FSC with {comparison.reference} is negative at the lowest shells "
                f"(mean {as_given:.2f} over shells 1-{last}): one of the two has inverted "
                "contrast (protein dark; multiply it by -1)"
            )
        elif mirrored > as_given + HAND_MARGIN:
            notes.append(
                f"{m.name}: its mirror image agrees with {comparison.reference} better than the "
                f"map does (mean FSC {mirrored:.2f} against {as_given:.2f} over shells 1-{last}): "
                "the two maps are of opposite hands (flip one, e.g. relion_image_handler "
                "--invert_hand)"
            )
    return notes
