"""Half models as the mean of several fits of the same half set (``--members``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryosplat.cli.main import main
from cryosplat.core.errors import InputError
from cryosplat.io.mrc import read_map
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid import engine as grid_engine
from cryosplat.reconstruct.grid.engine import MEMBER_SEED_STRIDE, GridEngineConfig
from cryosplat.reconstruct.grid.fit import GridFitConfig
from cryosplat.reconstruct.run import ReconstructConfig, reconstruct

BOX, PIXEL = 24, 4.0


def _config(members: int, keep: bool = False, member_stages: int = 2) -> ReconstructConfig:
    """Three stages; with ``member_stages`` 1 the members share the first two."""
    fit = GridFitConfig(stage_fractions=(0.5, 0.75, 1.0), stage_steps=(10, 6, 6))
    grid = GridEngineConfig(fit=fit, members=members, member_stages=member_stages)
    return ReconstructConfig(n_gaussians=60, seed=0, device="cpu", grid=grid, keep_checkpoints=keep)


def _model(seed: int, signed: bool = False) -> GaussianModel:
    model = GaussianModel.random(30, BOX, PIXEL, seed=seed, radius_fraction=0.3)
    if not signed:
        return model
    amplitudes = model.amplitudes.detach().clone()
    amplitudes[:5] *= -1.0
    return GaussianModel(
        model.means, model.scales, model.quaternions, amplitudes, BOX, PIXEL, signed=True
    )


def test_the_average_model_voxelises_to_the_mean_of_the_maps():
    models = [_model(1), _model(2, signed=True), _model(3)]
    mean = GaussianModel.average(models)
    assert len(mean) == 90 and mean.signed
    with torch.no_grad():
        expected = sum(m.voxelize() for m in models) / 3
        got = mean.voxelize()
    assert torch.allclose(got, expected, atol=1e-6 * float(expected.abs().max()))
    assert GaussianModel.average(models[:1]) is models[0]


def test_the_average_refuses_models_of_different_grids():
    other = GaussianModel.random(30, BOX + 2, PIXEL, seed=1)
    with pytest.raises(ValueError, match="box 26"):
        GaussianModel.average([_model(1), other])
    with pytest.raises(ValueError, match="no models"):
        GaussianModel.average([])


def test_the_first_member_is_the_one_member_fit_and_the_half_model_their_mean(tiny_set, tmp_path):
    particles = read_particles(tiny_set)
    reconstruct(particles, tmp_path / "one", _config(1), show_progress=False)
    reconstruct(
        particles, tmp_path / "two", _config(2, keep=True, member_stages=3), show_progress=False
    )
    for half in "AB":
        one = GaussianModel.load(tmp_path / "one" / f"model_{half}.npz")
        two = GaussianModel.load(tmp_path / "two" / f"model_{half}.npz")
        n = len(one)
        assert len(two) == 2 * n
        torch.testing.assert_close(two.means[:n], one.means)
        torch.testing.assert_close(two.amplitudes[:n] * 2, one.amplitudes)
        # the second member started elsewhere and is checkpointed beside the first
        assert not torch.allclose(two.means[n:], one.means)
        last = tmp_path / "two" / "checkpoints" / f"grid_stage2_{half}_member2.npz"
        second = GaussianModel.load(last)
        torch.testing.assert_close(two.means[n:], second.means)
    a, _ = read_map(tmp_path / "two" / "map.mrc")
    assert np.isfinite(a).all() and a.std() > 0


class _Recorder:
    """Wraps the engine's ``fit_gaussians``: the seed and starting model of every call."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[tuple[int, GaussianModel | None]] = []
        self.real = grid_engine.fit_gaussians
        monkeypatch.setattr(grid_engine, "fit_gaussians", self)

    def __call__(self, stats, config, *args, model=None, **kwargs):
        self.calls.append((config.seed, model))
        return self.real(stats, config, *args, model=model, **kwargs)


