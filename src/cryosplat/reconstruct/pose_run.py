"""``cryosplat refine-poses``'s work: each particle's pose read from its image against its own
half set's map (:mod:`cryosplat.reconstruct.grid.pose_fit`), and the metadata written again.

Each half set is read against its own half map, as RELION's gold-standard refinement reads it:
the two half sets' poses then owe nothing to each other's noise, and the resolution their maps
report stays an honest one. The outputs go to a folder of their own:

* ``poses.csv``: per particle its row in the file, its half, the turn applied (degrees, and its
  rotation vector) and the shift's move (Å);
* the input's metadata with the new angles and origins, every other value as written:
  ``refined.star`` (a STAR file), ``refined.cs`` (a cryoSPARC ``.cs``, its passthrough fields
  added) or ``poses.pkl`` (cryoDRGN's), to reconstruct again;
* ``poses.svg``: the turns' and the shift moves' histograms;
* ``poses.json``: what was read against what, each half's prior and the counts.

Each file is written whole or not at all, ``poses.csv`` last.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryosplat import __version__
from cryosplat.core.conventions import rotvec_to_matrix
from cryosplat.core.errors import InputError
from cryosplat.core.progress import Progress
from cryosplat.io.svg_plot import Curve, LinePlot, write_svg
from cryosplat.particles.metadata_out import NewPoses, write_metadata
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.particle_scores import (
    ParticleScores,
    SampleReading,
    score_from_sums,
    shell_sums,
)
from cryosplat.reconstruct.grid.pose_fit import (
    DEFAULT_ANGLE_RANGE_DEGREES,
    DEFAULT_SHIFT_RANGE_PX,
    PoseFit,
    PoseLevel,
    PoseSearch,
    fit_poses,
    pose_evidence,
    trusted_scores,
)
from cryosplat.reconstruct.grid.row_store import PassCheckpoints, pass_progress
from cryosplat.reconstruct.run_folder import read_json_record, write_json_atomic
from cryosplat.reconstruct.run_halves import read_run_halves, shells_read, write_particle_table

__all__ = [
    "POSES_FILE",
    "RefinedPoses",
    "read_poses_record",
    "refine_poses_run",
    "write_refined_poses",
]

log = logging.getLogger("cryosplat")

POSES_FILE = "poses.json"
HISTOGRAM_BINS = 30


@dataclass(frozen=True)
class RefinedPoses:
    """A run's particles and their pose moves, in the particle set's order.

    Attributes
    ----------
    source : Path or None
        The particles' metadata file.
    rows_in_file : np.ndarray of int, (N,)
    halves : np.ndarray of str, (N,)
    fits : dict[str, PoseFit]
        Each half set's (``"A"``, ``"B"``), over the whole set's rows (zero moves for the other
        half's).
    rotations : np.ndarray, (N, 3, 3)
        The recorded poses (RELION's ``A``).
    shifts_angstrom : np.ndarray, (N, 2)
        The recorded shifts (RELION's origins, Å).
    pixel_sizes_angstrom : np.ndarray, (N,)
        Each particle's own pixel size as read (for origins written in pixels).
    box_angstrom : float
        The images' box as read times their pixel size (for cryoDRGN's translations).
    run : Path
    run_resolution_angstrom : float or None
    shells_to_angstrom : float
        The finest resolution the images were read to.
    searches : tuple[PoseSearch, PoseSearch]
        The first reading's lattices and the second's.
    """

    source: Path | None
    rows_in_file: np.ndarray
    halves: np.ndarray
    fits: dict[str, PoseFit]
    rotations: np.ndarray
    shifts_angstrom: np.ndarray
    pixel_sizes_angstrom: np.ndarray
    box_angstrom: float
    run: Path
    run_resolution_angstrom: float | None
    shells_to_angstrom: float
    searches: tuple[PoseSearch, PoseSearch]

    @property
    def rotvecs(self) -> np.ndarray:
        """Each particle's turn (radians, the image's frame), (N, 3)."""
        return sum(fit.rotvecs for fit in self.fits.values())

    @property
    def moves_angstrom(self) -> np.ndarray:
        """Each particle's shift move (Å), (N, 2)."""
        return sum(fit.shifts_angstrom for fit in self.fits.values())

    def refined(self) -> tuple[np.ndarray, np.ndarray]:
        """The new poses: ``ΔR A`` (N, 3, 3) and the shifts moved (N, 2, Å)."""
        turns = rotvec_to_matrix(self.rotvecs)
        return turns @ self.rotations, self.shifts_angstrom + self.moves_angstrom

    def describe(self) -> str:
        """One line per half set: its prior, whether applied, and the moves' sizes."""
        lines = []
        for name, fit in self.fits.items():
            own = self.halves == name
            turn = np.degrees(np.linalg.norm(fit.rotvecs[own], axis=1))
            move = np.linalg.norm(fit.shifts_angstrom[own], axis=1)
            verdict = (
                f"applied: turns {_rms(turn):.2f}° and shift moves {_rms(move):.2f} Å rms"
                if fit.applied
                else "not applied (the poses as recorded explain the images as well)"
            )
            lines.append(
                f"half {name}: prior spreads {fit.rotation_spread_degrees:.2f}° and "
                f"{fit.shift_spread_angstrom:.2f} Å per component, {fit.gain:+.1f} nats over "
                f"the recorded poses; {verdict}"
            )
        return "\n".join(lines)


def _rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values**2))) if values.size else 0.0


