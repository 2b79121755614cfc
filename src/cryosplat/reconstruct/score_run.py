"""``cryosplat score``'s work: particles scored against the half maps of the run they made, or
against a map.

With a run (:func:`score_run`), each half set's images are compared with the other half's map
(written by the run as ``half_map_A.mrc`` and ``half_map_B.mrc``, made without them), as
:mod:`cryosplat.reconstruct.grid.particle_scores` says. The particles must be the run's: the same
file, rows and settings (the run's ``input_fingerprint``), read at the box it worked at. With a
map (:func:`score_against_map`), every image is compared with that map: one made without them
(another class's, another data set's) scores them as fairly. The outputs go to a folder of their
own:

* ``particle_scores.csv``: per particle its row in the file, its half, the score ``z``, the score
  its signal would reach, its noise relative to the set's and the chance it holds noise only;
* ``kept.npy``: the rows (0-based, as ``--ind`` and cryoDRGN read them) of the particles not
  named, to reconstruct again with ``--ind``; ``named.npy``: the others;
* ``kept.pkl``: the same rows as cryoDRGN's ``--ind`` reads them;
* ``weights.npy``: each file row's chance of holding the molecule at its pose (``1 −`` its
  chance of holding noise alone; NaN for rows not scored), for ``reconstruct --weights``
  (:mod:`cryosplat.particles.weights`): the junk counts little instead of being left out;
* ``kept.star`` (particles read from a STAR file): that file with only the kept particles, every
  value as written, for RELION (whose image names are read from its project folder);
  ``kept.cs`` (particles read from a cryoSPARC ``.cs`` file): that table's kept rows, with the
  fields of its passthrough file, for cryoSPARC's tools and pyem;
* ``scores.svg``: the scores' histogram against what images of noise alone would give;
* ``score.json``: what was scored against what (the particle file, the run folder or the map,
  the resolution, the shells read), the counts and the mixture's fit, for ``cryosplat info``.

Each file is written whole or not at all, ``particle_scores.csv`` last.
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
from cryosplat.core.errors import InputError
from cryosplat.core.progress import Progress
from cryosplat.io.atomic import atomic_path
from cryosplat.io.mrc import read_map
from cryosplat.io.svg_plot import Curve, LinePlot, write_svg
from cryosplat.particles.cryodrgn import write_index_pickle
from cryosplat.particles.downsample import downsample_particles
from cryosplat.particles.dust import (
    DUST_SDS,
    check_dust_sds,
    describe_dust,
    dust_summary,
    without_dust,
)
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.selection import write_metadata_rows
from cryosplat.particles.weights import write_weights
from cryosplat.reconstruct.grid.particle_scores import (
    JUNK_PROBABILITY,
    SHELL_SUM_NAMES,
    ParticleScores,
    SampleReading,
    ShellSums,
    score_from_sums,
    shell_sums,
)
from cryosplat.reconstruct.grid.row_store import PassCheckpoints, digest, pass_progress
from cryosplat.reconstruct.run_folder import read_json_record, write_json_atomic
from cryosplat.reconstruct.run_halves import (
    read_run_halves,
    shells_read,
    write_particle_table,
)
from cryosplat.reconstruct.written_grid import map_at_box

__all__ = [
    "SCORE_FILE",
    "ScoredRun",
    "read_scores",
    "score_against_map",
    "score_run",
    "write_scores",
]

log = logging.getLogger("cryosplat")

SCORE_FILE = "score.json"
MAP_PIXEL_TOLERANCE = 0.005  # a map's voxel within this fraction of the particles' pixel
HISTOGRAM_STEP = 0.25  # width of the scores' histogram bins (noise standard deviations)


@dataclass(frozen=True)
class ScoredRun:
    """A run's particles and their scores, in the particle set's order.

    Attributes
    ----------
    source : Path or None
        The particles' metadata file.
    rows_in_file : np.ndarray of int, (N,)
    halves : np.ndarray of str, (N,)
        ``"A"`` or ``"B"``.
    scores : ParticleScores
    run : Path or None
        The run folder whose half maps the particles were scored against.
    map : Path or None
        Or the one map they were scored against (:func:`score_against_map`).
    run_resolution_angstrom : float or None
        The run's reported resolution, or the one given with a map (None: none).
    shells_to_angstrom : float or None
        The finest resolution the shells were read to.
    """

    source: Path | None
    rows_in_file: np.ndarray
    halves: np.ndarray
    scores: ParticleScores
    run: Path | None = None
    run_resolution_angstrom: float | None = None
    map: Path | None = None
    shells_to_angstrom: float | None = None

    @property
    def named(self) -> np.ndarray:
        """The particles more likely noise than the molecule, bool (N,)."""
        return self.scores.junk()

    def describe(self) -> str:
        z, named = self.scores.z, self.named
        finite = z[np.isfinite(z)]
        low, median, high = np.percentile(finite, [5, 50, 95]) if finite.size else (np.nan,) * 3
        against = "the half map made without them" if self.map is None else str(self.map)
        return (
            f"{len(z):,} particles scored against {against}: score median "
            f"{median:.2f} (5-95 %: {low:.2f} to {high:.2f}; noise alone scores 0 ± 1); "
            f"about {100 * self.scores.null_fraction():.1f} % of the images hold nothing the map "
            f"predicts; {int(named.sum()):,} named (more likely noise than the molecule)"
        )


def score_run(
    particles: ParticleSet,
    run: str | Path,
    *,
    device: str | torch.device = "cpu",
    batch_size: int = 128,
    show_progress: bool = True,
    checkpoints: Path | None = None,
) -> ScoredRun:
    """Score ``particles`` (those the complete run in ``run`` reconstructed) against its half
    maps, each half set against the other's. ``checkpoints``: a folder where each half's pass is
    kept as it goes, for an interrupted call to go on from (as
    :func:`~cryosplat.reconstruct.defocus_run.refine_defocus_run`'s).

    Raises
    ------
    InputError
        ``run`` is not a complete run, or ``particles`` are not its particles.
    """
    halves = read_run_halves(particles, run, "score")
    particles, resolution = halves.particles, halves.resolution_angstrom
    radius = shells_read(particles, resolution, "the run's resolution")
    reading = SampleReading(batch_size, device, halves.data_sign, radius)
    passes = halves.checkpoints(checkpoints, radius, torch.device(device).type)
    scores = _scores_of(particles, halves.crossed(), reading, show_progress, passes)
    return ScoredRun(
        particles.source,
        particles.rows_in_file(),
        halves.half_names(),
        scores,
        run=halves.run,
        run_resolution_angstrom=resolution,
        shells_to_angstrom=particles.box * particles.pixel_size_angstrom / radius,
    )


def score_against_map(
    particles: ParticleSet,
    map_path: str | Path,
    *,
    resolution_angstrom: float | None = None,
    invert_contrast: bool = False,
    dust_sds: float = DUST_SDS,
    device: str | torch.device = "cpu",
    batch_size: int = 128,
    show_progress: bool = True,
    checkpoints: Path | None = None,
) -> ScoredRun:
    """Score ``particles`` against one map, e.g. a map made without them: another class's, or
    another data set's. Particles that made the map score higher than they would against a map
    made without them, their own noise being in it (round 2, session 64: images of noise by 0.3
    standard deviations on 4,000 particles of EMD-5625, which hides about a fifth of the junk);
    :func:`score_run` avoids that.

    Parameters
    ----------
    particles : ParticleSet
        With poses and CTF.
    map_path : str or Path
        An MRC map at the particles' box and pixel size, or at a smaller box of the same extent
        (the particles are then Fourier-cropped to it); a map of an odd box is used cropped to
        the even box below it, as ``reconstruct`` uses odd images.
    resolution_angstrom : float, optional
        The map's resolution: the shells are read to :data:`RESOLUTION_MARGIN` times it (None:
        every shell; past the map's resolution the fitted scale is near 0 and adds little).
    invert_contrast : bool
        The images hold protein dark (as ``reconstruct --invert-contrast``).
    dust_sds : float
        Hot pixels replaced as ``reconstruct --dust-sds`` replaces them
        (:mod:`cryosplat.particles.dust`); 0: every pixel read as it is.
    checkpoints : Path, optional
        As :func:`score_run`'s.

    Raises
    ------
    InputError
        The map's box or voxel size does not fit the particles.
    """
    check_dust_sds(dust_sds)
    particles = without_dust(particles, dust_sds)
    map_path = Path(map_path)
    volume, voxel = read_map(map_path)
    if volume.ndim != 3 or len(set(volume.shape)) != 1:
        raise InputError(f"{map_path}: not a cubic map ({'x'.join(map(str, volume.shape))})")
    box = volume.shape[0]
    if box % 2 and box <= particles.box:  # the engines' even box below, as reconstruct uses
        volume, box = map_at_box(volume, box - 1, map_path), box - 1
        voxel *= (box + 1) / box
    if box > particles.box:
        raise InputError(
            f"{map_path}: box {box}, larger than the particles' {particles.box}; give a map at "
            "their box (or a smaller box of the same extent)"
        )
    if box < particles.box:
        particles = downsample_particles(particles, box)
    pixel = particles.pixel_size_angstrom
    if not abs(voxel - pixel) <= MAP_PIXEL_TOLERANCE * pixel:
        raise InputError(
            f"{map_path}: voxel {voxel:.4f} Å, the particles' pixel {pixel:.4f} Å at box {box}: "
            "resample the map, or give --angpix where the particles' pixel size is wrong"
        )
    log.info("scored against %s (box %d, %.4f Å voxels)", map_path, box, voxel)
    radius = shells_read(particles, resolution_angstrom, "the given resolution")
    sign = -1.0 if invert_contrast else 1.0
    rows = np.arange(len(particles))
    reading = SampleReading(batch_size, device, sign, radius)
    passes = PassCheckpoints(None)
    if checkpoints is not None:
        identity = digest(
            volume, rows, sign, radius, torch.device(device).type, dust_sds, SHELL_SUM_NAMES
        )
        passes = PassCheckpoints(checkpoints, identity)
    scores = _scores_of(particles, [(rows, volume)], reading, show_progress, passes)
    if (dust := dust_summary(particles)) is not None:
        log.info("%s", describe_dust(dust))
    return ScoredRun(
        particles.source,
        particles.rows_in_file(),
        np.full(len(particles), "-"),
        scores,
        map=map_path.resolve(),
        run_resolution_angstrom=resolution_angstrom,
        shells_to_angstrom=particles.box * pixel / radius,
    )


def _scores_of(
    particles: ParticleSet,
    groups: list[tuple[np.ndarray, np.ndarray]],
    reading: SampleReading,
    show_progress: bool,
    passes: PassCheckpoints,
) -> ParticleScores:
    """The :class:`ParticleScores` of ``particles`` (their order), each group ``(rows,
    volume)``'s rows read against its volume (each kept in ``passes`` as it goes)."""
    bar = Progress(len(particles), "score", enabled=show_progress)
    parts = []
    for group, (rows, volume) in enumerate(groups):
        store = passes.store(f"scores_{group}", rows)
        progress = pass_progress(bar, store)
        parts.append(shell_sums(particles, rows, volume, reading, progress, store))
    bar.close()
    order = np.concatenate([rows for rows, _ in groups])
    return score_from_sums(ShellSums.concatenate(parts).take(np.argsort(order)))


def scores_plot(scored: ScoredRun) -> LinePlot:
    """The scores' histogram (particles per bin) and what the images of noise alone would
    give (``π₀ N φ(z)`` per bin)."""
    z = scored.scores.z[np.isfinite(scored.scores.z)]
    low = math.floor(min(-4.0, float(z.min()) if z.size else 0.0))
    high = math.ceil(max(4.0, float(np.percentile(z, 99.5)) if z.size else 0.0))
    edges = np.arange(low, high + HISTOGRAM_STEP, HISTOGRAM_STEP)
    counts, _ = np.histogram(z, edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    null = (
        scored.scores.null_fraction()
        * z.size
        * HISTOGRAM_STEP
        * np.exp(-0.5 * centres**2)
        / math.sqrt(2 * math.pi)
    )
    return LinePlot(
        x=centres,
        curves=[
            Curve("particles", counts.astype(float)),
            Curve("images of noise alone (estimated share)", null, style="--"),
        ],
        xlim=(float(edges[0]), float(edges[-1])),
        ylim=(0.0, 1.05 * max(float(counts.max(initial=0)), float(null.max(initial=0)), 1.0)),
        title="Particle scores against the half map made without them",
        xlabel="score z (noise standard deviations)",
        ylabel="particles per bin",
    )


def write_scores(folder: str | Path, scored: ScoredRun) -> dict:
    """Write ``kept.npy``, ``named.npy``, ``kept.pkl``, ``weights.npy``, ``kept.star`` or
    ``kept.cs`` (particles from a STAR or ``.cs`` file), ``scores.svg``, ``score.json`` and,
    last, ``particle_scores.csv`` into ``folder`` (made if needed), each atomically (an
    interrupted write leaves no part of a file); return a summary."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    s = scored.scores
    named = s.junk()
    for name, rows in (
        ("kept.npy", scored.rows_in_file[~named]),
        ("named.npy", scored.rows_in_file[named]),
    ):
        with atomic_path(folder / name, suffix=".npy") as tmp:
            np.save(tmp, np.sort(rows))
    kept = np.sort(scored.rows_in_file[~named])
    write_index_pickle(kept, folder / "kept.pkl")
    write_weights(folder / "weights.npy", scored.rows_in_file, 1.0 - s.junk_probability())
    metadata = write_metadata_rows(scored.source, kept, folder / "kept")
    write_svg(folder / "scores.svg", scores_plot(scored))
    finite = s.z[np.isfinite(s.z)]
    summary = {
        "n_particles": len(s.z),
        "score_median": float(np.median(finite)) if finite.size else None,
        "null_fraction": s.null_fraction(),
        "named": int(named.sum()),
        "kept": int((~named).sum()),
        "kept_metadata": str(metadata) if metadata is not None else None,
    }
    mixture = s.mixture
    write_json_atomic(
        folder / SCORE_FILE,
        {
            "cryosplat_version": __version__,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "particles": str(Path(scored.source).resolve()) if scored.source else None,
            "run": str(scored.run) if scored.run is not None else None,
            "map": str(scored.map) if scored.map is not None else None,
            "run_resolution_angstrom": scored.run_resolution_angstrom,
            "shells_to_angstrom": scored.shells_to_angstrom,
            "junk_probability_threshold": JUNK_PROBABILITY,
            "mixture": {"gain": mixture.gain, "spread": mixture.spread},
            **summary,
            "kept_metadata": str(metadata.resolve()) if metadata is not None else None,
        },
    )
    junk = s.junk_probability()
    write_particle_table(
        folder / "particle_scores.csv",
        scored.rows_in_file,
        scored.halves,
        {
            "score": [f"{v:.4f}" for v in s.z],
            "expected_score": [f"{v:.4f}" for v in s.amplitude],
            "noise_scale": [f"{v:.4f}" for v in s.noise_scale],
            "junk_probability": [f"{v:.4f}" for v in junk],
        },
    )
    return summary


def read_scores(folder: str | Path) -> dict | None:
    """A ``cryosplat score`` output folder's ``score.json``, or None where it holds none.

    Raises
    ------
    InputError
        The file is not readable JSON.
    """
    return read_json_record(Path(folder) / SCORE_FILE, "cryosplat score record")