def test_members_fit_the_last_stages_on_their_own_from_a_shared_start(
    tiny_set, tmp_path, monkeypatch
):
    particles = read_particles(tiny_set)
    calls = _Recorder(monkeypatch).calls
    out = tmp_path / "two"
    reconstruct(particles, out, _config(2, keep=True, member_stages=1), show_progress=False)
    ck = out / "checkpoints"
    # two stages fitted once per half, the last twice
    assert [seed for seed, _ in calls].count(1 + MEMBER_SEED_STRIDE) == 1
    assert len(calls) == 2 * 2 + 2 * 2
    for stage in (0, 1):
        assert not list(ck.glob(f"grid_stage{stage}_*_member2.npz"))
    for i, half in enumerate("AB"):
        shared = GaussianModel.load(ck / f"grid_stage1_{half}.npz")
        second = [model for seed, model in calls if seed == i + 1 + MEMBER_SEED_STRIDE]
        assert len(second) == 1  # member 2 started from member 1's second stage
        torch.testing.assert_close(second[0].means.cpu(), shared.means)
        first = GaussianModel.load(ck / f"grid_stage2_{half}.npz")
        other = GaussianModel.load(ck / f"grid_stage2_{half}_member2.npz")
        assert not torch.allclose(first.means, other.means)  # its own density-control draws
        model = GaussianModel.load(out / f"model_{half}.npz")
        torch.testing.assert_close(model.means, torch.cat([first.means, other.means]))


@pytest.mark.parametrize("member_stages", [1, 3])
def test_a_run_stopped_between_members_resumes_to_the_same_models(
    tiny_set, tmp_path, monkeypatch, member_stages
):
    particles = read_particles(tiny_set)
    config = _config(2, keep=True, member_stages=member_stages)
    full = tmp_path / "full"
    reconstruct(particles, full, config, show_progress=False)
    part = tmp_path / "part"
    reconstruct(particles, part, config, show_progress=False)
    # as if stopped after the first member of the last stage: its second member and the outputs gone
    for half in "AB":
        (part / "checkpoints" / f"grid_stage2_{half}_member2.npz").unlink()
    run = part / "run.json"
    run.write_text(run.read_text().replace('"status": "complete"', '"status": "running"'))
    for name in ("map.mrc", "model_A.npz", "model_B.npz"):
        (part / name).unlink()
    calls = _Recorder(monkeypatch).calls
    reconstruct(particles, part, config, show_progress=False, resume=True)
    # only the two missing second members were fitted again, each with its own seed
    assert sorted(seed for seed, _ in calls) == [1 + MEMBER_SEED_STRIDE, 2 + MEMBER_SEED_STRIDE]
    for half in "AB":
        a = GaussianModel.load(full / f"model_{half}.npz")
        b = GaussianModel.load(part / f"model_{half}.npz")
        torch.testing.assert_close(a.means, b.means)
        torch.testing.assert_close(a.amplitudes, b.amplitudes)


def test_members_out_of_range_are_refused():
    for members in (0, 17):
        with pytest.raises(InputError, match="members must be 1 to 16"):
            GridEngineConfig(members=members).validate()
    with pytest.raises(InputError, match="member_stages must be at least 1, got 0"):
        GridEngineConfig(members=2, member_stages=0).validate()


def test_member_stages_without_members_is_an_error(tiny_set, tmp_path, capsys):
    out = tmp_path / "x"
    code = main(["reconstruct", str(tiny_set), "-o", str(out), "--member-stages", "3"])
    assert code == 2
    assert "--member-stages 3 without --members" in capsys.readouterr().err
    assert not out.exists()


def test_members_with_the_per_image_engine_is_an_error(tiny_set, tmp_path, capsys):
    code = main(
        ["reconstruct", str(tiny_set), "-o", str(tmp_path / "x"), "--engine", "splat"]
        + ["--members", "2"]
    )
    assert code == 2
    assert "--members" in capsys.readouterr().err
