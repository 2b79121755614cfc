"""Cross-validated resolution of model maps: each half model against the other half's data.

Two Gaussian models fitted to independent halves are smooth, and their high-frequency content is a
deterministic extension of their shapes: the FSC between them stays high where neither is right (the
CryoSplat paper's FSCs never fall below 0.143). What the data can vouch for is measured against data:
with ``D_A``, ``D_B`` the direct Fourier inversions of the two half sets (independent noise) and
``M_A``, ``M_B`` the half models,

    ``C(s) = ½ [FSC(M_A, D_B) + FSC(M_B, D_A)] / sqrt(FSC(D_A, D_B))``

estimates, per shell, the correlation of a *half model* with the truth (``D_B`` = truth + noise
independent of ``M_A``; ``FSC(D_A, D_B)`` estimates the truth's share of ``D``'s power). The written
map is the average of the two half models; with ``M = a·T + E`` for each half (equal gain and error
power, errors correlated by ``ρ`` between the halves), ``FSC(M_A, M_B) = C² + ρ(1 − C²)`` and the
average correlates with the truth by

    ``C_map(s) = C(s) · sqrt(2 / (1 + FSC(M_A, M_B)))``

(independent errors, ``ρ = 0``: the familiar ``sqrt(2C²/(1 + C²))``; identical halves: ``C``). The
resolution is where ``C_map`` falls below 0.5, the criterion for a map against a reference.

Low signal: the shell sums are pooled over ``±POOL_SHELLS`` neighbouring shells (the FSC changes
slowly with frequency where the data are weak, and pooling divides the noise of each ratio by the
square root of the samples pooled); boxes with fewer than ``POOL_MIN_SHELLS`` shells are not
pooled (there a window of five shells would blur the curve itself). Where the pooled data FSC is
within noise of zero (4 σ of its pooled sample count) the normalisation can no longer be read:
in such a shell (the first of them is the *cut*) ``C`` is carried by a one-sided lower bound,

    ``C_low = max(½[FSC(M_A, D_B) + FSC(M_B, D_A)] − k σ, 0) / sqrt(max(FSC(D_A, D_B), 0) + k σ)``

with ``σ`` the FSC noise of the pooled shell and ``k =`` :data:`LOWER_BOUND_SIGMAS`: the models'
agreement with the other half's data taken as low, the data's own FSC as high, as their noise
allows. Where the data's FSC, the estimate's denominator, can be read from sums pooled over
``±``:data:`DATA_POOL_PAST_CUT` shells (fewer at boxes under 48, :func:`wide_pool_width`), such
a shell gets the estimate with that FSC instead of
the bound (its noise is what makes the shell unreadable, and it mostly changes slowly); for
:func:`reading_curve` it stays unreadable, since where the truth's spectrum dips the wide pool
reads the data's FSC from the shells around the dip (round 2, session 25: on 29 sets the
reported resolution's mean error against the truth's crossing 5.6 → 4.7 %, 3,000 8ZPM particles
with preferred views +22.7 → +4.2 %; read as a crossing, EMD-6824's dip had put one set at
+78 %). Models that agree with each other but not with the data get 0 there; models that match
data too noisy to normalise keep a resolution past the cut, but never more than the bound
vouches for (round 2, session 13: the symmetric spike in C1 from 1,500 particles, 8.68 → 6.33 Å
for a map at 5.36 Å; on 22 other sets the mean error against the truth's crossing 3.7 → 3.2 %).
Where the data hold little at the model's resolution the bound cannot vouch for it (1,500 8ZPM
particles: 6.91 Å for a map at 3.62 Å, with the estimate 0.73 at the cut, under the automatic
mask's threshold below). Without the bound the resolution was read at the cut itself on most
sets (28 of 38 measured in round 2, session 12, with ``C_map`` 0.50-0.96 at the last shell
vouched for).
The data can be read again past the cut where the truth's spectrum dips and recovers (EMD-6824
at 18-20 Å): those shells get the estimate, and a bound under 0.5 before them is no crossing when
the first of them has ``C_map`` of 0.5 or more (:func:`reading_curve`; an unseen EMD-6824 set
with two view clusters: 16.8 Å reported for a map at 9.6 Å, now 9.65 Å; round 2, session 24).
Consistency: a half model independent of the other half's noise correlates with that half's data
by ``C · sqrt(FSC(D_A, D_B))``, ``|C| ≤ 1``. From the first shell where ``C_low > 1`` the halves
share something with the other half's data that those data do not share with their own other
half (noise carried across by a weight made from both halves, on data too noisy for the models to
be more than fits of their own noise): nothing is vouched for from there
(:attr:`CrossValidatedFSC.inconsistent_shell`; ``benchmarks/RESULTS.md``, round 2, session 14).
Since round 2, session 83 the report estimates on the map's halves before that weight in every
run: short of inconsistency the weight still raised the estimate 0.09-0.14 over the halves' true
correlation with the truth (the 70S ribosome at SNR 0.03, 21-16 Å; reported 24 % finer than the
map's crossing, 8.5 % so).
Where ``C_map`` is still high there (:data:`TIGHTER_MASK_ESTIMATE`) the report estimates again
within the automatic mask, where the solvent's noise no longer hides what the data hold, and
keeps the finer (the missing directions of a preferred orientation filled in by the model: 22.9 Å
in the sphere, 16.6 Å so, 16.2 Å against the truth; ``benchmarks/RESULTS.md``). A tighter mask:
where the truth holds density outside the mask (a noisy solvent, a detergent belt) the masked
estimate lies above the sphere's by ``sqrt(1 + r)``, ``r`` the truth's power outside the mask
over inside, which the data cannot read past the cut; the shells before it read the ratio of
the two estimates itself, and the masked estimate is divided by it (:func:`mask_gain`, at least
1) to be read on the sphere's scale. A tighter mask also makes each shell's FSC noisier: masking
in real space correlates neighbouring Fourier samples, and a shell holds about the mask's kept
share of the box (:func:`~cryosplat.validation.masks.effective_volume_fraction`) to the power 2/3
as many independent ones; the cut and the bound take the masked FSC's noise as the sphere's times
:func:`tighter_mask_noise_scale`. Without it (round 2, session 28), with 95 % of the views within
15° of one axis, a data FSC of 0.04-0.08 under the automatic mask past the sphere's cut read as
signal: 12.45 Å reported for a map at 18.96 Å (the sphere's own estimate 18.17 Å), with it
15.44 Å; over 39 sets the mean error against the truth's crossing 5.5 → 5.2 %, no other set
moved by more than 5.6 points (EMD-1832, −0.1 → +5.5 %). Past its own cut a
tighter mask's reading takes the lower bound in every shell it cannot read (``pool_past_cut``
False): the wide pool of the data's FSC was calibrated on the sphere, and under the mask, with
those views, it read ``C_map`` 0.64-0.82 at shells 19-22 where the map's FSC with the truth within
the mask is 0.50-0.54 (17.97 Å reported for the map at 18.96 Å, from 15.44 Å; over the 39 sets
the mean error 5.2 → 4.4 %, no set worse by more than 0.9 points; round 2, session 29). Where the
data still stop with ``C_map`` near 1 (:data:`BOUND_ESTIMATE`) the resolution is flagged as a bound
the map may pass by far (:attr:`CrossValidatedFSC.limited_by_data`).

Unsampled frequencies: where no view samples part of a shell (a missing cone or wedge: the
summed CTF² is zero there, :mod:`cryosplat.validation.sampling`) the data are zero there too, and
``C`` is the correlation over the sampled part only. Over the whole shell the map correlates with
the truth by ``C · sqrt(f)``, ``f`` the sampled share, where it correlates with nothing in the
rest and the truth's power is even over directions; every estimate is scaled so where the data
say ``f`` (:class:`~cryosplat.validation.shell_terms.DataSpectra`): a lower bound, as the map's
fill-in of the rest (the models', :mod:`cryosplat.validation.data_blend`) may hold much of the
truth. With every view within 10° of one axis (``f`` 0.16-0.47) the report read 19.41 Å for a map
whose FSC with the truth crossed 0.5 at 160 Å; with the models' fill-in kept that map crosses at
33 Å and the report reads 367 Å (the sampled part alone vouches for 19.4 Å: no reading of the data
can say how right the fill-in is). With views within 30°, 45°, 50°, 60° and 70° of one axis the
reported resolution lies −11 to +7 % of the truth's crossing (round 2, session 33); sets whose
views reach every direction do not move.

Uncertainty: the curves are sums over the Fourier samples of each shell; resampling those samples
(a Poisson bootstrap over random groups of them, Friedel mates together) and reading the resolution
of each resample gives a band (:attr:`CrossValidatedFSC.resolution_band_angstrom`).

The result, and how its resolution reads the curve: :mod:`cryosplat.validation.crossval_result`.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.fourier import squared_radius
from cryosplat.validation.crossval_result import (
    BOUND_ESTIMATE,
    CrossValidatedFSC,
    reading_curve,
)
from cryosplat.validation.fsc import resolution_at
from cryosplat.validation.masks import effective_volume_fraction
from cryosplat.validation.shell_terms import (
    BOOTSTRAP_BLOCKS,
    DataSpectra,
    ShellTerms,
    pool_shells,
)

__all__ = [
    "BOUND_ESTIMATE",
    "CrossValidatedFSC",
    "reading_curve",
    "cross_validated_fsc",
    "cross_validate",
    "data_half_maps",
    "mask_gain",
    "tighter_mask_noise_scale",
    "DataSpectra",
    "pool_shells",
    "shell_counts",
]

POOL_SHELLS = 2  # shell sums pooled over this many neighbours on each side
POOL_MIN_SHELLS = 24  # boxes with fewer shells than this are not pooled (5 shells would be 20 %)
# C_map at the last shell the data vouch for (in the spherical mask) from which the report
# estimates again within the automatic mask, where the solvent's noise does not hide what the data
# hold, and keeps the finer (``cryosplat.reconstruct.half_map_report.evaluate_half_maps``). Measured
# (round 2, session 12) on the six of 40 sets at 0.80 or more there, against the truth's
# crossing: +40.9 → +2.1 % (preferred orientation), +89 → +65 % (the C1 spike), +11.4 → +4.5 % and
# +8.3 → +1.4 % (preferred views), +4.7 % and +3.5 % unchanged; two sets at 0.35-0.47 there would
# have gone 17-19 % optimistic. Measured again with the lower bound past the cut (round 2, session
# 13, 28 sets, `/work/tools/s13/thr.py`): 0.7 would rescue 1,500 8ZPM particles (+91 → −2 %) and
# lower the mean |error| 7.1 → 4.8 %, but it takes beta-galactosidase sets at 0.71-0.76 into the
# mask, where a truth with density in its solvent makes the estimate optimistic (+3.0 → −10.0 %,
# +1.6 → −14.6 %): the masked FSC is the sphere's times sqrt(1 + r), r the truth's power outside
# the mask over inside (0.1-0.5 there), which the data cannot measure at those shells. Kept at 0.8
# then: a pessimistic resolution on a few small atom sets rather than more real maps near −15 %.
# 0.6 since round 2, session 26, with the masked estimate divided by :func:`mask_gain` (that
# ratio read where the sphere's data still vouch: 1.13-1.17 on beta-galactosidase's noisy
# solvent, 1.00-1.06 elsewhere): on 60 runs (`/work/tools/s26/thr_off.py`) mean |error| 4.7 →
# 4.1 %, outside ±15 % 2 → 0 (map-like 8ZPM +24.5 → −2.1 %, map-like spike +15.5 → −5.4 %), the
# most optimistic set the mask takes −8.7 % (EMD-5625 with ribosome noise); without the gain
# beta-galactosidase sets to −9.0 %. At 0.7 as good on average, but the map-like 8ZPM set's
# estimate at the cut is 0.698-0.702 over two seeds: +23.6 % in one.
TIGHTER_MASK_ESTIMATE = 0.6
# Standard errors by which, past the cut, the models' FSC with the other half's data is lowered
# and the data's own FSC raised (``C_low``, module docstring): a one-sided bound of about 98 % on
# each, the conventional two-sigma level, not fitted to a set. Measured (round 2, session 13,
# 28 sets): mean |error| against the truth's crossing 9.9 → 7.1 %, the C1 spike +62 → +18 %, no
# set worse by more than 0.7 % (the nearest to 15 % −14.1 → −14.8 %); with 3 the spike +53 %.
LOWER_BOUND_SIGMAS = 2.0
CUT_SIGMAS = 4.0  # the data's FSC within this many standard errors of zero: the cut
# Shells pooled on each side for the data's own FSC in the shells past the cut that it cannot
# be read in with the usual pool (module docstring). Six, as round 2 session 11 pooled every sum
# past the cut (optimistic by 10-23 % on real maps: the models' curves pooled so wide lean on
# the stronger shells); four and eight gave the same offline (session 25).
DATA_POOL_PAST_CUT = 6
MASK_GAIN_SHELLS = 5  # shells before the sphere's cut whose ratio calibrates a tighter mask


def pool_width(box: int) -> int:
    """Shells pooled on each side for a box: :data:`POOL_SHELLS`, or 0 for small boxes."""
    return POOL_SHELLS if box // 2 >= POOL_MIN_SHELLS else 0


def wide_pool_width(box: int) -> int:
    """Shells pooled on each side for the data's FSC past the cut: :data:`DATA_POOL_PAST_CUT`,
    in proportion for boxes of fewer than :data:`POOL_MIN_SHELLS` shells (at least 1).

    Six shells were chosen on boxes of 48-128 (24-64 shells); at a box of 20 they span the whole
    curve and read a shell past the cut with the data's FSC of the strong first shells. In
    proportion (round 2, session 29): EMD-3197 at its box of 20 reported +15.7 → +13.5 % against
    the truth's crossing (seed 1: +16.5 → +14.6 %), EMD-1832 at box 40 +9.1 → +8.0 % (+8.1 →
    +7.1 %); boxes of 48 and more keep six.
    """
    shells = box // 2
    return max(1, DATA_POOL_PAST_CUT * min(shells, POOL_MIN_SHELLS) // POOL_MIN_SHELLS)


@lru_cache(maxsize=4)
def shell_counts(box: int) -> np.ndarray:
    """Voxels per shell 0..D//2 of the full centred D³ transform (read only: made once a box)."""
    shells = torch.round(squared_radius(box, 3, dtype=torch.float64).sqrt()).long()
    counts = np.bincount(shells.reshape(-1).numpy(), minlength=box // 2 + 1)[: box // 2 + 1]
    counts.setflags(write=False)
    return counts


def _fsc_sigma(box: int, pool: int = 0) -> np.ndarray:
    """FSC noise (one standard error) per shell: ``1 / sqrt(n/2)`` with ``n`` voxels in the
    shell (in the ``±pool`` shells pooled around it).

    (The first shells hold too few voxels for this to mean anything; they are always kept.)
    """
    counts = pool_shells(shell_counts(box).astype(np.float64), pool)
    return 1.0 / np.sqrt(np.maximum(counts, 2.0) / 2.0)


def _readable_shells(data_fsc: np.ndarray, floor: np.ndarray) -> np.ndarray:
    """The shells (bool) whose data FSC can be read: above ``min(floor, 0.3)`` (shell 0 always)."""
    readable = data_fsc > np.minimum(floor, 0.3)
    readable[0] = True
    return readable


def _vouched_shells(readable: np.ndarray) -> int:
    """The number of leading shells the data vouch for: up to the first (past shell 0) whose
    data FSC is within noise of zero (the cut)."""
    invalid = np.flatnonzero(~readable[1:])
    return int(invalid[0]) + 1 if invalid.size else readable.shape[0]


def _estimate(
    data_fsc: np.ndarray,
    cross_a: np.ndarray,
    cross_b: np.ndarray,
    readable: np.ndarray,
    sigma: np.ndarray,
    data_sigma: np.ndarray | None = None,
) -> tuple[np.ndarray, int | None]:
    """``C`` per shell from three FSC curves: the estimate in the ``readable`` shells, whose data
    FSC can be read, the lower bound ``C_low`` in the others (``sigma``: FSC noise per shell of
    the models' curves, ``data_sigma`` of the data's, default the same), 0 from the first
    inconsistent shell on (past shell 0, ``C_low > 1``); and that shell (or None)."""
    valid = readable
    cross = 0.5 * (cross_a + cross_b)
    data_sigma = sigma if data_sigma is None else data_sigma
    root = np.sqrt(np.where(valid & (data_fsc > 0), data_fsc, 1.0))
    k = LOWER_BOUND_SIGMAS
    ratio = (cross - k * sigma) / np.sqrt(np.maximum(data_fsc, 0.0) + k * data_sigma)
    estimate = np.clip(np.where(valid, cross / root, np.maximum(ratio, 0.0)), -1.0, 1.0)
    estimate[0] = 1.0 if estimate[0] > 0 else estimate[0]
    bad = np.flatnonzero(ratio[1:] > 1.0)
    inconsistent = int(bad[0]) + 1 if bad.size else None
    if inconsistent is not None:
        estimate[inconsistent:] = 0.0
    return estimate, inconsistent


def _map_estimate(half: np.ndarray, models_fsc: np.ndarray) -> np.ndarray:
    """``C_map = C · sqrt(2 / (1 + FSC(M_A, M_B)))`` (module docstring), within [-1, 1]."""
    agreement = np.clip(models_fsc, 0.0, 1.0)
    return np.clip(half * np.sqrt(2.0 / (1.0 + agreement)), -1.0, 1.0)


def _estimates(
    terms: ShellTerms,
    sigma: np.ndarray,
    weights=None,
    gain: float = 1.0,
    noise_scale: float = 1.0,
    pool_past_cut: bool = True,
    sampled_share: np.ndarray | None = None,
):
    """``(C_map, C, readable shells, first inconsistent shell)`` from the pooled shell sums
    (``sigma``: the FSC noise of each pooled shell; the cut at ``CUT_SIGMAS`` of it). Past the
    cut, with ``pool_past_cut``, a shell the data cannot vouch for is estimated with their FSC
    pooled over :func:`wide_pool_width` shells where that can be read (module docstring), whose
    noise is taken ``noise_scale`` times the unmasked one as ``sigma`` is; it stays unreadable
    for :func:`reading_curve`. ``C`` is divided by ``gain`` (:func:`mask_gain`) and times the
    square root of ``sampled_share`` (module docstring, *Unsampled frequencies*)."""
    box = 2 * (terms.n_shells - 1)
    data_fsc, cross_a, cross_b, models = terms.curves(weights, pool_width(box))
    readable = _readable_shells(data_fsc, CUT_SIGMAS * sigma)
    estimated, data_sigma = readable, sigma
    past = np.arange(terms.n_shells) >= _vouched_shells(readable)
    if pool_past_cut and past.any():
        wide_pool = wide_pool_width(box)
        (wide,) = terms.curves(weights, wide_pool, count=1)  # the data's FSC alone
        wide_sigma = _fsc_sigma(box, wide_pool) * noise_scale
        use = past & ~readable & _readable_shells(wide, CUT_SIGMAS * wide_sigma)
        data_fsc = np.where(use, wide, data_fsc)
        data_sigma = np.where(use, wide_sigma, sigma)
        estimated = readable | use
    half, inconsistent = _estimate(data_fsc, cross_a, cross_b, estimated, sigma, data_sigma)
    half = half / gain
    if sampled_share is not None:
        half = half * np.sqrt(sampled_share)
    return _map_estimate(half, models), half, readable, inconsistent


def cross_validated_fsc(
    model_a: np.ndarray,
    model_b: np.ndarray,
    data_a: np.ndarray,
    data_b: np.ndarray,
    mask: np.ndarray,
    pixel_size_angstrom: float,
    n_bootstrap: int = 0,
    seed: int = 0,
) -> CrossValidatedFSC:
    """Estimate how well half models match the truth from the half sets' own data.

    Parameters
    ----------
    model_a, model_b : (D, D, D) maps of the half models
    data_a, data_b : (D, D, D) direct Fourier inversions of the same half sets
    mask : (D, D, D) soft mask applied to all four
        All five numpy arrays, or all five tensors on one device (the transforms are made there).
    pixel_size_angstrom : float
    n_bootstrap : int
        Poisson-bootstrap resamples of the Fourier samples for the resolution band (0: none).
    seed : int
        Seed of the resampling.

    Returns
    -------
    CrossValidatedFSC

    To compare several pairs of half models with the same data and mask, make the data's part
    once (:class:`~cryosplat.validation.shell_terms.DataSpectra`) and call
    :func:`cross_validate`.
    """
    if n_bootstrap < 0:  # before the data's transforms
        raise ValueError(f"n_bootstrap must be non-negative, got {n_bootstrap}")
    data = DataSpectra(data_a, data_b, mask, BOOTSTRAP_BLOCKS, seed)
    return cross_validate(data, model_a, model_b, pixel_size_angstrom, n_bootstrap)


def cross_validate(
    data: DataSpectra,
    model_a: np.ndarray | torch.Tensor,
    model_b: np.ndarray | torch.Tensor,
    pixel_size_angstrom: float,
    n_bootstrap: int = 0,
    gain: float = 1.0,
    reference: CrossValidatedFSC | None = None,
    noise_scale: float = 1.0,
    pool_past_cut: bool = True,
) -> CrossValidatedFSC:
    """:func:`cross_validated_fsc` of two half models against data whose spectra are made
    (``data``, with its mask and seed); every estimate divided by ``gain`` (a tighter mask's
    :func:`mask_gain`, to read it on the sphere's scale), or, given the sphere's estimate of the
    same halves as ``reference``, by the gain read against it. ``noise_scale``: the FSC noise of
    a shell under this mask over the noise the cut and the bound are calibrated on (the soft
    sphere's: 1; a tighter mask's, :func:`tighter_mask_noise_scale`). ``pool_past_cut``: past
    the cut, estimate with the data's FSC pooled over :func:`wide_pool_width` shells where that
    can be read (the sphere's reading); False: the lower bound in every unreadable shell (a
    tighter mask's reading, module docstring). Estimates are scaled by the square root of the
    data's ``sampled_share`` where they have one (module docstring, *Unsampled frequencies*)."""
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be non-negative, got {n_bootstrap}")
    if not gain >= 1.0:
        raise ValueError(f"gain must be at least 1, got {gain}")
    if not noise_scale >= 1.0:
        raise ValueError(f"noise_scale must be at least 1, got {noise_scale}")
    if reference is not None and gain != 1.0:
        raise ValueError("give either a gain or a reference estimate to read it from, not both")
    box = data.box
    terms = data.shell_terms(model_a, model_b)
    data_fsc, cross_a, cross_b, _ = terms.curves()
    sigma = _fsc_sigma(box, pool=pool_width(box)) * noise_scale
    reading = {
        "noise_scale": noise_scale,
        "pool_past_cut": pool_past_cut,
        "sampled_share": data.sampled_share,
    }
    if reference is not None:
        gain = _gain(reference, _estimates(terms, sigma, **reading)[0])
    estimate, half, readable, inconsistent = _estimates(terms, sigma, gain=gain, **reading)
    rng = np.random.default_rng(data.seed + 1)
    shape = (terms.n_shells, terms.blocks)
    samples = np.array(
        [
            resolution_at(
                reading_curve(
                    *_estimates(terms, sigma, rng.poisson(1.0, shape), gain, **reading)[::2]
                ),
                0.5,
                box,
                pixel_size_angstrom,
            )
            for _ in range(n_bootstrap)
        ]
    )
    return CrossValidatedFSC(
        box,
        float(pixel_size_angstrom),
        data_fsc,
        cross_a,
        cross_b,
        estimate,
        half,
        samples.reshape(-1),
        _vouched_shells(readable),
        inconsistent,
        readable,
        gain,
    )


def mask_gain(sphere: CrossValidatedFSC, tight: CrossValidatedFSC) -> float:
    """How much higher a tighter mask's ``C_map`` lies than the sphere's where the sphere's data
    still vouch for it: the ratio of their sums over the last :data:`MASK_GAIN_SHELLS` shells
    before the sphere's cut, at least 1 (1 when the data vouch for every shell).

    Where the truth holds density outside the mask (solvent, a detergent belt, a noisy map) the
    masked estimate exceeds the sphere's by ``sqrt(1 + r)``, ``r`` the truth's power outside the
    mask over inside, which the data cannot read past the cut; the shells before it can read the
    ratio itself, and it changes slowly (module docstring, *A tighter mask*; the truth's own ratio
    within 0.05 of it in ``tests/test_validation.py``).
    """
    return _gain(sphere, tight.model_vs_truth_estimate)


def _gain(sphere: CrossValidatedFSC, tight_estimate: np.ndarray) -> float:
    """:func:`mask_gain` from the tighter mask's ``C_map`` curve (before any gain)."""
    cut = sphere.vouched_shells
    if cut is None or cut < 2:
        return 1.0
    shells = slice(max(1, cut - MASK_GAIN_SHELLS), cut)
    inner = float(np.sum(sphere.model_vs_truth_estimate[shells]))
    outer = float(np.sum(tight_estimate[shells]))
    return max(1.0, outer / inner) if inner > 0 else 1.0


def tighter_mask_noise_scale(sphere: ArrayLike, tight: ArrayLike) -> float:
    """How much more a shell's FSC spreads under the ``tight`` mask than under the ``sphere``
    the cut and the bound are calibrated on: the ratio of their
    :func:`~cryosplat.validation.masks.effective_volume_fraction` to the power 1/3, at least 1
    (module docstring, *A tighter mask*)."""
    ratio = effective_volume_fraction(sphere) / effective_volume_fraction(tight)
    return max(1.0, ratio) ** (1.0 / 3.0)


def data_half_maps(statistics, sign: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Direct Fourier inversions ``D_A, D_B`` of two half sets' statistics (``FourierStatistics``).

    ``sign = -1`` for images that hold protein dark.
    """
    return tuple(sign * s.reconstruct_wiener().cpu().numpy() for s in statistics)
