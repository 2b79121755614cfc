"""One entry point for particle files: :func:`read_particles` dispatches on the file's type."""

from __future__ import annotations

from pathlib import Path

from cryosplat.core.errors import InputError
from cryosplat.io.map_info import is_map_file
from cryosplat.particles.cryodrgn import read_stack_with_pickles
from cryosplat.particles.cryosparc import read_cryosparc
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.particles.relion import particles_from_star


def read_particles(
    path: str | Path,
    *,
    datadir: str | Path | None = None,
    poses: str | Path | None = None,
    ctf: str | Path | None = None,
    require_images: bool = True,
) -> ParticleSet:
    """Read a particle set, dispatching on the file's type.

    Parameters
    ----------
    path : str or Path
        ``.star`` (RELION 3.0/3.1+), ``.cs`` (cryoSPARC) or ``.mrcs``/``.mrc`` (a stack; poses and
        CTF from cryoDRGN pickles).
    datadir : str or Path, optional
        Folder to resolve relative image names against (default: the metadata file's folder,
        then the current directory).
    poses, ctf : str or Path, optional
        cryoDRGN ``poses.pkl`` and ``ctf.pkl`` for an ``.mrcs`` stack.
    require_images : bool
        For ``.star``/``.cs``: if False, a file without images is accepted (angles, shifts
        and CTF only; box and pixel size from ``data_optics``), as ``project --angles`` needs.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if poses is None and ctf is None and is_map_file(path):
        raise InputError(
            f"{path}: holds a 3D map, not particle images (particles: a .star or .cs file, or an "
            ".mrcs stack with cryoDRGN's --poses and --ctf); cryosplat info summarises a map, "
            "cryosplat fsc and sharpen read one"
        )
    if suffix == ".star":
        return particles_from_star(path, datadir=datadir, require_images=require_images)
    if suffix == ".cs":
        return read_cryosparc(path, datadir=datadir, require_images=require_images)
    if suffix in (".mrcs", ".mrc"):
        return read_stack_with_pickles(path, poses=poses, ctf=ctf)
    raise InputError(
        f"{path}: unknown particle file type '{suffix}' (expected .star, .cs or .mrcs)"
    )
