"""A map sharpened as RELION's post-processing does it: its fall-off read from a Guinier plot and
taken out, the frequencies past its resolution filtered away.

A map's amplitudes fall with frequency faster than the molecule's: the images' envelope (the
microscope's coherence, the specimen's motion, the detector), the particles' pose errors and, for
a regularised map such as a Gaussian mixture fitted under a prior, the shrinkage of what the data
hold weakly. Past about 10 Å a protein's own spectrum is nearly flat (Wilson statistics), so the
logarithm of the map's mean amplitude per shell against the squared frequency ``s²`` (1/Å²) is
nearly a line there, ``ln |F|(s) = c − B s² / 4``; its slope gives the map's B-factor ``B``
(:func:`guinier_fit`, fitted from :data:`GUINIER_LOW_RESOLUTION_ANGSTROM` to the map's
resolution, as ``relion_postprocess --auto_bfac`` does). Multiplying the transform by
``exp(−B_apply s² / 4)`` with ``B_apply = −B`` flattens it (:func:`sharpen`; RELION's sign:
a negative B sharpens), and a raised-cosine low-pass over :data:`FILTER_EDGE_SHELLS` shells past
the resolution keeps the boost from reaching frequencies the map does not hold.

Sharpening scales each shell by one number, so every FSC, against the other half or against a
truth, is unchanged to the resolution: it changes how the map looks at a contour level, which is
what model building reads. Below about 10 Å resolution no shell of the Guinier range lies inside
the map's resolution; there a fit would read the molecule's own shape, not a fall-off, and none
is made (:class:`ValueError` naming the resolution).

A detector passes less of the signal's amplitude the finer the frequency (its MTF). Where its
curve is known, :func:`divide_by_mtf` takes it out before the fit, as ``relion_postprocess --mtf``
does, so the B-factor read is the rest of the fall-off. It too scales each frequency by a number
of its magnitude alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import ArrayLike

from cryosplat.core.fourier import squared_radius
from cryosplat.io.mtf_star import MTFCurve
from cryosplat.io.svg_plot import Curve, LinePlot
from cryosplat.validation.fsc import half_grid_shells, shell_frequencies, shell_sums
from cryosplat.validation.masks import soft_edge

__all__ = [
    "FILTER_EDGE_SHELLS",
    "GUINIER_LOW_RESOLUTION_ANGSTROM",
    "MIN_GUINIER_SHELLS",
    "GuinierFit",
    "divide_by_mtf",
    "guinier_fit",
    "guinier_plot",
    "shell_amplitudes",
    "sharpen",
    "sharpening_factor",
    "spectrum_and_radius",
]

GUINIER_LOW_RESOLUTION_ANGSTROM = 10.0  # relion_postprocess's --autob_lowres default
MIN_GUINIER_SHELLS = 4  # fewer shells between the two limits: no fit
FILTER_EDGE_SHELLS = 2.0  # width of the low-pass's raised cosine (RELION's default edge, 2 shells)


@dataclass(frozen=True)
class GuinierFit:
    """The straight line through ``ln |F|`` against ``s²`` over a band of shells.

    Attributes
    ----------
    bfactor_angstrom2 : float
        The map's B-factor ``B`` (Å²): its amplitudes fall as ``exp(−B s² / 4)``; positive for a
        map blurred past its molecule's own spectrum. Sharpening applies ``−B``.
    intercept : float
        ``ln |F|`` of the line at ``s = 0``.
    low_resolution_angstrom, high_resolution_angstrom : float
        The band fitted.
    shells : int
        Shells in the band.
    correlation : float
        Pearson correlation of ``ln |F|`` with ``s²`` over the band (near −1 for a clean fall-off;
        ``relion_postprocess`` prints the same).
    """

    bfactor_angstrom2: float
    intercept: float
    low_resolution_angstrom: float
    high_resolution_angstrom: float
    shells: int
    correlation: float


def _half_spectrum(volume: ArrayLike) -> torch.Tensor:
    """The real transform of a cubic map, in single precision."""
    v = torch.as_tensor(np.asarray(volume, dtype=np.float32))
    if v.ndim != 3 or len(set(v.shape)) != 1:
        raise ValueError(f"volume must be a cubic 3D map, got shape {tuple(v.shape)}")
    return torch.fft.rfftn(v)


def spectrum_and_radius(
    volume: ArrayLike, dtype: torch.dtype
) -> tuple[torch.Tensor, int, torch.Tensor]:
    """The map's real transform, its box and ``|k|`` (in shells) on the transform's grid."""
    spectrum = _half_spectrum(volume)
    box = spectrum.shape[0]
    return spectrum, box, squared_radius(box, 3, half=True, centred=False, dtype=dtype).sqrt_()


def _band(frequency: np.ndarray, low_angstrom: float, high_angstrom: float) -> np.ndarray:
    """The shells (of frequencies in 1/Å) from ``low_angstrom`` to ``high_angstrom``, inclusive."""
    return (frequency >= 1.0 / low_angstrom - 1e-12) & (frequency <= 1.0 / high_angstrom + 1e-12)


def shell_amplitudes(
    volume: ArrayLike, pixel_size_angstrom: float
) -> tuple[np.ndarray, np.ndarray]:
    """The frequency (1/Å) and the mean Fourier amplitude of each shell 0 .. D//2 of a map.

    Shell ``i`` holds the frequencies with ``round(|k| D) = i`` (as :mod:`~cryosplat.validation.fsc`
    counts them), at ``i / (D · pixel)`` 1/Å.
    """
    if not pixel_size_angstrom > 0:
        raise ValueError(f"pixel_size_angstrom must be positive, got {pixel_size_angstrom}")
    spectrum = _half_spectrum(volume)
    box = spectrum.shape[0]
    grid = half_grid_shells(box)
    amplitude = spectrum.abs()
    del spectrum
    mean = shell_sums(amplitude, grid) / shell_sums(torch.ones_like(amplitude), grid).clamp(min=1)
    return shell_frequencies(box, pixel_size_angstrom), mean.numpy()


def guinier_fit(
    volume: ArrayLike,
    pixel_size_angstrom: float,
    high_resolution_angstrom: float,
    low_resolution_angstrom: float = GUINIER_LOW_RESOLUTION_ANGSTROM,
) -> GuinierFit:
    """The map's B-factor from the shells between ``low_resolution_angstrom`` and
    ``high_resolution_angstrom`` (its resolution; inclusive, and no finer than Nyquist).

    Raises
    ------
    ValueError
        Fewer than :data:`MIN_GUINIER_SHELLS` shells with some amplitude lie in the band (a map
        whose resolution is near or coarser than the band's low limit), naming both limits.
    """
    if not (low_resolution_angstrom > 0 and high_resolution_angstrom > 0):
        raise ValueError(
            f"the Guinier band's limits must be positive, got {low_resolution_angstrom} Å and "
            f"{high_resolution_angstrom} Å"
        )
    if high_resolution_angstrom >= low_resolution_angstrom:
        raise ValueError(
            f"the map's resolution {high_resolution_angstrom:.2f} Å is no finer than the Guinier "
            f"band's coarse end {low_resolution_angstrom:g} Å: no fall-off can be read from it; "
            "give the B-factor to apply"
        )
    frequency, amplitude = shell_amplitudes(volume, pixel_size_angstrom)
    band = _band(frequency, low_resolution_angstrom, high_resolution_angstrom) & (amplitude > 0)
    if band.sum() < MIN_GUINIER_SHELLS:
        raise ValueError(
            f"{int(band.sum())} shells of the map lie between {low_resolution_angstrom:g} Å and "
            f"its resolution {high_resolution_angstrom:.2f} Å (pixel {pixel_size_angstrom:g} Å): a "
            f"Guinier B-factor needs at least {MIN_GUINIER_SHELLS}; give the B-factor to apply"
        )
    s2, log_amplitude = frequency[band] ** 2, np.log(amplitude[band])
    slope, intercept = np.polyfit(s2, log_amplitude, 1)
    return GuinierFit(
        bfactor_angstrom2=float(-4.0 * slope),
        intercept=float(intercept),
        low_resolution_angstrom=float(low_resolution_angstrom),
        high_resolution_angstrom=float(1.0 / frequency[band].max()),
        shells=int(band.sum()),
        correlation=float(np.corrcoef(s2, log_amplitude)[0, 1]),
    )


def divide_by_mtf(
    volume: ArrayLike,
    pixel_size_angstrom: float,
    mtf: MTFCurve,
    detector_pixel_angstrom: float,
) -> np.ndarray:
    """The map with each frequency to Nyquist divided by the detector's MTF there.

    Parameters
    ----------
    volume : array_like, shape (D, D, D)
    pixel_size_angstrom : float
        The map's voxel size.
    mtf : MTFCurve
        The detector's curve, in cycles per detector pixel.
    detector_pixel_angstrom : float
        The raw micrographs' pixel size: the map's frequency ``s`` (1/Å) is read at
        ``s · detector_pixel_angstrom`` cycles per detector pixel (``relion_postprocess``'s
        ``--mtf_angpix``). Frequencies past the map's Nyquist (the cube's corners) are kept.

    Returns
    -------
    numpy.ndarray, float32, shape (D, D, D)
    """
    if not (pixel_size_angstrom > 0 and detector_pixel_angstrom > 0):
        raise ValueError(
            f"pixel sizes must be positive, got the map's {pixel_size_angstrom} Å and the "
            f"detector's {detector_pixel_angstrom} Å"
        )
    spectrum, box, radius = spectrum_and_radius(volume, torch.float64)
    frequency = radius.numpy() / (box * pixel_size_angstrom)
    factor = np.where(
        frequency < 0.5 / pixel_size_angstrom,
        1.0 / mtf.at(frequency * detector_pixel_angstrom),
        1.0,
    )
    spectrum.mul_(torch.from_numpy(factor.astype(np.float32)))
    return torch.fft.irfftn(spectrum, s=(box, box, box)).numpy()


def sharpen(
    volume: ArrayLike,
    pixel_size_angstrom: float,
    apply_bfactor_angstrom2: float,
    resolution_angstrom: float,
) -> np.ndarray:
    """The map times ``exp(−B_apply s² / 4)`` to ``resolution_angstrom``, then a raised cosine
    to zero over :data:`FILTER_EDGE_SHELLS` shells past it (RELION's sign: a negative
    ``apply_bfactor_angstrom2`` sharpens).

    Parameters
    ----------
    volume : array_like, shape (D, D, D)
    pixel_size_angstrom : float
    apply_bfactor_angstrom2 : float
        ``B_apply`` (Å²); the Guinier fit's ``−B`` flattens the map's fall-off.
    resolution_angstrom : float
        Where the low-pass begins (the map's resolution); at most Nyquist is kept.

    Returns
    -------
    numpy.ndarray, float32, shape (D, D, D)
    """
    if not pixel_size_angstrom > 0:
        raise ValueError(f"pixel_size_angstrom must be positive, got {pixel_size_angstrom}")
    if not resolution_angstrom > 0 or not math.isfinite(apply_bfactor_angstrom2):
        raise ValueError(
            f"sharpening needs a positive resolution and a finite B-factor, got "
            f"{resolution_angstrom} Å and {apply_bfactor_angstrom2} Å²"
        )
    spectrum, box, radius = spectrum_and_radius(volume, torch.float32)
    extent = box * pixel_size_angstrom
    spectrum.mul_(
        sharpening_factor(radius, extent / resolution_angstrom, apply_bfactor_angstrom2 / extent**2)
    )
    return torch.fft.irfftn(spectrum, s=(box, box, box)).numpy()


def sharpening_factor(radius: torch.Tensor, cut: float, bfactor_shells2: float) -> torch.Tensor:
    """:func:`sharpen`'s factor at frequencies ``radius`` (shells): ``exp(−B s² / 4)``, its
    boost capped where the low-pass ends (no factor overflows past it), times the raised cosine
    from ``cut`` (shells) over :data:`FILTER_EDGE_SHELLS`; ``bfactor_shells2`` is ``B_apply``
    over the box's side squared (``s`` in shells)."""
    factor = radius.clamp(max=cut + FILTER_EDGE_SHELLS).square_()
    factor.mul_(-0.25 * bfactor_shells2).exp_()
    return factor.mul_(soft_edge(radius - cut, FILTER_EDGE_SHELLS))


def guinier_plot(
    map_volume: ArrayLike,
    sharpened: ArrayLike,
    pixel_size_angstrom: float,
    fit: GuinierFit | None = None,
) -> LinePlot:
    """The Guinier plot of a sharpening, as ``relion_postprocess`` draws it: ``ln`` of the mean
    amplitude per shell against ``s²`` (1/Å²) for the map and the sharpened map, with the fitted
    line over its band (``fit``, if the B-factor was fitted). Shells with no amplitude (past the
    low-pass) leave a gap."""
    frequency, before = shell_amplitudes(map_volume, pixel_size_angstrom)
    _, after = shell_amplitudes(sharpened, pixel_size_angstrom)
    s2 = frequency**2

    def log(amplitude: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            out = np.log(amplitude)
        out[~np.isfinite(out) | (amplitude < 1e-6 * amplitude[1:].max())] = np.nan
        out[0] = np.nan  # the mean: no fall-off
        return out

    curves = [Curve("map", log(before)), Curve("sharpened", log(after))]
    if fit is not None:
        band = _band(frequency, fit.low_resolution_angstrom, fit.high_resolution_angstrom)
        line = np.where(band, fit.intercept - 0.25 * fit.bfactor_angstrom2 * s2, np.nan)
        curves.append(Curve(f"fit: B = {fit.bfactor_angstrom2:.1f} Å²", line, style="--"))
    values = np.concatenate([c.y[np.isfinite(c.y)] for c in curves])
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    pad = 0.05 * max(high - low, 1e-6)
    return LinePlot(
        x=s2,
        curves=curves,
        xlim=(0.0, float(s2[-1])),
        ylim=(low - pad, high + pad),
        title="Guinier plot",
        xlabel="s² (1/Å²)",
        ylabel="ln(mean amplitude)",
    )
