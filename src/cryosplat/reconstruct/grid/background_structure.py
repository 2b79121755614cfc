"""Images whose background holds structure far beyond their noise: left out of the map.

A particle picked beside a hole's edge holds part of the support film: on one side of its box a
step in the background (the film's extra density) and the film's own texture. Contamination leaves
the like. None of it is the molecule at the image's pose, and it is far
stronger than the molecule's signal: measured (round 2, session 73; ``benchmarks/bench_noise``'s
``carbon_edges``), 10 % of EMD-1832's images holding an edge whose film adds 3 noise s.d.s left
``relion_reconstruct --ctf`` and cryoDRGN's ``backproject_voxel`` with maps whose FSC with the
truth never reached 0.5, and cryosplat refusing the images as holding protein dark (its low
resolution data correlated negatively with any positive density). 2D classification removes such
particles where a user runs it and looks.

Each image's background (bins of about :data:`BIN_FRACTION` of the box whose centre lies more
than :data:`OUTER_RADIUS` of the box from pixel ``D//2``, where a centred molecule puts little of
itself) is tested against straight edges (:data:`EDGE_ANGLES` directions, each at
:data:`EDGE_OFFSETS` of the box from the centre): the bins' means, less their least-squares plane
(a linear gradient is not structure: the extraction's normalisation leaves it, and it costs the
fit little, round 2 session 70), are projected on each edge's step (less its plane), and the
largest square, in units of a bin mean's variance under white noise of the image's own level
(the pixels' variance within a bin over the bin's pixel count), is the image's *structure ratio*
(:func:`structure_ratios`). Noise alone gives the same distribution to every image whatever its
level (the largest of some hundred correlated squares of unit normals, more under coloured
noise); a film's step raises it tens of times. A sample of the images (the noise levels' own,
:func:`cryosplat.reconstruct.grid.noise_levels.measure_noise_levels`) sets the set's level (the
median) and its scatter (the median absolute deviation, times 1.4826): an image whose ratio
exceeds both :data:`STRUCTURE_FACTOR` times the median and the median plus
:data:`STRUCTURE_SIGMAS` of that scatter is left out (weight 0 in the statistics, in the per-image
engine's loss and in the background's level; :func:`structure_limits`). Where more than
:data:`TAIL_SHARE` of the sample lies beyond :data:`TAIL_FACTOR` times the median, the set holds
such images in numbers (the noise's own tail held at most 0.9 % there on 85 benchmark sets, the
sets with a film in 8-30 % of their images 8-28 %), and the limit is :data:`STRUCTURE_FACTOR` times
the median alone: films too weak to stand out one by one are then left out with the rest, and 1-3
% of the images without one with them. Where the sample holds no image past the limit, none is
left out (no limit is set, and the run is the one without this check to the bit).
Images of several kinds (optics groups read at other pixel sizes, binned and padded images), whose
noise is differently correlated between neighbouring pixels, are compared within their own kind.

Measured (round 2, session 73; ``benchmarks/RESULTS.md``): no image of the 85 benchmark sets made
before it is flagged (background ramps of up to 1 noise s.d. at the box's edge, neighbours in the
box, 8ZPM at SNR 3, the ribosome filling its box among them; on clean sets the noise's own ratio
reaches 3.5-5.5 times the median). Of the images holding a film with a step of 0.7-4 noise s.d.s
in 8-30 % of a set, every one is flagged where the step is 0.7 s.d. in white noise or 1.5-4
(89 % at 1 s.d. in coloured noise), and 1-3 % of the others; the sets read within 0.3-6.5 % of
the same sets made without the film at 0.5 (relion's and cryoDRGN's first shells -0.87 to
+0.11). With the strict limit alone, a step of 1 s.d. in a quarter of EMD-5625's images in
coloured noise (4.2 times the median) was flagged in 9 of 1,252 images and the fit stopped at its
contrast check; so, 1,118, and the map crosses 0.5 at 20.6 Å.

Contamination beside the particle (round 2, session 74, chosen after this test; ``bench_noise``'s
``ice_blobs``: part of a dense round blob, 1-8 noise s.d.s at its thickest, in 5-30 % of the
images) is no straight edge, but its rim is near enough one. Of the images whose blob puts more
than 200 noise s.d.s (summed over its pixels) in the box, 96-100 % were flagged on six sets and
64-87 % on beta-galactosidase's two (box 100, blobs of 1-2 s.d.s); of those between 60 and 200,
9-100 %; and 1.3-4.7 % of the images without one (the limit lowered). The eight sets read within
0.3-2.2 % of the same sets without the blobs at 0.5; with the test off the fit stopped at its
contrast check on the two tried with the strongest blobs, and the mildest set read 1 % finer.

Particles at a micrograph's edge (round 2, session 75; ``bench_noise``'s ``micrograph_edges``:
10-30 % of the particles, part of the box outside the micrograph and filled as
``relion_preprocess`` fills it, a strip repeating the last column or row inside) are no step, but
a strip's bins average fewer independent pixels than they count, so their means scatter beyond
the noise. Of the particles whose strip reaches 0.1 of the box, 69-88 % were left out on six of
eight sets, 39 % where the strips were at most 0.2 of the box, and 3 % in strongly coloured noise
(neighbouring pixels alike already); the eight sets read within -0.4 … +2.2 % of the same sets
without the edges (relion 0-1 %). Kept instead, the strips as they are or filled with the
background's mean, the maps read within ±1.5 % of that (one 3 % coarser), so nothing more is done.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

__all__ = [
    "BIN_FRACTION",
    "EDGE_ANGLES",
    "EDGE_OFFSETS",
    "OUTER_RADIUS",
    "STRUCTURE_FACTOR",
    "STRUCTURE_SIGMAS",
    "TAIL_FACTOR",
    "TAIL_SHARE",
    "structure_limits",
    "structure_ratios",
]

# Bins of about this share of the box (at least 2 pixels): box 64, 4 pixels; box 256, 16.
BIN_FRACTION = 1.0 / 16.0
# The background: bins whose centre lies more than this share of the box from the centre.
OUTER_RADIUS = 0.4
# An image is left out where its ratio exceeds both of these (module docstring).
STRUCTURE_SIGMAS = 12.0
STRUCTURE_FACTOR = 2.0
# Where more than TAIL_SHARE of the sample lies beyond TAIL_FACTOR times its median (the noise's
# own tail held at most 0.9 % there on 85 benchmark sets), the limit is STRUCTURE_FACTOR times
# the median alone (module docstring).
TAIL_FACTOR = 3.0
TAIL_SHARE = 0.03
# The median absolute deviation of a normal, in its standard deviations.
_MAD_TO_SD = 1.4826
# The straight edges tried (:func:`structure_ratios`): this many directions, each at these
# distances from the centre (shares of the box).
EDGE_ANGLES = 32
EDGE_OFFSETS = (0.1, 0.2, 0.3, 0.4)


@lru_cache(maxsize=8)
def _bins(box: int, device: torch.device) -> tuple[int, int, torch.Tensor, torch.Tensor]:
    """``(bin size, first pixel, outer bins (n, n) bool, steps (k, m))`` of a ``box``: the bins
    tile the centred ``n·b`` pixels; the ``k`` outer ones lie more than :data:`OUTER_RADIUS` of
    the box from pixel ``box // 2``; each of the ``m`` columns of ``steps`` is a straight edge's
    step over them (:data:`EDGE_ANGLES` directions, :data:`EDGE_OFFSETS` distances from the
    centre), less its least-squares plane in the bins' positions, of unit length."""
    size = max(2, round(box * BIN_FRACTION))
    n = box // size
    first = (box - n * size) // 2
    centres = first + size * torch.arange(n, device=device, dtype=torch.float64) + (size - 1) / 2
    offset = centres - box // 2
    outer = offset[:, None] ** 2 + offset[None, :] ** 2 > (OUTER_RADIUS * box) ** 2
    y, x = (t[outer] for t in torch.meshgrid(offset, offset, indexing="ij"))
    plane = torch.stack([torch.ones_like(x), x, y], dim=1)
    off_plane = torch.eye(len(x), dtype=torch.float64, device=device) - plane @ torch.linalg.pinv(
        plane
    )
    angles = torch.arange(EDGE_ANGLES, dtype=torch.float64, device=device) * (
        2 * math.pi / EDGE_ANGLES
    )
    along = torch.cos(angles)[None, :] * x[:, None] + torch.sin(angles)[None, :] * y[:, None]
    steps = torch.cat([(along > d * box).double() for d in EDGE_OFFSETS], dim=1)
    steps = off_plane @ steps
    length = steps.norm(dim=0)
    steps = steps[:, length > 1e-6 * length.max()]
    return size, first, outer, steps / steps.norm(dim=0)


