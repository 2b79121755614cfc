"""Real maps that are not in ``../shared/data``, written from git mirrors of the public
repositories that hold them, for benchmark sets of other molecules (round 2, session 69).

    python benchmarks/bench_extra_maps.py --cryojax MIRROR --aspire MIRROR

``MIRROR`` is a git directory of the repository (a clone, or ``fetch``'s mirror); each map is
read at a fixed commit and written to :data:`EXTRA_MAPS` (``../shared/extra_maps`` beside the
repository), which the sets of :mod:`bench_catalogue_s69` read. The maps stay out of the
package and out of this repository:

- ``trpv1.mrc``: a TRPV1 map at box 48, 4.88 Å/px, from cryojax's tests (LGPL-2.1), as it is.
- ``ribosome70s.mrc``: ASPIRE's 70S ribosome (GPL-3.0; box 65, no voxel size in its header,
  5 Å/px in ASPIRE's own RELION example), its first 64 voxels along each axis (box 64, the
  centre voxel 32 kept) at 5 Å/px.
- ``3j9g.mrc``: a scattering potential from cryojax's tests made from the atoms of PDB 3J9G,
  box 64, 4.4 Å/px, as it is.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from bench_datasets import SHARED

from cryosplat.io.mrc import read_map, write_map

EXTRA_MAPS = SHARED.parent / "extra_maps"

CRYOJAX_TRPV1 = ("ecd03147243499d107ca4cf5ec67fb23e2dca421", "tests/data/trpv1_volume.mrc")
CRYOJAX_3J9G = ("ecd03147243499d107ca4cf5ec67fb23e2dca421", "tests/data/3j9g_bfm1_ps4_4.mrc")
ASPIRE_RIBOSOME = (
    "64ad0dd6afb690547ae48cbdbb38bf62525ed8c7",
    "gallery/tutorials/data/clean70SRibosome_vol_65p.mrc",
)
RIBOSOME_PIXEL_ANGSTROM = 5.0


def even_box(volume: np.ndarray) -> np.ndarray:
    """An odd box ``D`` cut to ``D - 1`` by its last plane on each axis: the centre voxel ``D // 2``
    (the FFT-aligned grid's origin) is the same voxel in both."""
    n = volume.shape[0]
    if volume.shape != (n, n, n) or n % 2 == 0:
        raise ValueError(f"expected an odd cube, got shape {volume.shape}")
    return np.ascontiguousarray(volume[: n - 1, : n - 1, : n - 1])


def _blob(mirror: Path, commit_path: tuple[str, str], into: Path) -> Path:
    commit, path = commit_path
    data = subprocess.run(
        ["git", "--git-dir", str(mirror), "show", f"{commit}:{path}"],
        check=True,
        capture_output=True,
    ).stdout
    if data.startswith(b"version https://git-lfs"):
        raise RuntimeError(f"{mirror}: {commit}:{path} is a Git LFS pointer, not the map")
    out = into / Path(path).name
    out.write_bytes(data)
    return out


def write_extra_maps(cryojax: Path, aspire: Path, folder: Path = EXTRA_MAPS) -> list[Path]:
    """Write the three maps of the module docstring into ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        trpv1, voxel = read_map(_blob(cryojax, CRYOJAX_TRPV1, tmp))
        write_map(folder / "trpv1.mrc", trpv1, voxel)
        potential, voxel = read_map(_blob(cryojax, CRYOJAX_3J9G, tmp))
        write_map(folder / "3j9g.mrc", potential, voxel)
        ribosome, _ = read_map(_blob(aspire, ASPIRE_RIBOSOME, tmp))
        if ribosome.shape != (65, 65, 65):
            raise RuntimeError(f"ASPIRE's 70S ribosome: shape {ribosome.shape}, expected 65³")
        write_map(folder / "ribosome70s.mrc", even_box(ribosome), RIBOSOME_PIXEL_ANGSTROM)
    return [folder / n for n in ("trpv1.mrc", "3j9g.mrc", "ribosome70s.mrc")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cryojax", type=Path, required=True, help="git dir of mjo22/cryojax")
    parser.add_argument(
        "--aspire", type=Path, required=True, help="git dir of ComputationalCryoEM/ASPIRE-Python"
    )
    parser.add_argument("--out", type=Path, default=EXTRA_MAPS)
    args = parser.parse_args()
    for path in write_extra_maps(args.cryojax, args.aspire, args.out):
        print(path)


if __name__ == "__main__":
    main()
