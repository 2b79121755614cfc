"""Final outputs of a reconstruction: maps, gold-standard FSC (JSON and SVG), Gaussian models.

The report of the half maps itself (their FSCs, the cross-validated resolution and its warnings)
is :mod:`cryosplat.reconstruct.half_map_report`, re-exported here."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from cryosplat.io.fsc_xml import write_fsc_xml
from cryosplat.io.svg_plot import Curve, LinePlot, write_svg
from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.chimerax_view import write_run_view
from cryosplat.reconstruct.engine_result import EngineResult, MapSettings
from cryosplat.reconstruct.half_map_report import (
    CrossValidationInputs,
    HalfMapReport,
    data_limit_warnings,
    evaluate_half_maps,
    format_resolution,
)
from cryosplat.reconstruct.local_report import write_local_resolution
from cryosplat.reconstruct.map_composition import compose_map
from cryosplat.reconstruct.run_folder import FSC_FILE, MAP_FILE, write_json_atomic
from cryosplat.reconstruct.stage_mean import mean_of_stages
from cryosplat.reconstruct.written_grid import WrittenGrid
from cryosplat.validation.conical import DirectionalResolution, directional_resolution
from cryosplat.validation.fsc import shell_frequencies
from cryosplat.validation.local_weight import (
    window_for_resolution,
)
from cryosplat.validation.masks import spherical_mask
from cryosplat.validation.user_mask import coverage_warning

__all__ = [
    "CrossValidationInputs",
    "HalfMapReport",
    "evaluate_half_maps",
    "format_resolution",
    "half_model_maps",
    "plot_fsc",
    "run_summary",
    "write_outputs",
]

log = logging.getLogger("cryosplat")

# A shell up to the resolution of which the views sample less than this share: warned of (the
# resolution counts the rest as holding nothing; :mod:`cryosplat.validation.sampling`). Real and
# preferred views of the benchmark sets sample 0.985 or more of each shell, a tilt limit of 70°
# 0.94 or more.
SAMPLED_SHARE_WARNING = 0.95


def plot_fsc(path: Path, report: HalfMapReport, extra: dict[str, np.ndarray] | None = None) -> None:
    """Plot the FSC curves against spatial frequency to an SVG (:mod:`cryosplat.io.svg_plot`)."""
    res = report.spherical
    freq = shell_frequencies(res.box, res.pixel_size_angstrom)
    curves = [
        Curve("half models, spherical mask, corrected", report.spherical.corrected),
        Curve("half models, automatic mask, corrected", report.automatic.corrected),
        Curve("half models, phase-randomised", report.spherical.randomized, ":"),
    ]
    if report.user_mask is not None:
        curves.insert(2, Curve("half models, given mask, corrected", report.user_mask.corrected))
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


def _directional_curves(directional: DirectionalResolution | None) -> dict[str, np.ndarray]:
    """The data half maps' curves along their finest and coarsest directions, for the plot."""
    if directional is None:
        return {}
    return {
        f"half data, {which} direction ({', '.join(f'{x:.2f}' for x in axis)})": (
            directional.curve_along(which)
        )
        for which, axis in (
            ("finest", directional.finest_direction),
            ("coarsest", directional.coarsest_direction),
        )
    }


def _unsampled_warnings(directional: DirectionalResolution, resolution: float) -> list[str]:
    """A warning where the data hold nothing along some directions (no view samples them)."""
    empty = directional.empty_from_shell
    if not np.any(empty >= 0):
        return []
    worst = int(np.argmax(directional.resolutions_angstrom))
    axis = ", ".join(f"{x:.2f}" for x in directional.directions[worst])
    coarsest = directional.coarsest_angstrom
    held = (
        f"nothing finer than {format_resolution(coarsest, explain=False)}"
        if np.isfinite(coarsest)
        else "nothing from the first shell on"
    )
    return [
        f"the data hold nothing along {int(np.sum(empty >= 0))} of "
        f"{len(directional.directions)} directions (along ({axis}) {held}): no view samples "
        "them, so the map there is the model's alone, which no data check (fsc.json: "
        "data_half_maps_directional)"
    ]


