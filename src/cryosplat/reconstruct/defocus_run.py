"""``cryosplat refine-defocus``'s work: each particle's defocus read from its image against its own
half set's map without the image's own share in it (:mod:`cryosplat.reconstruct.grid.defocus_fit`),
then, where the particles' micrographs are recorded, each micrograph's astigmatism read from its
particles with their new defoci (:mod:`cryosplat.reconstruct.grid.astigmatism_fit`).

Each half set's images are read against their own half map, as RELION's ``ctf_refine`` reads them,
so that the half sets made with the new defoci stay independent and the next run's resolution an
honest one. Read against the other half's map (round 2, sessions 65–79), the offsets followed that
map's errors, and on a map-based set the next run reported 10.65 Å where its map crossed 0.5 with
the truth at 12.26 Å (round 2, session 80). Against its own half map as it is, an image meets its
own noise and its defocus is drawn to the recorded one (the likelihood twice as sharp as its errors
warrant, session 65); the image's own share is therefore taken out of the map first
(:mod:`cryosplat.reconstruct.grid.own_share`), which leaves the offsets as accurate as against the
other half (session 80). The outputs go to a folder of their own:

* ``defocus.csv``: per particle its row in the file, its half, the offset applied (Å), how well
  it is known, and the defocus values written (with the astigmatism read: the angle written and
  its micrograph's move of the astigmatism's components, and how well that is known);
* the input's metadata with the new defocus values and angles, every other value as written:
  ``refined.star`` (a STAR file), ``refined.cs`` (a cryoSPARC ``.cs``, its passthrough fields
  added) or ``ctf.pkl`` (cryoDRGN's), to reconstruct again;
* ``defocus.svg``: the offsets' histogram; ``astigmatism.svg``, where the astigmatism was moved:
  the micrographs' moves' lengths and the prior;
* ``defocus.json``: what was read against what, the prior's fit and the counts.

Each file is written whole or not at all, ``defocus.csv`` last.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from cryosplat import __version__
from cryosplat.core.ctf import CTFParams
from cryosplat.core.errors import InputError
from cryosplat.core.progress import Progress
from cryosplat.io.svg_plot import Curve, LinePlot, write_svg
from cryosplat.particles.metadata_out import write_metadata
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.astigmatism_fit import (
    DEFAULT_ASTIGMATISM_RANGE_ANGSTROM,
    AstigmatismFit,
    AstigmatismGrid,
    read_astigmatism,
)
from cryosplat.reconstruct.grid.defocus_fit import (
    DEFAULT_RANGE_ANGSTROM,
    DefocusFit,
    DefocusSearch,
    defocus_log_likelihood,
    fit_offsets,
)
from cryosplat.reconstruct.grid.noise_levels import measure_noise_levels
from cryosplat.reconstruct.grid.own_share import insertion_weights, own_share
from cryosplat.reconstruct.grid.particle_scores import SampleReading, score_from_sums, shell_sums
from cryosplat.reconstruct.grid.row_store import PassCheckpoints, pass_progress
from cryosplat.reconstruct.grid.slice_cache import SliceCache
from cryosplat.reconstruct.run_folder import read_json_record, write_json_atomic
from cryosplat.reconstruct.run_halves import (
    read_run_halves,
    shells_read,
    write_particle_table,
)

__all__ = [
    "DEFOCUS_FILE",
    "RefinedDefocus",
    "read_defocus_record",
    "refine_defocus_run",
    "write_refined_defocus",
]

log = logging.getLogger("cryosplat")

DEFOCUS_FILE = "defocus.json"
HISTOGRAM_BINS = 41
EDGE_FRACTION = 0.75  # offsets beyond this fraction of the range searched are near its edge
EDGE_SHARE = 0.01  # a warning where more particles than this share are


@dataclass(frozen=True)
class RefinedDefocus:
    """A run's particles and their defocus offsets, in the particle set's order.

    Attributes
    ----------
    source : Path or None
        The particles' metadata file.
    rows_in_file : np.ndarray of int, (N,)
    halves : np.ndarray of str, (N,)
    fit : DefocusFit
    recorded : CTFParams
        The particles' CTF as recorded.
    run : Path
    run_resolution_angstrom : float or None
    shells_to_angstrom : float
        The finest resolution the images were read to.
    search : DefocusSearch
    micrographs : int or None
        How many micrographs the particles came from, where recorded (the prior then shared per
        micrograph, :func:`~cryosplat.reconstruct.grid.defocus_fit.fit_offsets`).
    astigmatism : AstigmatismFit or None
        Each micrograph's astigmatism, where read (the micrographs recorded).
    own_share : tuple of np.ndarray, optional
        Each half's ``κ_s`` (S,), its images' share in its own map, taken out as they were read
        (:mod:`~cryosplat.reconstruct.grid.own_share`).
    """

    source: Path | None
    rows_in_file: np.ndarray
    halves: np.ndarray
    fit: DefocusFit
    recorded: CTFParams
    run: Path
    run_resolution_angstrom: float | None
    shells_to_angstrom: float
    search: DefocusSearch
    micrographs: int | None = None
    astigmatism: AstigmatismFit | None = None
    own_share: tuple[np.ndarray, ...] | None = None

    def refined_ctf(self) -> CTFParams:
        """The particles' CTF with the offsets and moves applied (where they were)."""
        astigmatism = self.astigmatism
        moves = astigmatism.offset_angstrom if astigmatism and astigmatism.applied else None
        return self.recorded.moved(self.fit.offset_angstrom, moves)


