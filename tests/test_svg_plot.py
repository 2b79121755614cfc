"""The SVG line plot of every run's FSC: valid XML, data placed where the axes say, bad input refused."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from cryosplat.io.svg_plot import Curve, LinePlot, nice_ticks, svg_text, write_svg

NS = {"svg": "http://www.w3.org/2000/svg"}


def _plot(**changes) -> LinePlot:
    x = np.linspace(0.0, 0.12, 29)
    values = dict(
        x=x,
        curves=[
            Curve("falls", np.exp(-((x / 0.05) ** 2))),
            Curve("flat at one half", np.full_like(x, 0.5), "--"),
        ],
        xlim=(0.0, 0.12),
        ylim=(-0.1, 1.05),
        title="Resolution 19.29 Å",
        xlabel="spatial frequency (1/Å)",
        ylabel="FSC",
        hlines=[(0.143, "0.143"), (0.5, "0.5")],
        top_reciprocal_label="resolution (Å)",
    )
    values.update(changes)
    return LinePlot(**values)


def _points(polyline) -> np.ndarray:
    return np.array([[float(v) for v in p.split(",")] for p in polyline.get("points").split()])


def test_nice_ticks_are_round_and_inside():
    assert nice_ticks(0.0, 0.118) == pytest.approx([0.0, 0.02, 0.04, 0.06, 0.08, 0.1])
    ticks = nice_ticks(-0.1, 1.05)
    assert ticks[0] >= -0.1 and ticks[-1] <= 1.05 and 0.0 in ticks and 1.0 in ticks
    assert np.allclose(np.diff(ticks), ticks[1] - ticks[0])
    with pytest.raises(ValueError, match="low < high"):
        nice_ticks(1.0, 1.0)


def test_svg_is_xml_with_one_polyline_per_curve_and_the_labels():
    root = ET.fromstring(svg_text(_plot()))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(root.findall("svg:polyline", NS)) == 2
    texts = [t.text for t in root.findall("svg:text", NS)]
    for label in ("Resolution 19.29 Å", "FSC", "falls", "flat at one half", "resolution (Å)"):
        assert label in texts
    # The top axis labels the bottom axis's ticks by their reciprocals: 0.02 1/Å is 50 Å.
    assert "0.02" in texts and "50" in texts and "25" in texts


def test_data_land_where_the_axes_say():
    root = ET.fromstring(svg_text(_plot()))
    falls, flat = (_points(p) for p in root.findall("svg:polyline", NS))
    lines = root.findall("svg:line", NS)
    half = [ln for ln in lines if ln.get("stroke") == "grey"]
    y_half = sorted(float(ln.get("y1")) for ln in half)[0]  # 0.5 lies above 0.143 on screen
    assert np.allclose(flat[:, 1], y_half, atol=0.01)
    # x is linear in the frequency; y(1) lies above y(0.5), and the curve falls left to right.
    assert np.allclose(np.diff(falls[:, 0], 2), 0.0, atol=0.02)
    assert falls[0, 1] < y_half < falls[-1, 1]
    assert np.all(np.diff(falls[:, 1]) >= -1e-9)


def test_nan_values_break_the_line():
    y = np.linspace(1.0, 0.0, 29)
    y[10] = np.nan
    root = ET.fromstring(svg_text(_plot(curves=[Curve("gap", y)])))
    runs = [_points(p) for p in root.findall("svg:polyline", NS)]
    assert [len(r) for r in runs] == [10, 18]


def test_labels_are_escaped(tmp_path):
    path = tmp_path / "plot.svg"
    write_svg(path, _plot(title="a < b & c"))
    root = ET.fromstring(path.read_text(encoding="utf-8"))
    assert "a < b & c" in [t.text for t in root.findall("svg:text", NS)]
    assert [p.name for p in tmp_path.iterdir()] == ["plot.svg"]  # no temporary file left


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="'short' has 3 values, x has 29"):
        svg_text(_plot(curves=[Curve("short", np.zeros(3))]))
    with pytest.raises(ValueError, match="ylim"):
        svg_text(_plot(ylim=(1.0, 0.0)))
    with pytest.raises(ValueError, match="style"):
        Curve("x", np.zeros(3), "~")
