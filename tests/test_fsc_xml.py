"""``fsc.xml``: the curve the reported resolution is read from, in the EMDB's FSC XML, as a
half-map FSC read at 0.143 (where the cross-validated ``C_map`` reads 0.5)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from cryosplat.io.fsc_xml import write_fsc_xml
from cryosplat.validation.fsc import half_map_equivalent, resolution_at


def _read(path):
    root = ET.parse(path).getroot()
    x = np.array([float(c.find("x").text) for c in root.iter("coordinate")])
    y = np.array([float(c.find("y").text) for c in root.iter("coordinate")])
    return root, x, y


def test_the_half_map_equivalent_reads_0143_where_the_map_reads_05():
    assert half_map_equivalent(0.5) == pytest.approx(0.142857, abs=1e-6)
    np.testing.assert_allclose(half_map_equivalent([1.0, 0.0, -0.5]), [1.0, 0.0, -1 / 7])
    # C = sqrt(2F / (1 + F)) undone
    f = np.linspace(0.0, 1.0, 11)
    np.testing.assert_allclose(half_map_equivalent(np.sqrt(2 * f / (1 + f))), f, atol=1e-12)


def test_the_xml_holds_the_finite_shells_and_a_quoted_title(tmp_path):
    path = tmp_path / "fsc.xml"
    write_fsc_xml(path, [0.0, 0.1, 0.2], [1.0, 0.5, np.nan], 'a "title" & more')
    root, x, y = _read(path)
    assert root.tag == "fsc" and root.get("title") == 'a "title" & more'
    assert root.get("xaxis") == "Resolution (A-1)"
    assert root.get("yaxis") == "Correlation Coefficient"
    np.testing.assert_allclose(x, [0.0, 0.1]) and np.testing.assert_allclose(y, [1.0, 0.5])
    with pytest.raises(ValueError, match="differ in shape"):
        write_fsc_xml(path, [0.0], [1.0, 0.5], "t")


def test_a_run_writes_the_curve_of_its_reported_resolution(tiny_set, tmp_path):
    from cryosplat.cli.main import main

    out = tmp_path / "run"
    steps = ["--stage-fractions", "0.5,1.0", "--stage-steps", "20,20", "--no-progress"]
    assert main(["reconstruct", str(tiny_set), "-o", str(out), *steps]) == 0
    reported = json.loads((out / "fsc.json").read_text())["resolution_angstrom"]
    root, x, y = _read(out / "fsc.xml")
    assert "cross-validated" in root.get("title") and "0.143" in root.get("title")
    box = 2 * (len(x) - 1)
    pixel = 1.0 / (box * x[1])
    assert x[0] == 0.0 and np.all(np.diff(x) > 0)
    assert resolution_at(y, 0.143, box, pixel) == pytest.approx(reported, rel=0.03)
