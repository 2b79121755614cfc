"""The cross-validated resolution's result: its per-shell curves, the resolution they give, its
band, and how the resolution reads the curve (:func:`reading_curve`). How the curves are made is
:mod:`cryosplat.validation.crossval`, whose docstring states the estimate."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cryosplat.validation.fsc import resolution_at, shell_resolutions
from cryosplat.validation.shell_terms import BOOTSTRAP_BLOCKS

__all__ = ["CrossValidatedFSC", "reading_curve", "BOUND_ESTIMATE", "DEFINITION"]

DEFINITION = (
    "C = mean(FSC(M_A, D_B), FSC(M_B, D_A)) / sqrt(FSC(D_A, D_B)): each half model M against the "
    "other half's data D (direct Fourier inversion), normalised by the data's own half-map FSC "
    "(the half model's FSC against the truth); C_map = C * sqrt(2 / (1 + FSC(M_A, M_B))): the "
    "map's (the average of the half models) FSC against the truth; shell sums pooled over +-2 "
    "shells (boxes of 48 and more); in shells where FSC(D_A, D_B) is within 4 sigma of zero C is "
    "its lower bound max(mean FSC(M, D) - 2 sigma, 0) / sqrt(max(FSC(D_A, D_B), 0) + 2 sigma), "
    "or past the first such shell (the cut) C itself where FSC(D_A, D_B) pooled over +-6 shells "
    "is 4 sigma above zero; "
    "resolution where C_map < 0.5 (a value under 0.5 where the data's FSC cannot be read with "
    "the +-2 pool is no crossing where the next shell whose data FSC can be read has C_map >= "
    "0.5)."
)
# C_map at the last shell the data vouch for from which the resolution is flagged as a bound
# (the docstring of :mod:`cryosplat.validation.crossval`). Measured there in the spherical mask
# (round 2, session 12): 0.50-0.86 on 26 sets whose reported resolution lay from 13 % finer to
# 15 % coarser than the truth's crossing, and on the C1 spike of 1,500 particles (0.85, reported
# 89 % coarser); 0.96 on the preferred orientation (41 % coarser). After the automatic mask
# (``crossval.TIGHTER_MASK_ESTIMATE``) none of 40 sets is flagged.
BOUND_ESTIMATE = 0.9
BAND_PERCENTILES = (16.0, 84.0)


@dataclass
class CrossValidatedFSC:
    """Per-shell curves (D//2+1,) of the cross-validation, the resolution they give and its band.

    Attributes
    ----------
    model_vs_truth_estimate : np.ndarray
        ``C_map``: the estimated FSC of the map (average of the half models) against the truth.
    half_model_vs_truth_estimate : np.ndarray
        ``C``: the estimated FSC of one half model against the truth.
    resolution_samples_angstrom : np.ndarray, shape (n_bootstrap,)
        The resolution of each bootstrap resample of the Fourier samples (empty: no bootstrap).
    vouched_shells : int or None
        Shells ``0 .. vouched_shells − 1`` are those whose data FSC can be read up to the first
        that cannot (the cut); None: all.
    readable_shells : np.ndarray of bool, optional
        Every shell whose data FSC can be read: the estimate there, the lower bound ``C_low``
        (:mod:`cryosplat.validation.crossval`) in the others (past the cut some may be readable
        again: a dip in the truth's spectrum). Default: those before the cut.
    inconsistent_shell : int or None
        The first shell where the models agree with the other half's data more than those data's
        own FSC allows (:mod:`cryosplat.validation.crossval`, *Consistency*); the estimates are 0
        from there. None: consistent throughout.
    mask_gain : float
        What the estimates were divided by (:func:`mask_gain`; 1: none).
    """

    box: int
    pixel_size_angstrom: float
    data_fsc: np.ndarray
    model_a_vs_data_b: np.ndarray
    model_b_vs_data_a: np.ndarray
    model_vs_truth_estimate: np.ndarray
    half_model_vs_truth_estimate: np.ndarray = field(default_factory=lambda: np.zeros(0))
    resolution_samples_angstrom: np.ndarray = field(default_factory=lambda: np.zeros(0))
    vouched_shells: int | None = None
    inconsistent_shell: int | None = None
    readable_shells: np.ndarray | None = None
    mask_gain: float = 1.0

    def __post_init__(self) -> None:
        if self.readable_shells is None:
            n = self.model_vs_truth_estimate.shape[0]
            last = n if self.vouched_shells is None else self.vouched_shells
            self.readable_shells = np.arange(n) < last

    @property
    def inconsistent_angstrom(self) -> float | None:
        """Resolution (Å) of :attr:`inconsistent_shell`, or None."""
        shell = self.inconsistent_shell
        return None if shell is None else self.box * self.pixel_size_angstrom / shell

    @property
    def estimate_at_cut(self) -> float | None:
        """``C_map`` at the last shell the data vouch for, when they stop before Nyquist."""
        if self.last_vouched_angstrom is None:
            return None
        return float(self.model_vs_truth_estimate[self.vouched_shells - 1])

    @property
    def limited_by_data(self) -> bool:
        """True when ``C_map`` is still at least :data:`BOUND_ESTIMATE` at the last shell the
        data vouch for: the resolution is then where the data stop, a bound the map may pass by
        far, not a crossing."""
        cut = self.estimate_at_cut
        return cut is not None and cut >= BOUND_ESTIMATE

    @property
    def last_vouched_angstrom(self) -> float | None:
        """Resolution (Å) of the last shell the data vouch for; None when they vouch for all
        (or for no shell past the first)."""
        last = self.vouched_shells
        if last is None or last >= self.model_vs_truth_estimate.shape[0] or last < 2:
            return None
        return self.box * self.pixel_size_angstrom / (last - 1)

    @property
    def resolution_angstrom(self) -> float:
        """Where the estimated map-vs-truth correlation ``C_map`` falls below 0.5 (a lower bound
        under it that the next readable shell contradicts is no crossing: :func:`reading_curve`)."""
        curve = reading_curve(self.model_vs_truth_estimate, self.readable_shells)
        return resolution_at(curve, 0.5, self.box, self.pixel_size_angstrom)

    @property
    def resolution_percentiles_angstrom(self) -> tuple[float, float] | None:
        """The 16th and 84th percentiles of the bootstrap resolutions, or None."""
        samples = self.resolution_samples_angstrom[np.isfinite(self.resolution_samples_angstrom)]
        if samples.size < 2:
            return None
        lo, hi = np.percentile(samples, BAND_PERCENTILES)
        return float(lo), float(hi)

    @property
    def resolution_band_angstrom(self) -> tuple[float, float] | None:
        """A 68 % band: the resolution ± half the spread of its bootstrap percentiles, or None.

        The percentiles themselves can lie to one side of the resolution (each resample holds
        fewer distinct Fourier samples, so its curves are a little noisier than the estimate's:
        the demo's were 3.50-3.59 Å around 3.48 Å); their spread is the bootstrap's measure of
        the uncertainty, centred on the estimate.
        """
        percentiles = self.resolution_percentiles_angstrom
        if percentiles is None:
            return None
        half = 0.5 * (percentiles[1] - percentiles[0])
        return self.resolution_angstrom - half, self.resolution_angstrom + half

    @property
    def data_resolution_angstrom(self) -> float:
        """0.143 of the data's own half-map FSC (what direct inversion achieves)."""
        return resolution_at(self.data_fsc, 0.143, self.box, self.pixel_size_angstrom)

    def to_dict(self) -> dict:
        res = shell_resolutions(self.box, self.pixel_size_angstrom)
        band = self.resolution_band_angstrom
        return {
            "resolution_angstrom": self.resolution_angstrom,
            "definition": DEFINITION,
            "resolution_band_angstrom": None if band is None else list(band),
            "resolution_percentiles_angstrom": (
                None if band is None else list(self.resolution_percentiles_angstrom)
            ),
            "band_definition": (
                "the resolution plus and minus half the distance between the "
                f"{BAND_PERCENTILES[0]:g}th and {BAND_PERCENTILES[1]:g}th percentiles "
                "(resolution_percentiles_angstrom) of the resolution over "
                f"{self.resolution_samples_angstrom.size} Poisson-bootstrap resamples of the "
                f"Fourier samples of every shell (in {BOOTSTRAP_BLOCKS} random groups per shell)"
            ),
            "data_half_map_resolution_0143_angstrom": self.data_resolution_angstrom,
            "limited_by_data": self.limited_by_data,
            "last_vouched_shell_angstrom": self.last_vouched_angstrom,
            "data_readable_shells": [bool(x) for x in self.readable_shells],
            "inconsistent_from_angstrom": self.inconsistent_angstrom,
            "mask_gain": self.mask_gain,
            "resolution_per_shell_angstrom": [
                None if not np.isfinite(r) else float(r) for r in res
            ],
            "curves": {
                name: [float(x) for x in getattr(self, name)]
                for name in (
                    "data_fsc",
                    "model_a_vs_data_b",
                    "model_b_vs_data_a",
                    "model_vs_truth_estimate",
                    "half_model_vs_truth_estimate",
                )
            },
        }


def reading_curve(estimate: np.ndarray, readable: np.ndarray) -> np.ndarray:
    """``C_map`` as the resolution reads it: an unreadable shell's value (a lower bound, or the
    estimate with the data's FSC pooled wider) under 0.5 is no crossing where the next shell the
    data can read has an estimate of 0.5 or more (the bound says the map is at least that good,
    and the data say it is better; EMD-6824's spectrum
    dips at 18-20 Å, where the data go unreadable for a few shells and come back: 16.8 Å reported
    for a map at 9.6 Å, 9.65 Å so; ``benchmarks/RESULTS.md``, round 2, session 24). Such shells
    read as 0.5."""
    curve = np.asarray(estimate, dtype=np.float64).copy()
    later_readable = np.flatnonzero(readable)
    for shell in np.flatnonzero((curve < 0.5) & ~readable):
        after = later_readable[later_readable > shell]
        if after.size and curve[after[0]] >= 0.5:
            curve[shell] = 0.5
    return curve
