"""The images' unit changes nothing but the map's: images times ``2**k`` give every map and model
times ``2**k`` to the bit, and the same resolution.

Images come in any unit (normalised to a noise s.d. of 1 by RELION, detector counts, a simulator's
potential): their scale is arbitrary and must not steer the fit. Powers of two are exact in
floating point, so a reconstruction that holds no absolute constant gives the same result to the
bit. Before the fit's loss was stated in units of the images' power, Adam's ``eps`` was one: at
``2**-20`` the fit hardly moved and the map was the data's inversion, silently.
"""

from __future__ import annotations

import json
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cryosplat.io.mrc import MRCStack, read_map, write_stack
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.engine import GridEngineConfig
from cryosplat.reconstruct.grid.fit import (
    WORKING_POWER,
    GridFitConfig,
    fit_gaussians,
    image_unit,
)
from cryosplat.reconstruct.grid.gather import accumulate
from cryosplat.reconstruct.run import ReconstructConfig, reconstruct
from cryosplat.reconstruct.splat.engine import SplatEngineConfig

FACTORS = (2.0**10, 2.0**-20)


def _scaled_copy(star: Path, factor: float, folder: Path) -> Path:
    """The folder of ``star`` copied to ``folder`` with every stack's pixels times ``factor``."""
    shutil.copytree(star.parent, folder)
    for path in folder.glob("*.mrcs"):
        stack = MRCStack(path)
        images = stack.read(np.arange(stack.n_images)) * np.float32(factor)
        write_stack(path, images, stack.pixel_size_angstrom)
    return folder / star.name


def _config() -> ReconstructConfig:
    fit = GridFitConfig(stage_fractions=(0.5, 1.0), stage_steps=(20, 12))
    return ReconstructConfig(n_gaussians=60, seed=0, device="cpu", grid=GridEngineConfig(fit=fit))


@pytest.fixture(scope="module")
def runs(tiny_set, tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    out = {}
    for factor in (1.0, *FACTORS):
        star = tiny_set if factor == 1.0 else _scaled_copy(tiny_set, factor, root / f"x{factor:g}")
        out[factor] = root / f"run{factor:g}"
        reconstruct(read_particles(star), out[factor], _config(), show_progress=False)
    return out


@pytest.mark.parametrize("factor", FACTORS)
def test_scaled_images_give_the_scaled_maps_to_the_bit(runs, factor):
    for name in ("map.mrc", "half_map_A.mrc", "half_map_B.mrc"):
        base, _ = read_map(runs[1.0] / name)
        scaled, _ = read_map(runs[factor] / name)
        assert np.array_equal(scaled / np.float32(factor), base), name
    for half in "AB":
        a = GaussianModel.load(runs[1.0] / f"model_{half}.npz")
        b = GaussianModel.load(runs[factor] / f"model_{half}.npz")
        assert torch.equal(a.means, b.means)
        assert torch.equal(b.amplitudes / factor, a.amplitudes)


@pytest.mark.parametrize("factor", FACTORS)
def test_scaled_images_report_the_same_resolution(runs, factor):
    base = json.loads((runs[1.0] / "fsc.json").read_text())
    scaled = json.loads((runs[factor] / "fsc.json").read_text())
    assert scaled["resolution_angstrom"] == base["resolution_angstrom"]


def test_the_fit_moves_as_far_on_statistics_of_tiny_images(tiny_set):
    """The fit alone, on statistics scaled as images times ``2**-20`` scale them: the same means
    (Adam's ``eps`` no larger, relative to the gradients, than at unit scale)."""
    stats = accumulate(read_particles(tiny_set))
    config = GridFitConfig(stage_fractions=(0.5, 1.0), stage_steps=(15, 10), n_gaussians=50)
    factor = 2.0**-20
    tiny = replace(stats, data=stats.data * factor, power=stats.power * factor**2)
    a = fit_gaussians(stats, config)
    b = fit_gaussians(tiny, config)
    assert torch.equal(a.means, b.means)
    assert torch.equal(b.amplitudes / factor, a.amplitudes)


def test_the_per_image_engine_gives_the_scaled_maps(tiny_set, tmp_path):
    """The per-image engine fits its images over a power of two read from their power
    (:func:`~cryosplat.reconstruct.grid.fit.image_unit`): the same fit at any scale, the models
    handed back in the images' unit (to float rounding: their amplitudes pass a softplus)."""
    config = ReconstructConfig(
        engine="splat", n_gaussians=60, seed=0, device="cpu", splat=SplatEngineConfig(epochs=2)
    )
    maps, losses = {}, {}
    for factor in (1.0, 2.0**-20):
        star = tiny_set if factor == 1.0 else _scaled_copy(tiny_set, factor, tmp_path / "x")
        out = tmp_path / f"run{factor:g}"
        reconstruct(read_particles(star), out, config, show_progress=False)
        maps[factor] = read_map(out / "map.mrc")[0] / np.float32(factor)
        history = json.loads((out / "run.json").read_text())["summary"]["history"]
        losses[factor] = np.array([record["loss"] for record in history]) / factor**2
    scale = np.abs(maps[1.0]).max()
    np.testing.assert_allclose(maps[2.0**-20], maps[1.0], rtol=0, atol=1e-5 * scale)
    # the epochs' losses as written: in the images' unit squared
    np.testing.assert_allclose(losses[2.0**-20], losses[1.0], rtol=1e-6)


def test_image_unit_is_the_power_of_two_nearest_the_working_power(tiny_set):
    stats = accumulate(read_particles(tiny_set))
    unit = image_unit([stats])
    assert math.log2(unit) == round(math.log2(unit))
    ratio = stats.power_per_pixel / unit**2 / WORKING_POWER
    assert 0.5 <= ratio <= 2.0
    scaled = replace(stats, data=stats.data * 2.0**-12, power=stats.power * 2.0**-24)
    assert image_unit([scaled]) == unit * 2.0**-12