def refine_defocus_run(
    particles: ParticleSet,
    run: str | Path,
    *,
    range_angstrom: float = DEFAULT_RANGE_ANGSTROM,
    astigmatism: bool = True,
    astigmatism_range_angstrom: float = DEFAULT_ASTIGMATISM_RANGE_ANGSTROM,
    device: str | torch.device = "cpu",
    batch_size: int = 128,
    show_progress: bool = True,
    checkpoints: Path | None = None,
) -> RefinedDefocus:
    """Read each particle's defocus offset (within ``±range_angstrom``) from its image against
    its own half set's map of the complete run in ``run``, its own share in it taken out; then,
    where ``astigmatism`` and the particles' micrographs are recorded, each micrograph's
    astigmatism (moves within about ``±astigmatism_range_angstrom`` along each component,
    :mod:`~cryosplat.reconstruct.grid.astigmatism_fit`), read with the new defoci.

    ``checkpoints``: a folder where each pass over the images is kept as it goes; a call that
    finds the passes of an interrupted one there goes on from where it stopped
    (:mod:`~cryosplat.reconstruct.grid.row_store`). The caller removes it once the outputs are
    written.

    Raises
    ------
    InputError
        ``run`` is not a complete run, or ``particles`` are not its particles.
    """
    halves = read_run_halves(particles, run, "refine-defocus")
    particles, resolution = halves.particles, halves.resolution_angstrom
    radius = shells_read(particles, resolution, "the run's resolution")
    finest = particles.box * particles.pixel_size_angstrom / radius
    voltage = float(np.min(particles.ctf.voltage_kv))
    search = DefocusSearch.for_shells(range_angstrom, finest, voltage)
    offsets = search.offsets_angstrom
    log.info(
        "defocus offsets tried: %d from %+.0f to %+.0f Å (every %.1f Å)",
        len(offsets),
        offsets[0],
        offsets[-1],
        offsets[1] - offsets[0],
    )
    reads_astigmatism = astigmatism and particles.micrographs is not None
    bar = Progress(
        (6 if reads_astigmatism else 4) * len(particles), "defocus", enabled=show_progress
    )
    likelihood = np.full((len(particles), len(offsets)), np.nan)
    kind = torch.device(device).type
    # each image is read four to six times at one pose: its slices kept between the passes
    cache = SliceCache.for_host() if kind == "cpu" else None
    levels = measure_noise_levels(particles, report=False) if halves.image_weights else None
    reading = SampleReading(
        batch_size,
        device,
        halves.data_sign,
        radius,
        cache,
        insertion_weights=insertion_weights(particles, levels),
    )
    passes = halves.checkpoints(checkpoints, radius, kind, levels)
    scores, shares = [], []  # each half's, against its own map without its images' own share
    for half, ((rows, volume), (_, other)) in enumerate(
        zip(halves.own(), halves.crossed(), strict=True)
    ):
        share = _own_share(particles, rows, (volume, other), reading, bar, passes, half)
        shares.append(share)
        own_reading = replace(reading, own_share=tuple(float(v) for v in share))
        store = passes.store(f"scores_{half}", rows, share)
        sums = shell_sums(particles, rows, volume, own_reading, pass_progress(bar, store), store)
        scores.append(score_from_sums(sums))
        store = passes.store(f"defocus_{half}", rows, offsets, share)
        likelihood[rows] = defocus_log_likelihood(
            particles,
            rows,
            volume,
            scores[-1],
            search,
            own_reading,
            pass_progress(bar, store),
            store,
        )
    fit = fit_offsets(likelihood, search, particles.micrographs)
    _warn_at_the_edge(fit, range_angstrom)
    astigmatism_fit = None
    if reads_astigmatism:
        astigmatism_fit = read_astigmatism(
            particles,
            [
                (rows, volume, half_scores, share)
                for (rows, volume), half_scores, share in zip(
                    halves.own(), scores, shares, strict=True
                )
            ],
            particles.ctf.moved(fit.offset_angstrom),
            AstigmatismGrid.fine_for_shells(finest, voltage, astigmatism_range_angstrom),
            astigmatism_range_angstrom,
            reading,
            bar,
            passes,
        )
    bar.close()
    if cache is not None and cache.hits:
        log.info(
            "slices kept between passes: %.2f GB; %d readings of an image's slice saved",
            cache.used_bytes / 1e9,
            cache.hits,
        )
    return RefinedDefocus(
        particles.source,
        particles.rows_in_file(),
        halves.half_names(),
        fit,
        particles.ctf,
        halves.run,
        resolution,
        finest,
        search,
        None if particles.micrographs is None else len(np.unique(particles.micrographs)),
        astigmatism_fit,
        tuple(shares),
    )


