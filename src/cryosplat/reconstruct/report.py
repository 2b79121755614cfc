"""Final outputs of a reconstruction: maps, gold-standard FSC (JSON and SVG), Gaussian models."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from cryosplat.io.mrc import write_map
from cryosplat.io.svg_plot import Curve, LinePlot, write_svg
from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.run_folder import write_json_atomic
from cryosplat.reconstruct.stage_mean import mean_of_stages
from cryosplat.validation.conical import DirectionalResolution, directional_resolution
from cryosplat.validation.crossval import CrossValidatedFSC
from cryosplat.validation.data_blend import blend_with_data
from cryosplat.validation.fsc import FSCResult, masked_fscs
from cryosplat.validation.local_weight import (
    DEFAULT_SIGMA_PX,
    UNWEIGHTED_SHELLS,
    apply_local_weight,
    local_wiener_weight,
)
from cryosplat.validation.mask_choice import SPHERE_TEXT, DataUnderMasks, read_in_masks
from cryosplat.validation.masks import auto_mask, spherical_mask

__all__ = [
    "HalfMapReport",
    "evaluate_half_maps",
    "format_resolution",
    "plot_fsc",
    "write_outputs",
]

N_BOOTSTRAP = 100  # resamples of the Fourier samples for the resolution band

log = logging.getLogger("cryosplat")


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
    # The estimate on the weighted halves when it was set aside as inconsistent (the report's is
    # then the halves' before the weight); None when it is the report's.
    weighted_set_aside: CrossValidatedFSC | None = None

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
                "half model, blended with its data, before the map's local weight (see the "
                "warnings)"
                if self.weighted_set_aside is not None
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
        if self.cross_validated is not None:
            out["cross_validated"] = {**self.cross_validated.to_dict(), "mask": self.cv_mask}
            aside = self.weighted_set_aside
            out["cross_validated"]["halves"] = (
                "as they enter the map" if aside is None else "before the map's local weight"
            )
            if aside is not None:
                out["cross_validated"]["weighted_halves_set_aside"] = {
                    "resolution_angstrom": aside.resolution_angstrom,
                    "inconsistent_from_angstrom": aside.inconsistent_angstrom,
                }
        return out


def evaluate_half_maps(
    half_a: np.ndarray,
    half_b: np.ndarray,
    pixel_size_angstrom: float,
    soft_width_px: float = 6.0,
    data_maps: tuple[np.ndarray, np.ndarray] | None = None,
    device: torch.device | str = "cpu",
    map_halves: tuple[np.ndarray, np.ndarray] | None = None,
    sphere: np.ndarray | None = None,
    unweighted_halves: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[HalfMapReport, np.ndarray]:
    """FSC of two half maps with a soft spherical mask and an automatic soft mask.

    Parameters
    ----------
    half_a, half_b : (D, D, D) half-model maps
    pixel_size_angstrom : float
    soft_width_px : float
    data_maps : (D_A, D_B), optional
        Direct Fourier inversions of the same half sets, for the cross-validated resolution.
    device : torch device
        Where the FSCs are computed (double precision; a GPU takes seconds off a box-256 run).
    map_halves : (A', B'), optional
        The two halves as they enter the written map (whose mean is the map): the
        cross-validated resolution is theirs, the map's; by default the half models'.
    sphere : (D, D, D), optional
        The soft spherical mask of ``soft_width_px``, when the caller has made it already (it
        takes ~1 s at box 256).
    unweighted_halves : (A, B), optional
        ``map_halves`` before a weight made from both of them: estimated on instead when the
        weighted halves are inconsistent with the data
        (:attr:`~cryosplat.validation.crossval.CrossValidatedFSC.inconsistent_shell`: the
        weight carried one half's noise into the other).

    Returns the report and the automatic mask.
    """
    box = half_a.shape[0]
    if sphere is None:
        sphere = spherical_mask(box, soft_width_px=soft_width_px)
    amask = auto_mask(0.5 * (half_a + half_b), pixel_size_angstrom, soft_width_px=soft_width_px)

    def on_device(array) -> torch.Tensor:  # the FSCs run where their inputs are
        return torch.as_tensor(np.asarray(array), dtype=torch.float64).to(device)

    a, b = on_device(half_a), on_device(half_b)
    masks = (on_device(sphere), on_device(amask))
    cross, cv_mask, weighted = None, SPHERE_TEXT, None
    if data_maps is not None:
        data = DataUnderMasks([on_device(d) for d in data_maps], *masks)
        halves = (a, b) if map_halves is None else [on_device(h) for h in map_halves]
        cross, cv_mask = _cross_validate(halves, data, pixel_size_angstrom)
        if cross.inconsistent_shell is not None and unweighted_halves is not None:
            weighted = cross
            halves = [on_device(h) for h in unweighted_halves]
            cross, cv_mask = _cross_validate(
                halves, data, pixel_size_angstrom, "the halves before the local weight: "
            )
        del halves, data
    spherical, automatic = masked_fscs(a, b, list(masks), pixel_size_angstrom)
    report = HalfMapReport(
        spherical, automatic, cross, cv_mask=cv_mask, weighted_set_aside=weighted
    )
    return report, amask


def _cross_validate(halves, data: DataUnderMasks, pixel_size_angstrom: float, what: str = ""):
    """The cross-validated FSC in the soft sphere or within the automatic mask
    (:func:`~cryosplat.validation.mask_choice.read_in_masks`), and the mask's description; the
    automatic mask's reading is logged (``what`` prefixes the line)."""
    reading = read_in_masks(halves, data, pixel_size_angstrom, N_BOOTSTRAP)
    if reading.in_automatic_mask:
        sphere, tight = reading.sphere, reading.chosen
        log.info(
            "resolution: %sin the spherical mask the data's own FSC can be read to %.2f Å, the "
            "estimate still %.2f there (%.2f Å with the lower bound past it); within the "
            "automatic mask they vouch to %.2f Å (its estimate divided by %.3f, how much higher it "
            "lies than the sphere's where both are read; its FSCs' noise taken %.2f times the "
            "sphere's, the masks' kept shares of the box to the power 1/3; the lower bound past "
            "its own cut)",
            what,
            sphere.last_vouched_angstrom,
            sphere.estimate_at_cut,
            sphere.resolution_angstrom,
            tight.resolution_angstrom,
            tight.mask_gain,
            reading.noise_scale,
        )
    return reading.chosen, reading.mask


def plot_fsc(path: Path, report: HalfMapReport, extra: dict[str, np.ndarray] | None = None) -> None:
    """Plot the FSC curves against spatial frequency to an SVG (:mod:`cryosplat.io.svg_plot`)."""
    res = report.spherical
    freq = np.arange(res.box // 2 + 1) / (res.box * res.pixel_size_angstrom)
    curves = [
        Curve("half models, spherical mask, corrected", report.spherical.corrected),
        Curve("half models, automatic mask, corrected", report.automatic.corrected),
        Curve("half models, phase-randomised", report.spherical.randomized, ":"),
    ]
    cv = report.cross_validated
    if cv is not None:
        curves += [
            Curve(
                "cross-validated map vs truth estimate (C_map)",
                cv.model_vs_truth_estimate,
                "-",
                2.0,
            ),
            Curve("half data (direct inversion)", cv.data_fsc, "--"),
        ]
    curves += [Curve(name, curve, "-.") for name, curve in (extra or {}).items()]
    plot = LinePlot(
        x=freq,
        curves=curves,
        xlim=(0.0, float(freq[-1])),
        ylim=(-0.1, 1.05),
        title=f"Resolution {format_resolution(report.resolution_angstrom, explain=False)}",
        xlabel="spatial frequency (1/Å)",
        ylabel="FSC",
        hlines=[(0.143, "0.143"), (0.5, "0.5")],
        top_reciprocal_label="resolution (Å)",
    )
    write_svg(path, plot)


def _data_limit_warnings(report: HalfMapReport) -> list[str]:
    """Warnings when the cross-validated resolution is where the data stop, not a crossing, when
    it was estimated on the halves before the map's weight, and when the data contradict it."""
    cv = report.cross_validated
    if cv is None:
        return []
    out = []
    weighted = report.weighted_set_aside
    if weighted is not None:
        out.append(
            "the resolution was estimated on the half maps before the map's local weight: "
            "weighted, they agree with the other half's data more than those data agree with "
            f"their own other half (from {weighted.inconsistent_angstrom:.2f} Å), so the weight, "
            "made from both halves, carried each half's noise into the other (the data are too "
            "noisy for the half models to be more than fits of their own noise there; "
            f"{weighted.resolution_angstrom:.2f} Å on the weighted halves). The map's weight may "
            "make it finer than this estimate."
        )
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
        f"the resolution {cv.resolution_angstrom:.2f} Å is a bound, not a crossing: the map's "
        f"estimated FSC with the truth is still {cv.estimate_at_cut:.2f} at "
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
    why = " (the data vouch for no shell: too few particles, or no signal)"
    return "none" + (why if explain else "")


def _log_blend(alpha: np.ndarray, box: int, pixel: float) -> None:
    """Where the data's inversion entered the map: the shells where the model's weight < 0.9."""
    low = np.flatnonzero(alpha[1:] < 0.9) + 1
    if low.size == 0:
        log.info("map: the half models as fitted at every shell (their data held no more)")
        return
    extent = box * pixel
    log.info(
        "map: the half models blended with their data's inversion at %d shells, %.1f-%.1f Å "
        "(the model's weight there %.2f on average; per shell in fsc.json)",
        low.size,
        extent / low[0],
        extent / low[-1],
        float(alpha[low].mean()),
    )


def _log_directional(directional: DirectionalResolution) -> None:
    """The data half maps' finest and coarsest resolution by direction."""

    def axis(v) -> str:
        return "(" + ", ".join(f"{x:.2f}" for x in v) + ")"

    log.info(
        "data half maps by direction (FSC 0.143 within %g° cones, %d directions): %s along %s to "
        "%s along %s (x, y, z; fsc.json: data_half_maps_directional)",
        directional.half_angle_degrees,
        len(directional.directions),
        format_resolution(directional.finest_angstrom, explain=False),
        axis(directional.finest_direction),
        format_resolution(directional.coarsest_angstrom, explain=False),
        axis(directional.coarsest_direction),
    )


def write_outputs(
    folder: Path,
    model_a: GaussianModel,
    model_b: GaussianModel,
    soft_width_px: float = 6.0,
    data_maps: tuple[np.ndarray, np.ndarray] | None = None,
    warnings: list[str] | None = None,
    symmetry: str = "C1",
    local_weight_sigma_px: float = DEFAULT_SIGMA_PX,
    blend_maps: tuple[np.ndarray, np.ndarray] | None = None,
    earlier_stages: list[tuple[GaussianModel, GaussianModel, float]] | None = None,
) -> tuple[HalfMapReport, dict]:
    """Write the half maps, the full map, the FSC and the models into ``folder``.

    The full map is made of the half maps, each corrected shell by shell by its own half set's
    direct inversion where that holds more (``blend_maps``, the inversions:
    :mod:`cryosplat.validation.data_blend`; the model's weight per shell goes into ``fsc.json``),
    their mean times their local Wiener weight but at the lowest shells
    (:func:`~cryosplat.validation.local_weight.apply_local_weight`; the weight's window
    ``local_weight_sigma_px`` voxels, the weight written as ``local_weight.mrc``;
    ``local_weight_sigma_px = 0``: the plain mean). The half maps as written and their FSC are
    the models' own (with ``earlier_stages``, the stages' fits').
    ``warnings`` (e.g. that the half sets are random) are written into ``fsc.json``. A symmetric
    model is written expanded (every copy: the full molecule); ``symmetry`` and the asymmetric
    unit's size are recorded in ``fsc.json`` and the summary. ``data_maps`` of a symmetric run are
    the symmetrised data half maps. ``earlier_stages`` (earlier stages' half models, each with its
    stage's Nyquist shell): each half map is, at each frequency, the mean of the fits that hold it
    (:mod:`cryosplat.reconstruct.stage_mean`).

    Returns the FSC report and a summary dict (also logged).
    """
    from cryosplat.model.export import export_model

    pixel = model_a.pixel_size_angstrom
    n_unit = [len(model_a), len(model_b)]
    model_a, model_b = model_a.expanded(), model_b.expanded()
    with torch.no_grad():
        half_a = model_a.voxelize().detach().cpu().double().numpy()
        half_b = model_b.voxelize().detach().cpu().double().numpy()
        if earlier_stages:
            device = model_a.means.device

            def vox(model: GaussianModel) -> np.ndarray:
                return model.expanded().voxelize().detach().cpu().double().numpy()

            half_a = mean_of_stages(half_a, [(vox(a), k) for a, _, k in earlier_stages], device)
            half_b = mean_of_stages(half_b, [(vox(b), k) for _, b, k in earlier_stages], device)
            log.info(
                "half maps: at each frequency the mean of the last %d stages' fits whose grids "
                "hold it (to %s Å), the last fit alone beyond",
                len(earlier_stages) + 1,
                ", ".join(f"{model_a.box * pixel / k:.1f}" for *_, k in earlier_stages),
            )
    parts, alpha, map_text = (half_a, half_b), None, "mean of the half maps"
    sphere = spherical_mask(model_a.box, soft_width_px=soft_width_px)
    if blend_maps is not None:
        *parts, alpha = blend_with_data(
            half_a, half_b, *blend_maps, model_a.means.device, mask=sphere
        )
        map_text = "mean of the half maps, each blended by shell with its data's inversion"
    weight, map_halves = None, parts
    if local_weight_sigma_px > 0:
        weight = local_wiener_weight(*parts, local_weight_sigma_px, model_a.means.device)
        map_halves = tuple(
            apply_local_weight(p, weight, device=model_a.means.device) for p in parts
        )
        write_map(folder / "local_weight.mrc", weight, pixel)
        map_text += (
            f" × local Wiener weight ({local_weight_sigma_px:g} px; shells 0-{UNWEIGHTED_SHELLS}"
            " unweighted)"
        )
    else:
        (folder / "local_weight.mrc").unlink(missing_ok=True)  # a resumed run's earlier weight
    write_map(folder / "half_map_A.mrc", half_a, pixel)
    write_map(folder / "half_map_B.mrc", half_b, pixel)
    write_map(folder / "map.mrc", 0.5 * (map_halves[0] + map_halves[1]), pixel)
    # The reported resolution is the written map's: its halves as they enter it (blended, times
    # the weight but at the lowest shells), each against the other half's data. On the raw half models it missed what the
    # weight adds on small sets (2,000 beta-galactosidase particles: 21.69 Å reported, 18.99 Å
    # against the truth; with the map's halves 18.55 Å; benchmarks/RESULTS.md, round 2,
    # session 11).
    report, amask = evaluate_half_maps(
        half_a,
        half_b,
        pixel,
        soft_width_px,
        data_maps,
        model_a.means.device,
        map_halves,
        sphere,
        unweighted_halves=None if weight is None else tuple(parts),
    )
    del map_halves
    if weight is not None:
        log.info(
            "map: the %s (local_weight.mrc; the weight %.2f on average inside the automatic mask)",
            map_text,
            float((weight * amask).sum() / max(float(amask.sum()), 1e-12)),
        )
    extra = {"symmetry": symmetry, "map": map_text}
    directional = None
    if data_maps is not None:
        on_device = [torch.as_tensor(d).to(model_a.means.device) for d in data_maps]
        directional = directional_resolution(*on_device, pixel, mask=sphere)
        del on_device
        extra["data_half_maps_directional"] = directional.to_dict()
        _log_directional(directional)
    if alpha is not None:
        extra["map_model_weight_by_shell"] = [round(float(x), 4) for x in alpha]
        _log_blend(alpha, model_a.box, pixel)
    limits = _data_limit_warnings(report)
    for text in limits:
        log.warning("%s", text)
    report.warnings = [*(warnings or []), *limits]
    write_map(folder / "mask.mrc", amask, pixel)
    write_json_atomic(folder / "fsc.json", {**report.to_dict(), **extra})
    plot_fsc(folder / "fsc.svg", report)
    for name, model in (("A", model_a), ("B", model_b)):
        model.save(folder / f"model_{name}.npz")
        export_model(model, folder / f"model_{name}.cif")
    summary = {
        "resolution_angstrom": report.resolution_angstrom,
        "resolution_definition": report.headline,
        "model_half_maps_0143_spherical_angstrom": report.spherical.resolution("corrected"),
        "model_half_maps_0143_automatic_angstrom": report.automatic.resolution("corrected"),
        "n_gaussians": [len(model_a), len(model_b)],
        "symmetry": symmetry,
        "map": map_text,
        "n_gaussians_asymmetric_unit": n_unit,
        "box": model_a.box,
        "pixel_size_angstrom": pixel,
    }
    band = report.band_angstrom
    if report.cross_validated is not None:
        summary["data_half_maps_0143_angstrom"] = report.cross_validated.data_resolution_angstrom
    if directional is not None:
        summary["data_half_maps_0143_by_direction_angstrom"] = [
            directional.finest_angstrom,
            directional.coarsest_angstrom,
        ]
        summary["resolution_band_angstrom"] = None if band is None else list(band)
    band_text = (
        f", 68 % bootstrap band {band[0]:.2f}-{band[1]:.2f} Å"
        if band is not None and np.all(np.isfinite(band))
        else ""
    )
    log.info(
        "resolution: %s%s (%s)",
        format_resolution(report.resolution_angstrom),
        band_text,
        report.headline,
    )
    log.info(
        "half models FSC 0.143 (optimistic for smooth models): %.2f Å spherical mask, %.2f Å "
        "automatic mask",
        summary["model_half_maps_0143_spherical_angstrom"],
        summary["model_half_maps_0143_automatic_angstrom"],
    )
    return report, summary
