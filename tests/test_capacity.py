"""The number of Gaussians the data ask for (cryosplat.reconstruct.grid.capacity)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.grid import capacity
from cryosplat.reconstruct.grid.capacity import (
    BITS_PER_GAUSSIAN,
    GAUSSIANS_CAP,
    MAX_FACTOR,
    data_information_bits,
    gaussians_for_data,
    most_gaussians_for_data,
)


def _curve(fsc_value: float, shells: int = 33, until: int = 33) -> np.ndarray:
    """A half-set FSC of ``fsc_value`` up to shell ``until``, 0 beyond; 1 at shell 0."""
    curve = np.zeros(shells)
    curve[:until] = fsc_value
    curve[0] = 1.0
    return curve


def test_bits_count_only_shells_where_the_signal_exceeds_the_noise():
    # FSC 0.34 is a full-set SSNR just over 1; 0.33 just under
    over = _curve(0.34, until=5)
    ssnr = 2 * 0.34 / 0.66
    first = np.log2(1 + 2 * 0.999 / 0.001)
    expected = sum(4 * math.pi * k**2 for k in range(1, 5)) * np.log2(1 + ssnr) + first
    assert data_information_bits(over) == pytest.approx(expected)
    assert data_information_bits(_curve(0.33, until=5)) == pytest.approx(first)
    # more signal, more bits; NaN and negative shells hold none
    assert data_information_bits(_curve(0.9)) > data_information_bits(_curve(0.6))
    noisy = _curve(0.9)
    noisy[10:] = [np.nan, -0.2] * 11 + [-0.2]
    assert data_information_bits(noisy) == pytest.approx(
        data_information_bits(_curve(0.9, until=10))
    )
    with pytest.raises(ValueError, match="one curve"):
        data_information_bits(np.zeros((2, 3)))


def test_gaussians_follow_the_information_between_the_default_and_the_cap():
    low = _curve(0.2)  # benchmark-like: nothing over SSNR 1 but the first shells
    assert gaussians_for_data(1200, low)[0] == 1200
    n, bits = gaussians_for_data(1200, _curve(0.9, until=12))
    assert n == round(bits / BITS_PER_GAUSSIAN, -2) and 1200 < n < MAX_FACTOR * 1200
    assert gaussians_for_data(1200, _curve(0.99))[0] == MAX_FACTOR * 1200
    assert most_gaussians_for_data(14_100) == GAUSSIANS_CAP  # the cap binds before the factor
    assert most_gaussians_for_data(30_000) == 30_000  # never under the default
    assert gaussians_for_data(30_000, _curve(0.99))[0] == 30_000
    with pytest.raises(ValueError, match="positive"):
        gaussians_for_data(0, low)


def test_reconstruct_raises_the_count_on_well_measured_data_unless_it_is_given(
    tiny_set, tmp_path, monkeypatch
):
    # tiny_set's 120 particles hold too little to ask for more than the default at box 24:
    # one bit per Gaussian stands in for better data
    assert (
        main(
            [
                "reconstruct",
                str(tiny_set),
                "--no-progress",
                "--stage-steps",
                "4,4,4,4",
                "-o",
                str(tmp_path / "plain"),
            ]
        )
        == 0
    )
    plain = json.loads((tmp_path / "plain" / "run.json").read_text())["summary"]["n_gaussians"]
    assert plain == [1000, 1000]
    monkeypatch.setattr(capacity, "BITS_PER_GAUSSIAN", 1.0)
    args = [str(tiny_set), "--no-progress", "--stage-fractions", "0.5,1.0"]
    args += ["--stage-steps", "4,4"]
    auto, given = tmp_path / "auto", tmp_path / "given"
    assert main(["reconstruct", *args, "-o", str(auto), "--keep-checkpoints"]) == 0
    assert main(["reconstruct", *args, "-o", str(given), "--n-gaussians", "1000"]) == 0
    n_auto = json.loads((auto / "run.json").read_text())["summary"]["n_gaussians"]
    n_given = json.loads((given / "run.json").read_text())["summary"]["n_gaussians"]
    assert n_given == [1000, 1000]
    assert n_auto[0] == n_auto[1] > 1000
    # The first stage fits the box's default; the last grows it to the data's count.
    checkpoints = auto / "checkpoints"
    assert len(GaussianModel.load(checkpoints / "grid_stage0_A.npz")) == 1000
    assert len(GaussianModel.load(checkpoints / "grid_stage1_B.npz")) == n_auto[1]
    # One stage: its random start holds the data's count.
    single = tmp_path / "single"
    one = [str(tiny_set), "--no-progress", "--stage-fractions", "1.0", "--stage-steps", "4"]
    assert main(["reconstruct", *one, "-o", str(single)]) == 0
    assert json.loads((single / "run.json").read_text())["summary"]["n_gaussians"] == n_auto
    assert "× the box's default 1000" in (auto / "log.txt").read_text()
    assert "the box's default" not in (given / "log.txt").read_text()
    planned = json.loads((auto / "config.json").read_text())["memory_plan"]
    assert planned["predicted_peak_bytes"] > 0