def _sampling_warnings(share: np.ndarray | None, resolution: float, box: int, pixel: float):
    """A warning where the views leave part of the shells up to the resolution unsampled
    (:mod:`cryosplat.validation.sampling`), which the resolution counts as holding nothing."""
    if share is None:
        return []
    last = box // 2 if not np.isfinite(resolution) else int(np.ceil(box * pixel / resolution))
    shells = share[1 : min(box // 2, last) + 1]
    if shells.size == 0 or shells.min() >= SAMPLED_SHARE_WARNING:
        return []
    return [
        f"the views sample {100 * shells.min():.0f}-{100 * shells.max():.0f} % of the "
        "frequencies of the shells to the resolution: no view's central plane passes the rest (a "
        "missing cone or wedge: views within some angle of one axis, or a tilt limit), and the "
        "map there is the model's alone; the resolution "
        f"({format_resolution(resolution, explain=False)}) counts it as holding nothing of the "
        "truth (the estimate times the square root of the sampled share; fsc.json: "
        "sampled_share_by_shell)"
    ]


def _log_directional(directional: DirectionalResolution) -> None:
    """The data half maps' finest and coarsest resolution by direction."""

    def axis(v: Iterable[float]) -> str:
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


def half_model_maps(result: EngineResult) -> tuple[GaussianModel, GaussianModel, list]:
    """The two half models expanded by their symmetry, and their maps: the last fit's, or with
    ``result.earlier_stages`` at each frequency the mean of the stages' fits that hold it
    (:mod:`cryosplat.reconstruct.stage_mean`). Returns ``(model_a, model_b, [map_a, map_b])``."""
    model_a, model_b = (m.expanded() for m in result.models)

    def vox(model: GaussianModel) -> np.ndarray:
        return model.expanded().voxelize().detach().cpu().double().numpy()

    with torch.no_grad():
        maps = [vox(model_a), vox(model_b)]
        earlier = result.earlier_stages
        if earlier:
            device = model_a.means.device
            for i in range(2):
                maps[i] = mean_of_stages(maps[i], [(vox(s[i]), s[2]) for s in earlier], device)
            log.info(
                "half maps: at each frequency the mean of the last %d stages' fits whose grids "
                "hold it (to %s Å), the last fit alone beyond",
                len(earlier) + 1,
                ", ".join(
                    f"{model_a.box * model_a.pixel_size_angstrom / k:.1f}" for *_, k in earlier
                ),
            )
    return model_a, model_b, maps


def write_outputs(
    folder: Path,
    result: EngineResult,
    settings: MapSettings | None = None,
    warnings: list[str] | None = None,
) -> tuple[HalfMapReport, dict]:
    """Write the half maps, the full map, the FSC and the models of ``result`` into ``folder``.

    The full map is the mean of the two halves of
    :func:`~cryosplat.reconstruct.map_composition.compose_map` (the model's weight per
    shell in the blend goes into ``fsc.json``; the local weight's window
    ``settings.local_weight_sigma_px`` voxels, by default a third of the fit's last
    cross-validated resolution and at least 1.5, the weight written as ``local_weight.mrc``; 0:
    the plain mean). The half maps as written and their FSC are the models' own
    (:func:`half_model_maps`). ``warnings`` (e.g. that the half sets are random) are written
    into ``fsc.json``. With ``settings.fsc_mask`` (a mask the user gave) the resolution is read
    within it (``mask.mrc`` is still the automatic mask). A symmetric model is written expanded
    (every copy: the full molecule); ``settings.symmetry`` and the asymmetric unit's size are
    recorded in ``fsc.json`` and the summary. ``result.data_maps`` of a symmetric run are the
    symmetrised data half maps.

    Returns the FSC report and a summary dict (also logged).
    """
    from cryosplat.model.export import export_model

    settings = MapSettings() if settings is None else settings
    origin, data_maps = settings.origin_angstrom, result.data_maps
    n_unit = [len(m) for m in result.models]
    model_a, model_b, half_maps = half_model_maps(result)
    pixel, device = model_a.pixel_size_angstrom, model_a.means.device
    grid = WrittenGrid(model_a.box, pixel, origin, settings.source_box)
    sigma = settings.local_weight_sigma_px
    if sigma is None:
        sigma = window_for_resolution(result.last_resolution_angstrom(), pixel)
    sphere = spherical_mask(model_a.box, soft_width_px=settings.soft_width_px)
    composed = compose_map(half_maps, result, sphere, sigma, device)
    if composed.weight is not None:
        grid.write(folder / "local_weight.mrc", composed.weight, bounded=True)
    else:
        (folder / "local_weight.mrc").unlink(missing_ok=True)  # a resumed run's earlier weight
    for name, half in zip("AB", half_maps, strict=True):
        grid.write(folder / f"half_map_{name}.mrc", half)
    grid.write(folder / MAP_FILE, 0.5 * (composed.halves[0] + composed.halves[1]))
    # The reported resolution is the written map's: its halves as they enter it (blended, times
    # the weight but at the lowest shells), each against the other half's data. On the raw half
    # models it missed what the weight adds on small sets (2,000 beta-galactosidase particles:
    # 21.69 Å reported, 18.99 Å against the truth; with the map's halves 18.55 Å;
    # benchmarks/RESULTS.md, round 2, session 11).
    crossval = None
    if data_maps is not None:
        crossval = CrossValidationInputs(
            data_maps,
            composed.halves,
            unweighted_halves=None if composed.weight is None else composed.unweighted,
            sampled_share=None if result.sampling is None else result.sampling.share,
        )
    report, amask = evaluate_half_maps(
        *half_maps, pixel, settings.soft_width_px, crossval, device, sphere, settings.fsc_mask
    )
    region = (amask, "the automatic mask")  # where the molecule is: the user's mask if given
    if settings.fsc_mask is not None:
        region = (settings.fsc_mask.volume, f"the given mask {settings.fsc_mask.name}")
    local = write_local_resolution(
        folder, composed.unweighted, region, report.resolution_angstrom, grid
    )
    # The map's halves are written and read: only the weight, the blend and the text are kept
    # (at box 256 each half is 134 MB).
    weight, alpha, map_text = composed.weight, composed.alpha, composed.text
    del composed, crossval
    if weight is not None:
        log.info(
            "map: the %s (local_weight.mrc; the weight %.2f on average inside the automatic mask)",
            map_text,
            float((weight * amask).sum() / max(float(amask.sum()), 1e-12)),
        )
    extra = {"symmetry": settings.symmetry, "map": map_text}
    directional = None
    if data_maps is not None:
        on_device = [torch.as_tensor(d).to(device) for d in data_maps]
        directional = directional_resolution(*on_device, pixel, mask=sphere)
        del on_device
        extra["data_half_maps_directional"] = directional.to_dict()
        _log_directional(directional)
    extra["local_resolution"] = local
    if alpha is not None:
        extra["map_model_weight_by_shell"] = [round(float(x), 4) for x in alpha]
        _log_blend(alpha, model_a.box, pixel)
    limits = data_limit_warnings(report)
    if settings.fsc_mask is not None:  # a given mask placed over the molecule?
        mean_map = 0.5 * (half_maps[0] + half_maps[1])
        if (text := coverage_warning(settings.fsc_mask, mean_map, pixel)) is not None:
            limits.append(text)
    if directional is not None:
        limits += _unsampled_warnings(directional, report.resolution_angstrom)
    if result.sampling is not None:
        share = result.sampling.share
        extra["sampled_share_by_shell"] = [round(float(x), 4) for x in share]
        limits += _sampling_warnings(share, report.resolution_angstrom, model_a.box, pixel)
    for text in limits:
        log.warning("%s", text)
    report.warnings = [*(warnings or []), *limits]
    grid.write(folder / "mask.mrc", amask, bounded=True)
    write_json_atomic(folder / FSC_FILE, {**report.to_dict(), **extra})
    write_fsc_xml(folder / "fsc.xml", *report.deposition_curve())
    plot_fsc(folder / "fsc.svg", report, _directional_curves(directional))
    for name, model in (("A", model_a), ("B", model_b)):
        model.save(folder / f"model_{name}.npz")
        export_model(model, folder / f"model_{name}.cif", origin)
    level = write_run_view(folder, local["percentiles_5_50_95_angstrom"])
    summary = run_summary(report, (model_a, model_b), n_unit, map_text, settings.symmetry)
    summary["local_resolution_5_50_95_angstrom"] = local["percentiles_5_50_95_angstrom"]
    summary["local_resolution_windows_without"] = local["windows_without_resolution"]
    summary["chimerax_surface_level"] = level
    if directional is not None:
        summary["data_half_maps_0143_by_direction_angstrom"] = [
            directional.finest_angstrom,
            directional.coarsest_angstrom,
        ]
    _log_resolution(report, summary)
    return report, summary


def _negative_population(models: Sequence[GaussianModel]) -> dict:
    """Per half model: how many Gaussians hold negative density, and their mass as a share of
    the positive mass (0 where the model holds no positive mass)."""
    counts, shares = [], []
    for model in models:
        amplitudes = model.amplitudes.detach().double()
        positive = float(amplitudes.clamp_min(0).sum())
        negative = abs(float(amplitudes.clamp_max(0).sum()))
        counts.append(int((amplitudes < 0).sum()))
        shares.append(negative / positive if positive > 0 else 0.0)
    return {"n_negative_gaussians": counts, "negative_mass_share": shares}


def run_summary(
    report: HalfMapReport,
    models: Sequence[GaussianModel],
    n_unit: list[int],
    map_text: str,
    symmetry: str,
) -> dict:
    """The run's results for ``run.json`` (and ``cryosplat info``): the resolution with its band,
    the half models' FSC 0.143 in each mask, the models' sizes (and how many of their Gaussians
    hold density below the solvent level, with the share of the positive mass they take off),
    box and pixel size."""
    model_a, model_b = models
    band = report.band_angstrom
    summary = {
        "resolution_angstrom": report.resolution_angstrom,
        "resolution_definition": report.headline,
        "resolution_band_angstrom": None if band is None else list(band),
        "model_half_maps_0143_spherical_angstrom": report.spherical.resolution("corrected"),
        "model_half_maps_0143_automatic_angstrom": report.automatic.resolution("corrected"),
        "n_gaussians": [len(model_a), len(model_b)],
        **_negative_population(models),
        "symmetry": symmetry,
        "map": map_text,
        "n_gaussians_asymmetric_unit": n_unit,
        "box": model_a.box,
        "pixel_size_angstrom": model_a.pixel_size_angstrom,
    }
    if report.cross_validated is not None:
        summary["data_half_maps_0143_angstrom"] = report.cross_validated.data_resolution_angstrom
    if report.sphere_reading is not None:  # the automatic or the given mask's is the headline
        summary["resolution_soft_spherical_mask_angstrom"] = (
            report.sphere_reading.resolution_angstrom
        )
    if report.user_mask is not None:
        summary["given_mask"] = report.user_mask_name
        summary["model_half_maps_0143_given_mask_angstrom"] = report.user_mask.resolution(
            "corrected"
        )
    return summary


def _log_resolution(report: HalfMapReport, summary: dict) -> None:
    band = report.band_angstrom
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
        "half models FSC 0.143 (optimistic for smooth models): %s spherical mask, %s "
        "automatic mask",
        format_resolution(summary["model_half_maps_0143_spherical_angstrom"], explain=False),
        format_resolution(summary["model_half_maps_0143_automatic_angstrom"], explain=False),
    )
