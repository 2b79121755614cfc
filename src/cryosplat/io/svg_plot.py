"""Line plots written as SVG text: the FSC plot of every run, without a plotting library.

An SVG is a vector image that browsers, Jupyter, Inkscape and office programs open; writing it
directly costs a few milliseconds, where importing and drawing with matplotlib cost about half a
second of every run (EMD-5625, box 56, 2 CPUs: the whole ``cryosplat reconstruct`` 5.8-6.1 s
with matplotlib, 5.3-5.6 s with this; ``relion_reconstruct --ctf`` 1.9 s).

The plot is a :class:`LinePlot`: curves (:class:`Curve`) over one x axis, optional horizontal
reference lines, a legend in the upper right corner, and optionally a second x axis on top
whose tick labels are ``1/x`` (resolution in Å over spatial frequency in 1/Å).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np

from cryosplat.io.atomic import atomic_path

__all__ = ["Curve", "LinePlot", "nice_ticks", "svg_text", "write_svg"]

# matplotlib's default colour cycle ("tab10"), so the plots look as users expect.
COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2")
DASHES = {"-": None, "--": "6,3", ":": "1.5,2.5", "-.": "6,3,1.5,3"}

WIDTH, HEIGHT = 760, 480
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 78, 52  # margins in px


@dataclass(frozen=True)
class Curve:
    """One line: ``y`` against the plot's ``x`` (same length); NaN values leave a gap.

    ``style`` is ``"-"``, ``"--"``, ``":"`` or ``"-."``; ``width`` in px.
    """

    label: str
    y: np.ndarray
    style: str = "-"
    width: float = 1.2

    def __post_init__(self) -> None:
        if self.style not in DASHES:
            raise ValueError(f"style must be one of {sorted(DASHES)}, got {self.style!r}")


@dataclass
class LinePlot:
    """What :func:`svg_text` draws.

    Attributes
    ----------
    x : np.ndarray, shape (N,)
    curves : list of Curve
    xlim, ylim : tuple of float
        Axis ranges (low < high).
    title, xlabel, ylabel : str
    hlines : list of (float, str)
        Horizontal reference lines: value and a label written at the right end ("" for none).
    top_reciprocal_label : str or None
        If given, a second x axis on top whose tick labels are ``1/x`` at the bottom axis's ticks.
    """

    x: np.ndarray
    curves: list[Curve]
    xlim: tuple[float, float]
    ylim: tuple[float, float]
    title: str = ""
    xlabel: str = ""
    ylabel: str = ""
    hlines: list[tuple[float, str]] = field(default_factory=list)
    top_reciprocal_label: str | None = None

    def validate(self) -> None:
        n = len(self.x)
        for curve in self.curves:
            if len(curve.y) != n:
                raise ValueError(f"curve {curve.label!r} has {len(curve.y)} values, x has {n}")
        for name, (lo, hi) in (("xlim", self.xlim), ("ylim", self.ylim)):
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise ValueError(f"{name} must be finite with low < high, got {(lo, hi)}")


def nice_ticks(lo: float, hi: float, target: int = 6) -> list[float]:
    """About ``target`` round tick values (steps of 1, 2, 2.5 or 5 × 10^k) within ``[lo, hi]``."""
    if not lo < hi:
        raise ValueError(f"tick range must have low < high, got {(lo, hi)}")
    raw = (hi - lo) / max(target, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1.0, 2.0, 2.5, 5.0, 10.0) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    ticks = []
    k = first
    while k * step <= hi + 1e-9 * step:
        ticks.append(round(k * step, 12))
        k += 1
    return ticks


def _fmt(value: float) -> str:
    return f"{value:.3g}"


class _Frame:
    """Data coordinates to pixels."""

    def __init__(self, plot: LinePlot) -> None:
        self.x0, self.x1 = plot.xlim
        self.y0, self.y1 = plot.ylim
        self.w = WIDTH - LEFT - RIGHT
        self.h = HEIGHT - TOP - BOTTOM

    def px(self, x: float) -> float:
        return LEFT + (x - self.x0) / (self.x1 - self.x0) * self.w

    def py(self, y: float) -> float:
        return TOP + (self.y1 - y) / (self.y1 - self.y0) * self.h


def _text(x: float, y: float, text: str, size: int = 12, anchor: str = "middle", extra: str = ""):
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}"{extra}>'
        f"{escape(text)}</text>"
    )


def _polylines(frame: _Frame, x: np.ndarray, curve: Curve, colour: str) -> list[str]:
    """One polyline per run of finite values, clipped to the plot by the clip path."""
    y = np.asarray(curve.y, dtype=float)
    dash = DASHES[curve.style]
    style = f'fill="none" stroke="{colour}" stroke-width="{curve.width}"'
    if dash:
        style += f' stroke-dasharray="{dash}"'
    out, run = [], []
    for xi, yi in zip(np.asarray(x, dtype=float), y, strict=True):
        if math.isfinite(xi) and math.isfinite(yi):
            run.append(f"{frame.px(xi):.2f},{frame.py(yi):.2f}")
        elif run:
            out.append(run)
            run = []
    if run:
        out.append(run)
    return [f'<polyline points="{" ".join(r)}" {style} clip-path="url(#area)"/>' for r in out]


def _axes(plot: LinePlot, frame: _Frame) -> list[str]:
    bottom, top = TOP + frame.h, TOP
    parts = [
        f'<rect x="{LEFT}" y="{TOP}" width="{frame.w}" height="{frame.h}" fill="none" '
        'stroke="black" stroke-width="1"/>'
    ]
    xticks = [t for t in nice_ticks(*plot.xlim) if plot.xlim[0] <= t <= plot.xlim[1]]
    for t in xticks:
        x = frame.px(t)
        parts.append(
            f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="black"/>'
        )
        parts.append(_text(x, bottom + 18, _fmt(t), 11))
        if plot.top_reciprocal_label is not None and t > 0:
            parts.append(
                f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{top - 5}" stroke="black"/>'
            )
            parts.append(_text(x, top - 9, _fmt(1.0 / t), 11))
    for t in nice_ticks(*plot.ylim):
        y = frame.py(t)
        parts.append(
            f'<line x1="{LEFT - 5}" y1="{y:.1f}" x2="{LEFT}" y2="{y:.1f}" stroke="black"/>'
        )
        parts.append(_text(LEFT - 8, y + 4, _fmt(t), 11, "end"))
    parts.append(_text(LEFT + frame.w / 2, HEIGHT - 10, plot.xlabel))
    ycentre = TOP + frame.h / 2
    parts.append(
        _text(16, ycentre, plot.ylabel, extra=f' transform="rotate(-90 16 {ycentre:.1f})"')
    )
    if plot.top_reciprocal_label is not None:
        parts.append(_text(LEFT + frame.w / 2, top - 26, plot.top_reciprocal_label))
    if plot.title:
        parts.append(_text(WIDTH / 2, 18, plot.title, 13))
    return parts


def _legend(plot: LinePlot) -> list[str]:
    if not plot.curves:
        return []
    width = 16 + 6.2 * max(len(c.label) for c in plot.curves) + 34
    x = WIDTH - RIGHT - width - 6
    y = TOP + 6
    parts = [
        f'<rect x="{x:.1f}" y="{y}" width="{width:.1f}" height="{16 * len(plot.curves) + 8}" '
        'fill="white" fill-opacity="0.85" stroke="#cccccc"/>'
    ]
    for i, curve in enumerate(plot.curves):
        row = y + 14 + 16 * i
        dash = DASHES[curve.style]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        colour = COLOURS[i % len(COLOURS)]
        parts.append(
            f'<line x1="{x + 8:.1f}" y1="{row - 4}" x2="{x + 36:.1f}" y2="{row - 4}" '
            f'stroke="{colour}" stroke-width="{curve.width}"{dash_attr}/>'
        )
        parts.append(_text(x + 42, row, curve.label, 10, "start"))
    return parts


def svg_text(plot: LinePlot) -> str:
    """The plot as a standalone SVG document (``WIDTH × HEIGHT`` px)."""
    plot.validate()
    frame = _Frame(plot)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="DejaVu Sans, Arial, sans-serif">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<clipPath id="area"><rect x="{LEFT}" y="{TOP}" width="{frame.w}" '
        f'height="{frame.h}"/></clipPath>',
    ]
    for value, label in plot.hlines:
        if plot.ylim[0] <= value <= plot.ylim[1]:
            y = frame.py(value)
            parts.append(
                f'<line x1="{LEFT}" y1="{y:.2f}" x2="{LEFT + frame.w}" y2="{y:.2f}" '
                'stroke="grey" stroke-width="0.8"/>'
            )
            if label:
                parts.append(_text(LEFT + frame.w - 4, y - 4, label, 10, "end", ' fill="grey"'))
    for i, curve in enumerate(plot.curves):
        parts += _polylines(frame, plot.x, curve, COLOURS[i % len(COLOURS)])
    parts += _axes(plot, frame)
    parts += _legend(plot)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def write_svg(path: str | Path, plot: LinePlot) -> None:
    """Write :func:`svg_text` of ``plot`` to ``path``, atomically."""
    text = svg_text(plot)
    with atomic_path(path, suffix=".svg") as tmp:
        tmp.write_text(text, encoding="utf-8")