AGREEMENT_FLOOR = 0.02  # half maps' FSC under this: nothing shared to trust


def reference_trust(run: Path) -> tuple[np.ndarray, np.ndarray] | None:
    """How far the run's half maps' agreement is the truth's, per shell of its ``fsc.json``:
    ``(frequencies (1/Å), trust)`` with ``trust = clip(C² / FSC_AB, 0, 1)``, ``C`` the
    cross-validated estimate of each half map's FSC with the truth and ``FSC_AB`` the half
    maps' FSC with each other in the same soft spherical mask (0 where that is under
    :data:`AGREEMENT_FLOOR`). None where the record holds neither (a run older than them)."""
    record = read_json_record(run / "fsc.json", "the run's FSC record") or {}
    try:
        crossed = record["cross_validated"]
        estimate = np.asarray(crossed["curves"]["half_model_vs_truth_estimate"], dtype=float)
        shells = [1.0 / r if r else 0.0 for r in crossed["resolution_per_shell_angstrom"]]
        agreement = record["model_half_maps"]["spherical_mask"]["fsc"]["masked"]
        agreement = np.asarray(agreement, dtype=float)
    except (KeyError, TypeError, ValueError):
        return None
    if not (len(estimate) == len(shells) == len(agreement)) or len(shells) < 2:
        return None
    estimate = np.nan_to_num(np.clip(estimate, 0.0, None))
    readable = np.isfinite(agreement) & (agreement > AGREEMENT_FLOOR)
    trust = np.where(readable, estimate**2 / np.where(readable, agreement, 1.0), 0.0)
    trust[0] = 1.0  # the zero frequency is never read
    return np.asarray(shells), np.clip(trust, 0.0, 1.0)


def _trusted(
    scores: ParticleScores, trust: tuple[np.ndarray, np.ndarray] | None, box_angstrom: float
) -> ParticleScores:
    """``scores`` with each shell's noise divided by :func:`reference_trust` there (its curve
    read at the shells' frequencies, ``s / box_angstrom``; 0 past its last shell)."""
    if trust is None:
        return scores
    frequencies, values = trust
    at = np.arange(len(scores.shell_scale)) / box_angstrom
    return trusted_scores(scores, np.interp(at, frequencies, values, right=0.0))


