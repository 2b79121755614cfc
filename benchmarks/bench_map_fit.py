"""``cryosplat fsc --fit`` (:mod:`cryosplat.validation.map_fit`) against known moves: each map is
turned and moved by seeded rigid moves, fitted back onto the map as it was, and compared.

For every map given and every move it prints the fit's rotation error (degrees) and shift error
(Å); the largest loss of FSC, over the shells up to ``--shells`` of Nyquist, of the moved map
fitted back against the same map moved back by the true inverse (what the fit's errors cost), and
of that true move back against the map (what two resamplings, and density the first move pushed
out of the box, cost); the map's and its mirror image's correlations (the hand check), the fit's
wall time, and whether the map's mirror image, moved the same way, is named as the other hand.

The maps are whatever one compares: truths, peers' maps of noisy data (``relion_full.mrc`` of a
benchmark run), cryosplat's. Their own noise is part of the test: a noisy map's fit is what a user
meets when fitting a peer's map onto a deposited one.

Example::

    python benchmarks/bench_map_fit.py bench_out/datasets/emd5625/truth.mrc \\
        bench_out/runs/emd5625/relion/relion_full.mrc --moves 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import read_map
from cryosplat.validation.fsc import fsc
from cryosplat.validation.map_fit import MapFit, fit_map, move_map


def _angle_degrees(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(a.T @ b) - 1) / 2, -1, 1))))


def _moves(count: int, seed: int, extent_angstrom: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Seeded rigid moves: uniform turns, shifts up to a tenth of the box's extent per axis."""
    rng = np.random.default_rng(seed)
    rotations = random_rotations(count, rng)
    shifts = rng.uniform(-0.1, 0.1, size=(count, 3)) * extent_angstrom
    return list(zip(rotations, shifts, strict=True))


def bench_map(path: Path, moves: int, seed: int, shells: float) -> list[str]:
    """Table rows for one map."""
    volume, pixel = read_map(path)
    box = volume.shape[0]
    last = max(2, int(shells * box / 2))
    rows = []
    for k, (rotation, shift) in enumerate(_moves(moves, seed, box * pixel)):
        moved = move_map(volume, MapFit(rotation, shift, 0, 0, 0), pixel)
        start = time.perf_counter()
        fit = fit_map(volume, moved, pixel)
        fitted = move_map(moved, fit, pixel)
        seconds = time.perf_counter() - start
        # The fit should undo the move: R_fit = Rᵀ, t_fit = −Rᵀ t.
        angle_error = _angle_degrees(fit.rotation, rotation.T)
        shift_error = float(np.linalg.norm(fit.shift_angstrom + rotation.T @ shift))
        # Against the map moved back by the true inverse (what the moves alone cost: two
        # resamplings and whatever the first move pushed out of the box), and against the map.
        back = move_map(moved, MapFit(rotation.T, -rotation.T @ shift, 0, 0, 0), pixel)
        deficit = float((1 - fsc(fitted, back)[1 : last + 1]).max())
        floor = float((1 - fsc(back, volume)[1 : last + 1]).max())
        mirror = move_map(volume[::-1].copy(), MapFit(rotation, shift, 0, 0, 0), pixel)
        mirror_fit = fit_map(volume, mirror, pixel) if k == 0 else None
        named = (
            "—"
            if mirror_fit is None
            else (
                "yes" if mirror_fit.mirrored_correlation > mirror_fit.correlation + 0.01 else "NO"
            )
        )
        rows.append(
            f"| {path.parent.name}/{path.name} | {box} | {k} | "
            f"{_angle_degrees(rotation, np.eye(3)):.0f}° | {angle_error:.2f}° | "
            f"{shift_error:.2f} Å ({shift_error / pixel:.2f} px) | {deficit:.4f} | {floor:.4f} | "
            f"{fit.correlation:.3f} / {fit.mirrored_correlation:.3f} | {named} | {seconds:.1f} s |"
        )
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("maps", type=Path, nargs="+")
    parser.add_argument("--moves", type=int, default=3, help="rigid moves per map")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--shells", type=float, default=0.8, help="FSC loss read to this share of Nyquist"
    )
    args = parser.parse_args()
    print(
        "| map | box | move | turn | rotation error | shift error | largest FSC loss to "
        f"{args.shells:g} Nyquist against the true move back | the true move back's against the "
        "map | correlation / mirror's | mirror image named | fit and move |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for path in args.maps:
        bench_map(path, args.moves, args.seed, args.shells)


if __name__ == "__main__":
    main()