def _own_share(
    particles: ParticleSet,
    rows: np.ndarray,
    maps: tuple[np.ndarray, np.ndarray],
    reading: SampleReading,
    bar: Progress,
    passes: PassCheckpoints,
    half: int,
) -> np.ndarray:
    """``κ_s`` of a half set's images in their own half map (``maps``: own, other;
    :func:`~cryosplat.reconstruct.grid.own_share.own_share`), logged."""
    sums = []
    once = replace(reading, slices=None, insertion_weights=None)  # read once, for its agreement
    for name, volume, at in (("own", maps[0], reading), ("other", maps[1], once)):
        store = passes.store(f"{name}_{half}", rows)
        sums.append(shell_sums(particles, rows, volume, at, pass_progress(bar, store), store))
    share = own_share(*sums)
    log.info(
        "half %s: its images' own share in its map taken out before they are read against it "
        "(%.2g of its agreement with them at the recorded defocus, over the shells read)",
        "AB"[half],
        float(np.nansum(share[None] * sums[0].ctf_data) / max(np.nansum(sums[0].cross), 1e-300)),
    )
    return share


def _warn_at_the_edge(fit: DefocusFit, range_angstrom: float) -> None:
    """A warning where many offsets lie near the edge of the range searched: their defocus may
    lie beyond it."""
    if not fit.applied:
        return
    near = np.abs(fit.offset_angstrom) > EDGE_FRACTION * range_angstrom
    if near.mean() > EDGE_SHARE:
        log.warning(
            "%d particles' offsets lie beyond %.0f %% of the range searched (±%.0f Å): their "
            "defocus may lie further off; give a larger --range",
            int(near.sum()),
            100 * EDGE_FRACTION,
            range_angstrom,
        )


def _refined_metadata(
    refined: RefinedDefocus, folder: Path, ctf_pickle: Path | None
) -> Path | None:
    """The input's metadata with the new defocus values, in its own format, or None where the
    input is none of those."""
    rows, ctf = refined.rows_in_file, refined.refined_ctf()
    written = write_metadata(
        refined.source, rows, folder, "refined", ctf=ctf, ctf_pickle=ctf_pickle
    )
    return written[0] if written else None