def refine_poses_run(
    particles: ParticleSet,
    run: str | Path,
    *,
    angle_range_degrees: float = DEFAULT_ANGLE_RANGE_DEGREES,
    shift_range_angstrom: float | None = None,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    show_progress: bool = True,
    checkpoints: Path | None = None,
) -> RefinedPoses:
    """Read each particle's pose (turns up to ``angle_range_degrees`` about any axis, shift
    moves up to ``shift_range_angstrom`` long; None:
    :data:`~cryosplat.reconstruct.grid.pose_fit.DEFAULT_SHIFT_RANGE_PX` pixels of the run's
    working box) from its image against its own half set's map of the complete run in ``run``.

    ``checkpoints``: a folder where each pass over the images is kept as it goes; a call that
    finds the passes of an interrupted one there goes on from where it stopped. The caller
    removes it once the outputs are written.

    Raises
    ------
    InputError
        ``run`` is not a complete run, or ``particles`` are not its particles.
    """
    if not (math.isfinite(angle_range_degrees) and angle_range_degrees >= 0):
        raise ValueError(f"angle_range_degrees must be >= 0, got {angle_range_degrees}")
    as_read = particles
    halves = read_run_halves(particles, run, "refine-poses")
    particles, resolution = halves.particles, halves.resolution_angstrom
    if shift_range_angstrom is None:
        shift_range_angstrom = DEFAULT_SHIFT_RANGE_PX * particles.pixel_size_angstrom
    if not (math.isfinite(shift_range_angstrom) and shift_range_angstrom >= 0):
        raise ValueError(f"shift_range_angstrom must be >= 0, got {shift_range_angstrom}")
    if angle_range_degrees == 0 and shift_range_angstrom == 0:
        raise ValueError("nothing to search: the angle range and the shift range are both 0")
    radius = shells_read(particles, resolution, "the run's resolution")
    finest = particles.box * particles.pixel_size_angstrom / radius
    shape = (radius, particles.box, particles.pixel_size_angstrom)
    wide = PoseSearch.for_shells(angle_range_degrees, shift_range_angstrom, *shape)
    fine = wide.finer(*shape)
    trust = reference_trust(halves.run)
    _log_trust(trust)
    _log_search("first reading", wide)
    _log_search("second reading, about the first", fine)
    # the second reading, where a half set's prior is applied, is counted once it is known
    bar = Progress(len(particles), "poses", enabled=show_progress)
    reading = SampleReading(batch_size, device, halves.data_sign, radius)
    passes = halves.checkpoints(checkpoints, radius, torch.device(device).type)
    fits = {}
    for name, rows, volume in (
        ("A", halves.half_a, halves.maps[0]),
        ("B", halves.half_b, halves.maps[1]),
    ):
        store = passes.store(f"scores_{name}", rows)
        scores = score_from_sums(shell_sums(particles, rows, volume, reading, None, store))
        scores = _trusted(scores, trust, particles.box * particles.pixel_size_angstrom)
        half = _HalfReading(particles, rows, volume, scores, reading, passes, bar)
        # the passes kept are keyed by the shells' weights too: a trust read otherwise reads again
        key = (wide.rotvecs, wide.shifts_angstrom, scores.shell_noise)
        first = fit_poses(half.read(PoseLevel(wide), f"poses_{name}", *key), wide)
        fit = first
        if first.applied:  # read again about the first reading, under its prior
            bar.extend(len(rows))
            level = PoseLevel(fine, first.moves, first.spreads)
            key = (fine.rotvecs, fine.shifts_angstrom, scores.shell_noise, first.moves)
            fit = first.moved_to(half.read(level, f"fine_{name}", *key)["mean"][:, 0, 0])
        fits[name] = fit.spread_over(rows, len(particles))
    bar.close()
    return RefinedPoses(
        source=particles.source,
        rows_in_file=particles.rows_in_file(),
        halves=halves.half_names(),
        fits=fits,
        rotations=particles.rotations,
        shifts_angstrom=particles.shifts_angstrom,
        pixel_sizes_angstrom=as_read.pixel_sizes_angstrom(),
        box_angstrom=as_read.box * as_read.pixel_size_angstrom,
        run=halves.run,
        run_resolution_angstrom=resolution,
        shells_to_angstrom=finest,
        searches=(wide, fine),
    )


@dataclass(frozen=True)
class _HalfReading:
    """One half set's images (``rows``) against its own map, their scores, and where its passes
    are kept and counted."""

    particles: ParticleSet
    rows: np.ndarray
    volume: np.ndarray
    scores: ParticleScores
    reading: SampleReading
    passes: PassCheckpoints
    bar: Progress

    def read(self, level: PoseLevel, name: str, *key) -> dict[str, np.ndarray]:
        """:func:`pose_evidence` of the half set's images, its pass kept as ``name`` keyed by
        ``key``."""
        store = self.passes.store(name, self.rows, *key)
        progress = pass_progress(self.bar, store)
        return pose_evidence(
            self.particles,
            self.rows,
            self.volume,
            self.scores,
            level,
            self.reading,
            progress,
            store,
        )


def _log_trust(trust: tuple[np.ndarray, np.ndarray] | None) -> None:
    if trust is None:
        log.info("shells weighed alike: the run's fsc.json holds no cross-validated estimate")
        return
    frequencies, values = trust
    below = np.nonzero(values[1:] < 0.5)[0]
    log.info(
        "shells weighed by how far the half maps' agreement is the truth's (cross-validated): %s",
        "every shell trusted at least half"
        if below.size == 0
        else f"under half from {1.0 / frequencies[below[0] + 1]:.2f} Å",
    )


def _log_search(what: str, search: PoseSearch) -> None:
    log.info(
        "%s: %d turns every %.2f° × %d shifts every %.2f Å",
        what,
        len(search.rotvecs),
        search.angle_step_degrees,
        len(search.shifts_angstrom),
        search.shift_step_angstrom,
    )


