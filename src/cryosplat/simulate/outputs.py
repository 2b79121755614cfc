"""Where ``simulate`` and ``project`` write: never over an input, never over an output unasked.

``reconstruct`` guards its run folder (:mod:`cryosplat.reconstruct.run_folder`); these are the same
rules for the commands that make data: an existing output is replaced only with ``overwrite``, an
input (the model, the angles file, a stack it refers to) never is without it, a folder of an earlier
simulation is emptied of that simulation's files before the new one is written (so old stacks never
sit beside a new STAR), and the device asked for must exist before any work.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cryosplat.core.errors import InputError

__all__ = ["guard_output_file", "simulation_files", "guard_simulation_folder"]

SIMULATION_FILES = ("particles.star", "truth.mrc", "simulation.json")
SIMULATION_STACKS = "particles_*.mrcs"


def _same(a: Path, b: Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def guard_output_file(path: Path, inputs: Iterable[Path], overwrite: bool) -> None:
    """Refuse to write ``path`` over an existing file (or an input) unless ``overwrite``.

    Parameters
    ----------
    path : Path
        The file about to be written.
    inputs : iterable of Path
        Files the command reads (named in the message when ``path`` is one of them).
    overwrite : bool
        The user asked to replace an existing file.
    """
    path = Path(path)
    if not path.parent.is_dir():
        raise InputError(
            f"{path}: the folder {path.parent} does not exist; create it first or choose "
            "another output path"
        )
    if path.is_dir():
        raise InputError(f"{path}: is a folder; give the output file's name")
    if not path.exists() or overwrite:
        return
    for p in inputs:
        if p is not None and Path(p).exists() and _same(p, path):
            raise InputError(
                f"{path}: is an input of this command ({p}); writing there would destroy it: "
                "choose another output (or pass --overwrite to replace it anyway)"
            )
    raise InputError(f"{path}: exists; pass --overwrite to replace it, or choose another output")


def simulation_files(folder: Path) -> list[Path]:
    """The files of an earlier simulation in ``folder`` (STAR, truth, record, stacks)."""
    folder = Path(folder)
    found = [folder / n for n in SIMULATION_FILES if (folder / n).exists()]
    return found + sorted(folder.glob(SIMULATION_STACKS))


def guard_simulation_folder(folder: Path, inputs: Iterable[Path], overwrite: bool) -> list[Path]:
    """Check a simulation's output folder; returns the earlier simulation's files to remove.

    Raises
    ------
    InputError
        The path is a file; the folder holds an earlier simulation and ``overwrite`` is not
        given; or an input would be among the files replaced. Other files are left alone.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise InputError(f"{folder}: exists and is not a folder")
    if not folder.is_dir():
        return []
    old = simulation_files(folder)
    for p in inputs:
        if p is None or not Path(p).exists():
            continue
        clash = [f for f in old if _same(f, p)]
        if clash:
            raise InputError(
                f"{folder}: holds an input of this simulation ({p}), which a new simulation "
                "there would replace; choose another output folder"
            )
    if old and not overwrite:
        names = ", ".join(f.name for f in old[:4]) + (", ..." if len(old) > 4 else "")
        raise InputError(
            f"{folder}: holds an earlier simulation ({names}); pass --overwrite to replace it, "
            "or choose a new output folder"
        )
    return old