def offsets_plot(refined: RefinedDefocus) -> LinePlot:
    """The offsets' histogram and the prior fitted to them."""
    fit = refined.fit
    offsets = fit.offset_angstrom[np.isfinite(fit.sd_angstrom)]
    searched = refined.search.offsets_angstrom
    spread = max(fit.total_sd_angstrom, 1e-9)
    return _histogram_plot(
        offsets,
        np.linspace(searched[0], searched[-1], HISTOGRAM_BINS),
        lambda x: (
            np.exp(-0.5 * ((x - fit.prior_mean_angstrom) / spread) ** 2)
            / (math.sqrt(2 * math.pi) * spread)
        ),
        ("particles (posterior mean offsets)", "the recorded defoci's errors as fitted (prior)"),
        (
            "Defocus offsets read against each half's map without the particle's own share",
            "offset added to the recorded defocus (Å)",
            "particles per bin",
        ),
    )


def astigmatism_plot(fit: AstigmatismFit) -> LinePlot:
    """The micrographs' astigmatism moves about the prior's centre (their length,
    ``|(δa, δb) − μ|``), histogram, and the prior fitted to them (a Rayleigh density)."""
    moves = fit.offset_angstrom[np.isfinite(fit.sd_angstrom)]
    # one row per micrograph: its images share its move
    moves = np.unique(moves, axis=0) if moves.size else np.zeros((0, 2))
    lengths = np.hypot(*(moves - np.asarray(fit.prior_mean_angstrom)).T)
    spread = max(fit.prior_sd_angstrom, 1e-9)
    reach = max(float(lengths.max(initial=0.0)), 3.0 * fit.prior_sd_angstrom, 1.0)
    return _histogram_plot(
        lengths,
        np.linspace(0.0, 1.05 * reach, HISTOGRAM_BINS),
        lambda x: x / spread**2 * np.exp(-0.5 * (x / spread) ** 2),
        (
            "micrographs (posterior mean moves)",
            "the recorded astigmatism's errors as fitted (prior)",
        ),
        (
            "Astigmatism moves read per micrograph against the half maps without their own share",
            "length of the move of the astigmatism's components (a, b) (Å)",
            "micrographs per bin",
        ),
    )


def _histogram_plot(
    values: np.ndarray,
    edges: np.ndarray,
    density: Callable[[np.ndarray], np.ndarray],
    labels: tuple[str, str],
    titles: tuple[str, str, str],
) -> LinePlot:
    """``values``' histogram over ``edges`` beside the prior's ``density`` (per unit of the
    values) scaled to the counts; ``labels`` the two curves', ``titles`` the plot's title and
    its axes' labels."""
    counts, _ = np.histogram(values, edges)
    centres = 0.5 * (edges[1:] + edges[:-1])
    prior = values.size * float(edges[1] - edges[0]) * density(centres)
    top = max(float(counts.max(initial=0)), 1.0)
    title, xlabel, ylabel = titles
    return LinePlot(
        x=centres,
        curves=[
            Curve(labels[0], counts.astype(float)),
            Curve(labels[1], np.minimum(prior, 2 * top), "--"),
        ],
        xlim=(float(edges[0]), float(edges[-1])),
        ylim=(0.0, 1.05 * max(top, float(prior.max(initial=0)))),
        title=title,
        xlabel=xlabel,
        ylabel=ylabel,
    )


