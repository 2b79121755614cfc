"""Resolution by direction: cones of Fourier samples, the coarsest direction where the data are
thin, agreement with the shell FSC, and refused input."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryosplat.model.gaussians import GaussianModel
from cryosplat.validation.conical import (
    conical_fsc,
    directional_resolution,
    half_sphere_directions,
)
from cryosplat.validation.fsc import fsc
from cryosplat.validation.masks import spherical_mask

BOX, PIXEL = 48, 2.0


@pytest.fixture(scope="module")
def truth() -> np.ndarray:
    model = GaussianModel.random(
        400, BOX, PIXEL, seed=1, radius_fraction=0.3, scale_angstrom=1.5, dtype=torch.float64
    )
    return model.voxelize().detach().numpy()


def _cone(cone_axis_zyx: int, degrees: float = 30.0) -> np.ndarray:
    """The real-FFT half grid's samples within ``degrees`` of one array axis (0: z)."""
    k = np.fft.fftfreq(BOX) * BOX
    grids = np.meshgrid(k, k, np.arange(BOX // 2 + 1), indexing="ij")
    radius = np.sqrt(sum(g * g for g in grids)) + 1e-9
    return np.abs(grids[cone_axis_zyx]) / radius > np.cos(np.radians(degrees))


def _filtered(volume, factor) -> np.ndarray:
    return np.fft.irfftn(factor * np.fft.rfftn(volume), s=volume.shape, axes=(0, 1, 2))


def _noisy(truth, seed: int, scale: float, cone_axis_zyx: int | None = None, boost: float = 1.0):
    """The truth plus white noise of ``scale`` × its s.d., ``boost`` times stronger on the
    Fourier samples within 30° of one array axis (0: z)."""
    noise = np.random.default_rng(seed).normal(size=truth.shape) * scale * truth.std()
    if cone_axis_zyx is not None:
        noise = _filtered(noise, np.where(_cone(cone_axis_zyx), boost, 1.0))
    return truth + noise


def test_directions_cover_the_half_sphere_evenly():
    d = half_sphere_directions(24)
    assert d.shape == (24, 3)
    assert np.allclose(np.linalg.norm(d, axis=1), 1.0) and np.all(d[:, 2] >= 0)
    assert np.allclose(d[0], [0, 0, 1])
    # Every direction of the half sphere lies within 30° of one of them (cones of 30° cover it).
    probe = half_sphere_directions(2000)
    nearest = np.max(np.abs(probe @ d.T), axis=1)
    assert np.degrees(np.arccos(nearest.min())) < 30


def test_identical_maps_correlate_fully_in_every_cone(truth):
    curves = conical_fsc(truth, truth, half_sphere_directions(6))
    assert np.allclose(curves[:, 1:], 1.0)


def test_a_cone_of_ninety_degrees_is_the_shell_fsc(truth):
    a, b = _noisy(truth, 2, 1.0), _noisy(truth, 3, 1.0)
    curve = conical_fsc(a, b, [[0.0, 0.0, 1.0]], half_angle_degrees=90.0, pool=0)[0]
    np.testing.assert_allclose(curve, fsc(a, b), atol=1e-10)


def test_the_coarsest_direction_is_where_the_data_are_thin(truth):
    """Noise ten times stronger within 30° of z: the data resolve z coarsest, by far; with even
    noise every direction reads alike (the crossings inside the curve: 4.7-5.4 Å)."""
    mask = spherical_mask(BOX)
    even = directional_resolution(_noisy(truth, 4, 3.0), _noisy(truth, 5, 3.0), PIXEL, mask)
    assert (
        2.0 * PIXEL < even.finest_angstrom and even.coarsest_angstrom < 1.25 * even.finest_angstrom
    )
    thin = directional_resolution(
        _noisy(truth, 4, 3.0, 0, 10.0), _noisy(truth, 5, 3.0, 0, 10.0), PIXEL, mask
    )
    assert thin.coarsest_angstrom > 2.0 * thin.finest_angstrom
    assert np.all(thin.empty_from_shell < 0)  # noisy there, not empty
    assert abs(thin.coarsest_direction[2]) > np.cos(np.radians(30))  # (x, y, z): about z
    assert abs(thin.finest_direction[2]) < np.cos(np.radians(45))
    written = thin.to_dict()
    assert written["coarsest_angstrom"] == thin.coarsest_angstrom
    assert len(written["resolution_angstrom"]) == len(written["directions_xyz"]) == 24


def test_a_direction_no_view_samples_holds_nothing(truth):
    """Data with nothing within 40° of z but the same faint leak of the truth in both halves (as
    the gridding correction leaves where no view samples): the cone's FSC is high, yet z is read
    as holding nothing past the first shells."""
    empty = _cone(0, 40.0)
    halves = [
        _filtered(_noisy(truth, seed, 1.0), np.where(empty, 0.0, 1.0))
        + _filtered(truth, np.where(empty, 1e-3, 0.0))
        for seed in (8, 9)
    ]
    assert conical_fsc(*halves, [[0, 0, 1]])[0, 1:].min() > 0.99  # the leak agrees
    read = directional_resolution(*halves, PIXEL)
    assert read.resolutions_angstrom[0] > BOX * PIXEL / 3  # z: nothing past shell 3
    assert abs(read.coarsest_direction[2]) > np.cos(np.radians(20))
    assert read.finest_angstrom < 3 * PIXEL
    assert 0 < read.empty_from_shell[0] <= 4
    unsampled = read.unsampled_directions
    assert len(unsampled) >= 1 and np.all(np.abs(unsampled[:, 2]) > np.cos(np.radians(40)))


def test_the_report_warns_where_the_data_hold_nothing(truth, tmp_path):
    """The run's warnings say so where a direction holds nothing of the data, and not where
    every direction holds something."""
    from cryosplat.reconstruct.engine_result import EngineResult
    from cryosplat.reconstruct.report import write_outputs

    model = GaussianModel.random(
        400, BOX, PIXEL, seed=1, radius_fraction=0.3, scale_angstrom=1.5, dtype=torch.float64
    )
    empty = _cone(0, 40.0)
    for hole, expected in ((True, True), (False, False)):
        data = [
            _filtered(_noisy(truth, seed, 1.0), np.where(empty & hole, 0.0, 1.0))
            + _filtered(truth, np.where(empty & hole, 1e-3, 0.0))
            for seed in (8, 9)
        ]
        result = EngineResult((model, model), data_maps=tuple(data))
        report, _ = write_outputs(tmp_path / str(hole), result)
        assert any("hold nothing" in w for w in report.warnings) == expected


def test_bad_cones_are_refused(truth):
    with pytest.raises(ValueError, match="half_angle_degrees"):
        conical_fsc(truth, truth, [[0, 0, 1]], half_angle_degrees=0.0)
    with pytest.raises(ValueError, match="non-zero"):
        conical_fsc(truth, truth, [[0, 0, 0]])
    with pytest.raises(ValueError, match="at least 1"):
        half_sphere_directions(0)
    with pytest.raises(ValueError, match="cubes"):
        conical_fsc(truth, truth[:-1], [[0, 0, 1]])


def test_the_unsampled_warning_reads_a_direction_empty_from_the_first_shell():
    """A cone empty from shell 1 reads no resolution at all (infinite): the warning says so,
    where it said "nothing finer than none"."""
    from cryosplat.reconstruct.report import _unsampled_warnings
    from cryosplat.validation.conical import DirectionalResolution

    directions = np.eye(3)
    curves = np.array([[1.0, 0.9, 0.5, 0.1], [1.0, 0.95, 0.6, 0.2], [1.0, -1.0, -1.0, -1.0]])
    empty = np.array([-1, -1, 1])
    resolutions = np.array([20.0, 18.0, np.inf])
    directional = DirectionalResolution(directions, resolutions, 30.0, curves, empty)
    (warning,) = _unsampled_warnings(directional, 20.0)
    assert "1 of 3 directions (along (0.00, 0.00, 1.00) nothing from the first shell on)" in warning
    directional.resolutions_angstrom = np.array([20.0, 18.0, 82.5])
    (warning,) = _unsampled_warnings(directional, 20.0)
    assert "nothing finer than 82.50 Å" in warning
