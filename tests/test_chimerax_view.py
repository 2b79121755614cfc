"""``chimerax.cxc``: the map's surface at the molecule's level, coloured by local resolution."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.io.mrc import read_map
from cryosplat.reconstruct.chimerax_view import (
    LOCAL_RESOLUTION_PALETTE,
    surface_level,
    write_view_script,
)
from cryosplat.reconstruct.run_folder import VIEW_FILE
from cryosplat.validation.masks import molecule_core

PIXEL = 3.0


def _ball_map(box: int = 40, radius: float = 8.0, seed: int = 0) -> np.ndarray:
    """A ball of density 1 (radius in voxels) in noise of s.d. 0.05."""
    k = np.arange(box) - box // 2
    r2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2
    rng = np.random.default_rng(seed)
    return (r2 <= radius**2).astype(np.float64) + 0.05 * rng.standard_normal((box,) * 3)


def test_the_level_encloses_the_molecules_core_and_scales_with_the_map():
    volume = _ball_map()
    level = surface_level(volume, PIXEL)
    core = int(molecule_core(volume, PIXEL).sum())
    assert (volume >= level).sum() == core
    assert surface_level(7.0 * volume, PIXEL) == pytest.approx(7.0 * level, rel=1e-9)
    # a solvent of one value (a masked map): halfway to the molecule, not the whole box
    ball = (_ball_map() > 0.5).astype(np.float64)
    assert surface_level(ball, PIXEL) == pytest.approx(0.5)


def test_a_map_with_nothing_positive_gets_a_level_over_its_noise():
    volume = -np.abs(_ball_map())
    level = surface_level(volume, PIXEL)
    assert level == pytest.approx(volume.mean() + 3.0 * volume.std())
    with pytest.raises(ValueError, match="3-D map"):
        surface_level(np.zeros((4, 4)), PIXEL)


def test_the_script_opens_the_map_at_its_level_and_colours_it_finest_first(tmp_path):
    volume = _ball_map()
    path, level = write_view_script(tmp_path, volume, PIXEL, (6.5, 9.25))
    lines = path.read_text().splitlines()
    commands = [line for line in lines if not line.startswith("#")]
    assert commands[0] == "open map.mrc"
    assert float(commands[1].split("level ")[1]) == pytest.approx(level, rel=1e-5)
    assert level == surface_level(volume, PIXEL)
    assert commands[2:4] == ["open local_resolution.mrc", "volume #2 hide"]
    assert commands[4] == (
        f"color sample #1 map #2 palette {LOCAL_RESOLUTION_PALETTE} range 6.50,9.25"
    )
    assert LOCAL_RESOLUTION_PALETTE.startswith("blue") and commands[-1] == "view"
    uncoloured = write_view_script(tmp_path, volume, PIXEL, None)[0].read_text()
    assert "local_resolution" not in uncoloured and "color" not in uncoloured
    for bad in ((9.0, 6.0), (float("nan"), 6.0), (0.0, 6.0)):
        with pytest.raises(ValueError, match="local_percentiles_angstrom"):
            write_view_script(tmp_path, volume, PIXEL, bad)


def test_a_run_folder_holds_a_script_for_its_map_as_written(tiny_set, tmp_path):
    """The script names files the run wrote, at the level of ``map.mrc`` as written (its box and
    voxel), and colours by the local resolution's percentiles that ``fsc.json`` keeps."""
    out = tmp_path / "run"
    steps = ["--stage-fractions", "0.5,1.0", "--stage-steps", "20,20", "--no-progress"]
    assert main(["reconstruct", str(tiny_set), "-o", str(out), *steps]) == 0
    commands = [
        line
        for line in (out / VIEW_FILE).read_text().splitlines()
        if line and not line.startswith("#")
    ]
    for line in commands:
        if line.startswith("open "):
            assert (out / line.split(" ", 1)[1]).is_file(), line
    volume, voxel = read_map(out / "map.mrc")
    level = float(next(c for c in commands if " level " in c).split("level ")[1])
    assert level == pytest.approx(surface_level(volume, voxel), rel=1e-5)
    low, _, high = json.loads((out / "fsc.json").read_text())["local_resolution"][
        "percentiles_5_50_95_angstrom"
    ]
    assert commands[-2].endswith(f"range {low:.2f},{max(high, low + 0.01):.2f}")
