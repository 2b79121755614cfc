"""Project a model along the poses of a particle file into an image stack (``cryosplat project``).

The counterpart of ``relion_project --ang``: angles, origins (RELION sign), CTF, pixel size and box
come from the particle file, one output image per row, in order. The model is projected as
``cryosplat simulate`` projects it (:func:`cryosplat.simulate.projection.load_projector`): an
atomic model (PDB/mmCIF, centred in the box) or a saved Gaussian model (``.npz``) splatted, or a
density map (``.mrc``/``.map``, of the images' box) by Fourier slices. Images are line integrals
per Å², moved by minus the origins and, optionally, multiplied by the CTF in Fourier space.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cryosplat.core.ctf import ctf_from_params, image_transfer
from cryosplat.core.device import resolve_device
from cryosplat.core.errors import InputError
from cryosplat.io.stack_writer import StreamingStackWriter
from cryosplat.particles.read import read_particles
from cryosplat.render import BACKENDS
from cryosplat.simulate.outputs import guard_output_file
from cryosplat.simulate.projection import (
    MAP_SUFFIXES,
    MapProjector,
    ProjectorConfig,
    SplatProjector,
    load_projector,
)

__all__ = ["ProjectionConfig", "ProjectionResult", "project_particles"]

log = logging.getLogger(__name__)


@dataclass
class ProjectionConfig:
    """Settings of :func:`project_particles`.

    Attributes
    ----------
    model_path : PDB/mmCIF atomic model, ``.npz`` Gaussian model or ``.mrc``/``.map`` map
    angles_path : particle metadata (``.star``, ``.cs``) with poses
    output_path : the ``.mrcs`` stack to write
    apply_ctf : multiply by each particle's CTF
    backend : splatting backend (``"auto"``, ``"reference"``, ``"fast"``, ``"fourier"``)
    batch_size : images rendered together
    device : torch device (``"cpu"``, ``"cuda"``, ``"cuda:1"``)
    box : image size; default the particle file's
    pixel_size_angstrom : pixel size; default the particle file's
    bfactor_extra_angstrom2 : B-factor added to every atom of an atomic model
    n_sigma : splat footprint half-width in standard deviations
    overwrite : replace an existing output file (refused by default, and always named when it is
        an input of the command)
    """

    model_path: Path
    angles_path: Path
    output_path: Path
    apply_ctf: bool = False
    backend: str = "auto"
    batch_size: int = 64
    device: str = "cpu"
    box: int | None = None
    pixel_size_angstrom: float | None = None
    bfactor_extra_angstrom2: float = 0.0
    n_sigma: float = 3.0
    overwrite: bool = False

    def validate(self) -> None:
        """Raise :class:`InputError` naming the first bad setting."""
        if self.backend not in BACKENDS:
            raise InputError(f"--backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.batch_size < 1:
            raise InputError(f"--batch-size must be positive, got {self.batch_size}")
        if self.box is not None and self.box < 2:
            raise InputError(f"--box must be at least 2, got {self.box}")
        if self.pixel_size_angstrom is not None and not self.pixel_size_angstrom > 0:
            raise InputError(f"--pixel-size must be positive, got {self.pixel_size_angstrom}")
        if not self.n_sigma > 0:
            raise InputError(f"--n-sigma must be positive, got {self.n_sigma}")
        if Path(self.output_path).suffix.lower() not in (".mrcs", ".mrc"):
            raise InputError(f"{self.output_path}: the output stack must end in .mrcs")


@dataclass
class ProjectionResult:
    """What :func:`project_particles` wrote."""

    output_path: Path
    n_images: int
    box: int
    pixel_size_angstrom: float
    projected: str
    """What was projected, e.g. ``"4300 Gaussians"`` or ``"the map emd.mrc"``."""


def project_particles(config: ProjectionConfig) -> ProjectionResult:
    """Render one image per particle row and write them as an MRC stack.

    Raises
    ------
    InputError
        Bad settings, a particle file without poses (or without CTF when ``apply_ctf``), or an
        unreadable model.
    """
    config.validate()
    device = resolve_device(config.device)
    particles = read_particles(config.angles_path, require_images=False)
    inputs = [config.model_path, config.angles_path] + [st.path for st in particles.stacks]
    guard_output_file(Path(config.output_path), inputs, config.overwrite)
    if not particles.has_poses:
        raise InputError(f"{config.angles_path}: no angles (rlnAngleRot/Tilt/Psi) to project along")
    if config.apply_ctf and not particles.has_ctf:
        raise InputError(
            f"{config.angles_path}: --apply-ctf asked for but the file has no CTF values"
        )
    box = int(config.box or particles.box)
    pixel = float(config.pixel_size_angstrom or particles.pixel_size_angstrom)
    projector, projected = _projector(config, box, pixel, device)
    n = len(particles)
    shifts = (
        particles.shifts_angstrom if particles.shifts_angstrom is not None else np.zeros((n, 2))
    )
    log.info(
        "project: %s, %d images of %d² at %.4g Å/px%s",
        projected,
        n,
        box,
        pixel,
        " with CTF" if config.apply_ctf else "",
    )
    writer = StreamingStackWriter(Path(config.output_path), n, box, pixel)
    try:
        _render_all(config, particles, projector, shifts, writer)
    except BaseException:
        writer.abort()
        raise
    writer.close()
    return ProjectionResult(Path(config.output_path), n, box, pixel, projected)


def _projector(
    config: ProjectionConfig, box: int, pixel: float, device
) -> tuple[SplatProjector | MapProjector, str]:
    """The projector of the model file (:func:`~cryosplat.simulate.projection.load_projector`,
    as ``simulate`` makes it) on the images' grid, and what it projects in words: a map by
    Fourier slices (its box must be the images'), atoms or Gaussians by splatting."""
    path = Path(config.model_path)
    is_map = path.suffix.lower() in MAP_SUFFIXES
    if is_map and (config.bfactor_extra_angstrom2 or config.backend != "auto"):
        raise InputError(
            f"{path}: a map is projected by Fourier slices: --atom-bfactor (atomic models) "
            "and --backend (splatting) do not apply to it"
        )
    settings = ProjectorConfig(
        box=None if is_map else box,  # a map keeps its own box, checked below
        pixel_size_angstrom=pixel,
        backend=config.backend,
        device=str(device),
        bfactor_extra_angstrom2=config.bfactor_extra_angstrom2,
        n_sigma=config.n_sigma,
    )
    projector = load_projector(path, settings)
    if projector.box != box:
        raise InputError(
            f"{path}: the map's box is {projector.box}, the images' {box} (the particle "
            "file's or --box): resample the map, or give --box the map's"
        )
    if is_map:
        return projector, f"the map {path.name}"
    return projector, f"{len(projector.model)} Gaussians"


def _render_all(
    config, particles, projector: SplatProjector | MapProjector, shifts, writer
) -> None:
    """Render every particle in batches and append them to ``writer`` in order."""
    n = len(particles)
    for start in range(0, n, config.batch_size):
        rows = np.arange(start, min(n, start + config.batch_size))
        ctf = None
        if config.apply_ctf:
            ctf = ctf_from_params(
                particles.ctf.subset(rows),
                projector.box,
                projector.pixel_size_angstrom,
                device=projector.device,
            )
            codes = particles.ctf_in_images_of(rows)  # as such images carry it
            ctf = ctf if codes is None else image_transfer(ctf, codes)
        images = projector.images(particles.rotations[rows], shifts[rows], ctf)
        writer.write(np.asarray(images, dtype=np.float32))