def write_refined_defocus(
    folder: str | Path, refined: RefinedDefocus, *, ctf_pickle: str | Path | None = None
) -> dict:
    """Write the refined metadata (``refined.star``, ``refined.cs``, or ``ctf.pkl`` where
    ``ctf_pickle`` names cryoDRGN's), ``defocus.svg``, ``defocus.json`` and, last,
    ``defocus.csv`` into ``folder`` (made if needed), each atomically; return a summary."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fit = refined.fit
    metadata = _refined_metadata(refined, folder, Path(ctf_pickle) if ctf_pickle else None)
    if metadata is None:
        raise InputError(
            f"{refined.source}: particles from this file cannot be written back with new "
            "defocus values (STAR, .cs and cryoDRGN's ctf.pkl can)"
        )
    write_svg(folder / "defocus.svg", offsets_plot(refined))
    if refined.astigmatism is not None and refined.astigmatism.applied:
        write_svg(folder / "astigmatism.svg", astigmatism_plot(refined.astigmatism))
    read = np.isfinite(fit.sd_angstrom)
    summary = {
        "n_particles": len(fit.offset_angstrom),
        "read": int(read.sum()),
        "prior_mean_angstrom": fit.prior_mean_angstrom,
        "prior_sd_angstrom": fit.prior_sd_angstrom,
        "micrographs": refined.micrographs,
        "micrograph_sd_angstrom": fit.micrograph_sd_angstrom,
        "evidence_gain": fit.evidence_gain,
        "applied": fit.applied,
        "offset_rms_angstrom": float(np.sqrt(np.mean(fit.offset_angstrom[read] ** 2)))
        if read.any()
        else 0.0,
        "offset_sd_median_angstrom": float(np.median(fit.sd_angstrom[read]))
        if read.any()
        else None,
        "astigmatism": _astigmatism_summary(refined.astigmatism),
        "refined_metadata": str(metadata.resolve()),
    }
    offsets = refined.search.offsets_angstrom
    write_json_atomic(
        folder / DEFOCUS_FILE,
        {
            "cryosplat_version": __version__,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "particles": str(Path(refined.source).resolve()) if refined.source else None,
            "run": str(refined.run),
            "run_resolution_angstrom": refined.run_resolution_angstrom,
            "shells_to_angstrom": refined.shells_to_angstrom,
            "offsets_tried_angstrom": [float(offsets[0]), float(offsets[-1]), len(offsets)],
            "read_against": "each half set's own map, its images' own share taken out",
            "own_share_per_shell": None
            if refined.own_share is None
            else {
                half: [float(v) for v in share]
                for half, share in zip("AB", refined.own_share, strict=True)
            },
            **summary,
        },
    )
    ctf = refined.refined_ctf()
    columns = {
        "offset_angstrom": [f"{v:.2f}" for v in fit.offset_angstrom],
        "sd_angstrom": [f"{v:.2f}" for v in fit.sd_angstrom],
        "defocus_u": [f"{v:.2f}" for v in ctf.defocus_u_angstrom],
        "defocus_v": [f"{v:.2f}" for v in ctf.defocus_v_angstrom],
    }
    if refined.astigmatism is not None:
        moves = refined.astigmatism.offset_angstrom
        columns["defocus_angle"] = [f"{v:.2f}" for v in ctf.defocus_angle_degrees]
        columns["astigmatism_move_a"] = [f"{v:.2f}" for v in moves[:, 0]]
        columns["astigmatism_move_b"] = [f"{v:.2f}" for v in moves[:, 1]]
        columns["astigmatism_sd"] = [f"{v:.2f}" for v in refined.astigmatism.sd_angstrom]
    write_particle_table(folder / "defocus.csv", refined.rows_in_file, refined.halves, columns)
    return summary


def _astigmatism_summary(fit: AstigmatismFit | None) -> dict | None:
    """What :class:`AstigmatismFit` says, for ``defocus.json`` (None where not read)."""
    if fit is None:
        return None
    return {
        "micrographs": fit.micrographs,
        "prior_mean_angstrom": list(fit.prior_mean_angstrom),
        "prior_sd_angstrom": fit.prior_sd_angstrom,
        "evidence_gain": fit.evidence_gain,
        "applied": fit.applied,
        "move_rms_angstrom": fit.move_rms_angstrom,
        "move_sd_median_angstrom": fit.sd_median_angstrom,
    }


def read_defocus_record(folder: str | Path) -> dict | None:
    """A ``cryosplat refine-defocus`` output folder's ``defocus.json``, or None where it holds
    none.

    Raises
    ------
    InputError
        The file is not readable JSON.
    """
    return read_json_record(Path(folder) / DEFOCUS_FILE, "cryosplat refine-defocus record")