def structure_ratios(images: torch.Tensor) -> torch.Tensor:
    """Each image's structure ratio (module docstring), float64 (B,).

    Parameters
    ----------
    images : torch.Tensor, shape (B, D, D), as stored (before any shift)
    """
    box = images.shape[-1]
    size, first, outer, steps = _bins(box, images.device)
    n = outer.shape[0]
    cut = images[:, first : first + n * size, first : first + n * size].float()
    cut = (cut - cut.mean(dim=(1, 2), keepdim=True))[:, None]  # centred: single precision holds
    means = torch.nn.functional.avg_pool2d(cut, size)[:, 0][:, outer].double()
    squares = torch.nn.functional.avg_pool2d(cut * cut, size)[:, 0][:, outer].double()
    # the best straight edge's step in the bins' means, their plane taken off (a linear
    # gradient, which the extraction's normalisation leaves and which costs the fit little,
    # round 2 session 70, is not structure), in units of a bin mean's variance under white noise
    strongest = (means @ steps).square().amax(dim=1)
    within = (squares - means.square()).mean(dim=1) * size**2 / (size**2 - 1)
    return strongest / (within / size**2).clamp_min(1e-300)


def structure_limits(ratios: torch.Tensor, kinds: np.ndarray | None = None) -> tuple | None:
    """Each kind's limit on the structure ratio from a sample's ``ratios`` (module docstring), or
    None where no sampled image exceeds its kind's: leave every image in.

    ``kinds`` (n,): each sampled image's kind of image (0 for all where None). Returns a tuple with
    one limit per kind up to the largest sampled (``inf`` for a kind the sample held too few of,
    under 8).
    """
    ratios = torch.as_tensor(ratios, dtype=torch.float64)
    kinds = np.zeros(len(ratios), dtype=np.int64) if kinds is None else np.asarray(kinds)
    limits, exceeded = [], False
    for kind in range(int(kinds.max()) + 1 if len(kinds) else 0):
        own = ratios[torch.from_numpy(kinds == kind)]
        if own.numel() < 8:
            limits.append(float("inf"))
            continue
        median = float(own.median())
        scatter = _MAD_TO_SD * float((own - median).abs().median())
        limit = max(STRUCTURE_FACTOR * median, median + STRUCTURE_SIGMAS * scatter)
        if float((own > TAIL_FACTOR * median).double().mean()) > TAIL_SHARE:
            limit = STRUCTURE_FACTOR * median  # structured images in numbers (module docstring)
        limits.append(limit)
        exceeded = exceeded or bool((own > limit).any())
    return tuple(limits) if exceeded else None
