"""Final outputs of a reconstruction: maps, gold-standard FSC (JSON and PNG), Gaussian models."""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryosplat.fsc import FSCResult, masked_fsc
from cryosplat.gaussians import GaussianModel
from cryosplat.io.mrc import write_map
from cryosplat.masks import auto_mask, spherical_mask
from cryosplat.run_folder import write_json_atomic

__all__ = ["HalfMapReport", "evaluate_half_maps", "plot_fsc", "write_outputs"]

log = logging.getLogger("cryosplat")


@dataclass
class HalfMapReport:
    """Gold-standard FSC of the two half maps with a spherical and an automatic mask."""

    spherical: FSCResult
    automatic: FSCResult

    @property
    def resolution_angstrom(self) -> float:
        """The headline: 0.143 of the phase-randomisation-corrected FSC with the spherical mask."""
        return self.spherical.resolution("corrected")

    def to_dict(self) -> dict:
        return {
            "resolution_0143_angstrom": self.resolution_angstrom,
            "headline": "corrected FSC, soft spherical mask, threshold 0.143",
            "spherical_mask": self.spherical.to_dict(),
            "automatic_mask": self.automatic.to_dict(),
        }


def evaluate_half_maps(
    half_a: np.ndarray, half_b: np.ndarray, pixel_size_angstrom: float, soft_width_px: float = 6.0
) -> tuple[HalfMapReport, np.ndarray]:
    """FSC of two half maps with a soft spherical mask and an automatic soft mask.

    Returns the report and the automatic mask.
    """
    box = half_a.shape[0]
    sphere = spherical_mask(box, soft_width_px=soft_width_px)
    amask = auto_mask(0.5 * (half_a + half_b), pixel_size_angstrom, soft_width_px=soft_width_px)
    return HalfMapReport(
        masked_fsc(half_a, half_b, sphere, pixel_size_angstrom),
        masked_fsc(half_a, half_b, amask, pixel_size_angstrom),
    ), amask


def plot_fsc(path: Path, report: HalfMapReport, extra: dict[str, np.ndarray] | None = None) -> None:
    """Plot the FSC curves against spatial frequency to a PNG, atomically."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    res = report.spherical
    freq = np.arange(res.box // 2 + 1) / (res.box * res.pixel_size_angstrom)
    for name, curve, style in (
        ("spherical mask, corrected", report.spherical.corrected, "-"),
        ("automatic mask, corrected", report.automatic.corrected, "-"),
        ("unmasked", report.spherical.unmasked, ":"),
        ("phase-randomised (spherical)", report.spherical.randomized, "--"),
    ):
        ax.plot(freq, curve, style, label=name)
    for name, curve in (extra or {}).items():
        ax.plot(freq, curve, "-.", label=name)
    ax.axhline(0.143, color="grey", lw=0.8)
    ax.axhline(0.5, color="grey", lw=0.5, ls=":")
    ax.set_xlabel("spatial frequency (1/Å)")
    ax.set_ylabel("FSC")
    ax.set_ylim(-0.1, 1.05)
    ax.set_title(f"Gold-standard FSC: {report.resolution_angstrom:.2f} Å at 0.143")
    ax.legend(fontsize=8)
    ax.set_xlim(0.0, freq[-1])
    top = ax.twiny()
    top.set_xlim(ax.get_xlim())
    ticks = [t for t in ax.get_xticks() if 0.0 < t <= freq[-1]]
    top.set_xticks(ticks)
    top.set_xticklabels([f"{1.0 / t:.3g}" for t in ticks])
    top.set_xlabel("resolution (Å)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_outputs(
    folder: Path, model_a: GaussianModel, model_b: GaussianModel, soft_width_px: float = 6.0
) -> tuple[HalfMapReport, dict]:
    """Write the half maps, the full map, the FSC and the models into ``folder``.

    Returns the FSC report and a summary dict (also logged).
    """
    from cryosplat.export import export_model

    pixel = model_a.pixel_size_angstrom
    with torch.no_grad():
        half_a = model_a.voxelize().detach().cpu().double().numpy()
        half_b = model_b.voxelize().detach().cpu().double().numpy()
    full = 0.5 * (half_a + half_b)
    write_map(folder / "half_map_A.mrc", half_a, pixel)
    write_map(folder / "half_map_B.mrc", half_b, pixel)
    write_map(folder / "map.mrc", full, pixel)
    report, amask = evaluate_half_maps(half_a, half_b, pixel, soft_width_px)
    write_map(folder / "mask.mrc", amask, pixel)
    write_json_atomic(folder / "fsc.json", report.to_dict())
    plot_fsc(folder / "fsc.png", report)
    for name, model in (("A", model_a), ("B", model_b)):
        model.save(folder / f"model_{name}.npz")
        export_model(model, folder / f"model_{name}.cif")
    summary = {
        "resolution_0143_angstrom": report.resolution_angstrom,
        "resolution_0143_automatic_mask_angstrom": report.automatic.resolution("corrected"),
        "n_gaussians": [len(model_a), len(model_b)],
        "box": model_a.box,
        "pixel_size_angstrom": pixel,
    }
    log.info(
        "half-map resolution (FSC 0.143, spherical mask, corrected): %.2f Å",
        summary["resolution_0143_angstrom"],
    )
    log.info(
        "half-map resolution (FSC 0.143, automatic mask, corrected): %.2f Å",
        summary["resolution_0143_automatic_mask_angstrom"],
    )
    return report, summary
