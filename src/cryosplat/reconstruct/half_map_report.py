"""The gold-standard report of two half maps: their FSCs in a soft sphere and an automatic mask (and
a mask the user gave), the cross-validated resolution of the map made of them, and what the data
limit of it says."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.validation.crossval import CrossValidatedFSC
from cryosplat.validation.crossval_result import reading_curve
from cryosplat.validation.fsc import (
    FSCResult,
    half_map_equivalent,
    masked_fscs,
    shell_frequencies,
)
from cryosplat.validation.mask_choice import SPHERE_TEXT, DataUnderMasks, read_in_masks
from cryosplat.validation.masks import auto_mask, spherical_mask
from cryosplat.validation.user_mask import FSCMask

__all__ = [
    "CrossValidationInputs",
    "HalfMapReport",
    "evaluate_half_maps",
    "format_resolution",
    "data_limit_warnings",
]

N_BOOTSTRAP = 100  # resamples of the Fourier samples for the resolution band

log = logging.getLogger("cryosplat")


@dataclass(frozen=True)
class CrossValidationInputs:
    """What the cross-validated resolution is read from (:mod:`cryosplat.validation.crossval`).

    Attributes
    ----------
    data_maps : (D_A, D_B), each (D, D, D)
        Direct Fourier inversions of the two half sets: each half of the map is read against the
        other half's.
    map_halves : (A', B'), optional
        The two halves as they enter the written map (whose mean is the map): the
        cross-validated resolution is theirs, the map's. None: the half models'.
    unweighted_halves : (A, B), optional
        ``map_halves`` before a weight made from both of them, which the estimate is read on
        where given: the weight carries each half's noise into the other, and the weighted
        halves agree with the other half's data more than the map agrees with the truth (the
        70S ribosome at SNR 0.03: the halves' estimated correlation with the truth 0.09-0.14
        over their true one at 21-16 Å, the report 24 % finer than the map's crossing; on the
        halves before the weight 0.00-0.03 and 8.5 %; round 2, session 83).
    sampled_share : array (D//2 + 1,), optional
        Per shell, the share of its frequencies the data sample at all
        (:mod:`cryosplat.validation.sampling`): the cross-validated estimates are scaled by its
        square root. None: all.
    """

    data_maps: tuple[np.ndarray, np.ndarray]
    map_halves: tuple[np.ndarray, np.ndarray] | None = None
    unweighted_halves: tuple[np.ndarray, np.ndarray] | None = None
    sampled_share: np.ndarray | None = None


@dataclass
class HalfMapReport:
    """Gold-standard FSC of the two half maps with a spherical and an automatic mask, and the
    cross-validation of the map's halves against the other half's data
    (:mod:`cryosplat.validation.crossval`).
    """

    spherical: FSCResult
    automatic: FSCResult
    cross_validated: CrossValidatedFSC | None = None
    warnings: list[str] = field(default_factory=list)
    cv_mask: str = SPHERE_TEXT
    # Whether the estimate was read on the map's halves before its local weight.
    before_weight: bool = False
    # The soft sphere's own reading when the automatic mask's or the user's was kept (None
    # otherwise): where the truth holds more outside the mask than any shell of the data can
    # read, the two differ (benchmarks/RESULTS.md, round 2, session 35).
    sphere_reading: CrossValidatedFSC | None = None
    # The half models' FSC within the mask the user gave, and its name (None without one).
    user_mask: FSCResult | None = None
    user_mask_name: str | None = None

    @property
    def resolution_angstrom(self) -> float:
        """The headline resolution.

        The cross-validated resolution when the half sets' data maps are known: the model-vs-model
        FSC of smooth Gaussian maps is optimistic. Otherwise 0.143 of the phase-randomisation
        corrected model FSC with the spherical mask.
        """
        if self.cross_validated is not None:
            return self.cross_validated.resolution_angstrom
        return self.spherical.resolution("corrected")

    @property
    def headline(self) -> str:
        if self.cross_validated is not None:
            bound = (
                "a bound set by the data, the map may be finer (see the warnings); "
                if self.cross_validated.limited_by_data
                else ""
            )
            halves = (
                "half model, blended with its data, before the map's local weight, which is "
                "made from both halves"
                if self.before_weight
                else "half model, blended with its data and weighted as in the map"
            )
            return bound + (
                f"cross-validated: each half of the written map ({halves}) against the other "
                "half's data, normalised by the data's half-map FSC and carried to the map by the "
                f"halves' agreement, {self.cv_mask}, read at 0.5: an estimate of the map's FSC "
                "against the truth at 0.5"
            )
        return "corrected FSC of the half maps, soft spherical mask, threshold 0.143"

    @property
    def band_angstrom(self) -> tuple[float, float] | None:
        """The 68 % bootstrap band of the cross-validated resolution, when there is one."""
        return (
            None if self.cross_validated is None else self.cross_validated.resolution_band_angstrom
        )

    def deposition_curve(self) -> tuple[np.ndarray, np.ndarray, str]:
        """The curve the headline resolution is read from, as a half-map FSC read at 0.143 (the
        EMDB's): ``(frequency (1/Å) per shell, FSC, title)``. Cross-validated:
        :func:`~cryosplat.validation.fsc.half_map_equivalent` of ``C_map`` as the resolution
        reads it (its 0.143 crossing is the 0.5 crossing of ``C_map`` to within the linear
        interpolation between shells); else the half models' corrected FSC."""
        res = self.spherical
        frequency = shell_frequencies(res.box, res.pixel_size_angstrom)
        where = format_resolution(self.resolution_angstrom, explain=False)
        cv = self.cross_validated
        if cv is None:
            title = f"cryosplat: corrected FSC of the half models, soft spherical mask ({where})"
            return frequency, np.asarray(res.corrected, dtype=np.float64), title
        curve = half_map_equivalent(reading_curve(cv.model_vs_truth_estimate, cv.readable_shells))
        title = (
            "cryosplat cross-validated FSC: the map's estimated FSC against the truth C_map as a "
            f"half-map FSC C_map^2/(2 - C_map^2), read at 0.143 ({where}; {self.cv_mask})"
        )
        return frequency, curve, title

    def to_dict(self) -> dict:
        band = self.band_angstrom
        out = {
            "resolution_angstrom": self.resolution_angstrom,
            "resolution_band_angstrom": None if band is None else list(band),
            "headline": self.headline,
            "warnings": list(self.warnings),
            "model_half_maps": {
                "note": "FSC between the two half models; optimistic for smooth models",
                "spherical_mask": self.spherical.to_dict(),
                "automatic_mask": self.automatic.to_dict(),
            },
        }
        if self.user_mask is not None:
            out["model_half_maps"]["given_mask"] = {
                **self.user_mask.to_dict(),
                "file": self.user_mask_name,
            }
        if self.cross_validated is not None:
            out["cross_validated"] = {**self.cross_validated.to_dict(), "mask": self.cv_mask}
            out["cross_validated"]["halves"] = (
                "before the map's local weight" if self.before_weight else "as they enter the map"
            )
            if self.sphere_reading is not None:
                out["cross_validated"]["soft_spherical_mask_reading"] = {
                    "resolution_angstrom": self.sphere_reading.resolution_angstrom,
                    "last_vouched_shell_angstrom": self.sphere_reading.last_vouched_angstrom,
                    "estimate_at_cut": self.sphere_reading.estimate_at_cut,
                }
        return out


def evaluate_half_maps(
    half_a: np.ndarray,
    half_b: np.ndarray,
    pixel_size_angstrom: float,
    soft_width_px: float = 6.0,
    crossval: CrossValidationInputs | None = None,
    device: torch.device | str = "cpu",
    sphere: np.ndarray | None = None,
    user_mask: FSCMask | None = None,
) -> tuple[HalfMapReport, np.ndarray]:
    """FSC of two half maps with a soft spherical mask and an automatic soft mask (and the user's).

    Parameters
    ----------
    half_a, half_b : (D, D, D) half-model maps
    pixel_size_angstrom : float
    soft_width_px : float
    crossval : CrossValidationInputs, optional
        The half sets' direct inversions (and the map's halves), for the cross-validated
        resolution. None: none, the headline is the half models' corrected FSC.
    device : torch device
        Where the FSCs are computed (double precision; a GPU takes seconds off a box-256 run).
    sphere : (D, D, D), optional
        The soft spherical mask of ``soft_width_px``, when the caller has made it already (it
        takes ~1 s at box 256).
    user_mask : FSCMask, optional
        A mask the user gave (:mod:`cryosplat.validation.user_mask`): the half models' FSC within
        it too, and the cross-validated resolution read within it
        (:func:`~cryosplat.validation.mask_choice.read_in_masks`).

    Returns the report and the automatic mask.
    """
    box = half_a.shape[0]
    if sphere is None:
        sphere = spherical_mask(box, soft_width_px=soft_width_px)
    amask = auto_mask(0.5 * (half_a + half_b), pixel_size_angstrom, soft_width_px=soft_width_px)

    def on_device(array: ArrayLike) -> torch.Tensor:  # the FSCs run where their inputs are
        return torch.as_tensor(np.asarray(array), dtype=torch.float64).to(device)

    a, b = on_device(half_a), on_device(half_b)
    masks = [on_device(sphere), on_device(amask)]
    user = None if user_mask is None else on_device(user_mask.volume)
    name = "" if user_mask is None else user_mask.name
    cross, cv_mask, before_weight, sphere_reading = None, SPHERE_TEXT, False, None
    if crossval is not None:
        data_maps = [on_device(d) for d in crossval.data_maps]
        data = DataUnderMasks(data_maps, *masks, crossval.sampled_share, user, name)
        # before the map's weight where given (CrossValidationInputs.unweighted_halves)
        before_weight = crossval.unweighted_halves is not None
        chosen = crossval.unweighted_halves if before_weight else crossval.map_halves
        halves = [on_device(h) for h in ((a, b) if chosen is None else chosen)]
        cross, cv_mask, sphere_reading = _cross_validate(halves, data, pixel_size_angstrom)
        del halves, data, data_maps
    fscs = masked_fscs(a, b, masks if user is None else [*masks, user], pixel_size_angstrom)
    report = HalfMapReport(
        *fscs[:2],
        cross,
        cv_mask=cv_mask,
        before_weight=before_weight,
        sphere_reading=sphere_reading,
        user_mask=fscs[2] if user is not None else None,
        user_mask_name=None if user_mask is None else user_mask.name,
    )
    return report, amask


def _cross_validate(halves, data: DataUnderMasks, pixel_size_angstrom: float):
    """The cross-validated FSC in the soft sphere, within the automatic mask or within the
    user's (:func:`~cryosplat.validation.mask_choice.read_in_masks`), the mask's description,
    and the sphere's own reading where another was kept (else None); a reading other than the
    sphere's is logged."""
    reading = read_in_masks(halves, data, pixel_size_angstrom, N_BOOTSTRAP)
    if data.has_user_mask:
        log.info(
            "resolution: read within the given mask %s: %s (its FSCs' noise taken %.2f "
            "times the sphere's; the lower bound past its own cut); %s in the soft "
            "spherical mask",
            data.user_name,
            format_resolution(reading.chosen.resolution_angstrom, explain=False),
            reading.noise_scale,
            format_resolution(reading.sphere.resolution_angstrom, explain=False),
        )
    elif reading.in_automatic_mask:
        sphere, tight = reading.sphere, reading.chosen
        log.info(
            "resolution: in the spherical mask the data's own FSC can be read to %.2f Å, the "
            "estimate still %.2f there (%s with the lower bound past it); within the "
            "automatic mask they vouch to %s (its estimate divided by %.3f, how much higher it "
            "lies than the sphere's where both are read; its FSCs' noise taken %.2f times the "
            "sphere's, the masks' kept shares of the box to the power 1/3; the lower bound past "
            "its own cut)",
            sphere.last_vouched_angstrom,
            sphere.estimate_at_cut,
            format_resolution(sphere.resolution_angstrom, explain=False),
            format_resolution(tight.resolution_angstrom, explain=False),
            tight.mask_gain,
            reading.noise_scale,
        )
    return reading.chosen, reading.mask, reading.sphere if reading.beyond_sphere else None


def data_limit_warnings(report: HalfMapReport) -> list[str]:
    """Warnings when the cross-validated resolution is where the data stop, not a crossing, and
    when the data contradict it."""
    cv = report.cross_validated
    if cv is None:
        return []
    out = []
    if cv.inconsistent_shell is not None:
        out.append(
            "the half maps agree with the other half's data more than those data agree with "
            f"their own other half from {cv.inconsistent_angstrom:.2f} Å: nothing is vouched for "
            "from there. Check that the two half sets hold different particles (no image in "
            "both) and were processed independently."
        )
    if not cv.limited_by_data:
        return out
    return [
        *out,
        f"the resolution {format_resolution(cv.resolution_angstrom, explain=False)} is a bound, "
        "not a crossing: the map's estimated FSC with the truth is still "
        f"{cv.estimate_at_cut:.2f} at "
        f"{cv.last_vouched_angstrom:.2f} Å, the last shell where the half sets' own FSC can be "
        "read (past it, within noise of zero, only a lower bound is vouched for), so the map may "
        "be finer by far. More particles, or symmetry where the molecule has it, let the data "
        "vouch further.",
    ]


def format_resolution(angstrom: float, explain: bool = True) -> str:
    """``"3.21 Å"``, or ``"none"`` where no shell is vouched for (an infinite resolution), with
    why unless ``explain`` is False."""
    if np.isfinite(angstrom):
        return f"{angstrom:.2f} Å"
    why = (
        " (the data vouch for no shell: too few particles, no signal, or views that sample"
        " too little of each shell)"
    )
    return "none" + (why if explain else "")