def _refined_metadata(
    refined: RefinedPoses, folder: Path, poses_pickle: Path | None
) -> Path | None:
    """The input's metadata with the new poses, in its own format, or None where the input is
    none of those."""
    rotations, shifts = refined.refined()
    poses = NewPoses(rotations, shifts, refined.pixel_sizes_angstrom, refined.box_angstrom)
    written = write_metadata(
        refined.source, refined.rows_in_file, folder, "refined", poses, poses_pickle=poses_pickle
    )
    return written[0] if written else None


def moves_plot(refined: RefinedPoses) -> LinePlot:
    """The turns' (degrees) and the shift moves' (Å) histograms, on one axis of their sizes."""
    turns = np.degrees(np.linalg.norm(refined.rotvecs, axis=1))
    moves = np.linalg.norm(refined.moves_angstrom, axis=1)
    top = max(float(turns.max(initial=0)), float(moves.max(initial=0)), 1e-6)
    edges = np.linspace(0.0, top * 1.0001, HISTOGRAM_BINS + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    turn_counts, _ = np.histogram(turns, edges)
    move_counts, _ = np.histogram(moves, edges)
    high = max(float(turn_counts.max(initial=0)), float(move_counts.max(initial=0)), 1.0)
    return LinePlot(
        x=centres,
        curves=[
            Curve("turn (degrees)", turn_counts.astype(float)),
            Curve("shift move (Å)", move_counts.astype(float), "--"),
        ],
        xlim=(0.0, float(edges[-1])),
        ylim=(0.0, 1.05 * high),
        title="Pose moves read per particle against its own half set's map",
        xlabel="size of the turn (degrees) or of the shift move (Å)",
        ylabel="particles per bin",
    )


def write_refined_poses(
    folder: str | Path, refined: RefinedPoses, *, poses_pickle: str | Path | None = None
) -> dict:
    """Write the refined metadata (``refined.star``, ``refined.cs``, or ``poses.pkl`` where
    ``poses_pickle`` names cryoDRGN's), ``poses.svg``, ``poses.json`` and, last, ``poses.csv``
    into ``folder`` (made if needed), each atomically; return a summary."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    metadata = _refined_metadata(refined, folder, Path(poses_pickle) if poses_pickle else None)
    if metadata is None:
        raise InputError(
            f"{refined.source}: particles from this file cannot be written back with new poses "
            "(STAR, .cs and cryoDRGN's poses.pkl can)"
        )
    write_svg(folder / "poses.svg", moves_plot(refined))
    turns = np.degrees(np.linalg.norm(refined.rotvecs, axis=1))
    moves = np.linalg.norm(refined.moves_angstrom, axis=1)
    summary = {
        "n_particles": len(turns),
        "halves": {
            name: {
                "read": int(fit.read[refined.halves == name].sum()),
                "prior_rotation_sd_degrees": fit.rotation_spread_degrees,
                "prior_shift_sd_angstrom": fit.shift_spread_angstrom,
                "evidence_gain": fit.gain,
                "applied": fit.applied,
            }
            for name, fit in refined.fits.items()
        },
        "turn_rms_degrees": _rms(turns),
        "shift_move_rms_angstrom": _rms(moves),
        "refined_metadata": str(metadata.resolve()),
    }
    write_json_atomic(
        folder / POSES_FILE,
        {
            "cryosplat_version": __version__,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "particles": str(Path(refined.source).resolve()) if refined.source else None,
            "run": str(refined.run),
            "run_resolution_angstrom": refined.run_resolution_angstrom,
            "shells_to_angstrom": refined.shells_to_angstrom,
            "tried": {
                reading: {
                    "turns": len(search.rotvecs),
                    "turn_step_degrees": search.angle_step_degrees,
                    "shifts": len(search.shifts_angstrom),
                    "shift_step_angstrom": search.shift_step_angstrom,
                }
                for reading, search in zip(("first", "second"), refined.searches, strict=True)
            },
            **summary,
        },
    )
    rotvecs, shift_moves = refined.rotvecs, refined.moves_angstrom
    columns = {
        "turn_degrees": [f"{v:.3f}" for v in turns],
        **{f"rotvec_{axis}": [f"{v:.6f}" for v in rotvecs[:, i]] for i, axis in enumerate("xyz")},
        **{
            f"shift_move_{axis}_angstrom": [f"{v:.3f}" for v in shift_moves[:, i]]
            for i, axis in enumerate("xy")
        },
    }
    write_particle_table(folder / "poses.csv", refined.rows_in_file, refined.halves, columns)
    return summary


def read_poses_record(folder: str | Path) -> dict | None:
    """A ``cryosplat refine-poses`` output folder's ``poses.json``, or None where it holds none.

    Raises
    ------
    InputError
        The file is not readable JSON.
    """
    return read_json_record(Path(folder) / POSES_FILE, "cryosplat refine-poses record")
