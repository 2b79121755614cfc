"""The gridded Fourier loss against per-image losses, and the coarse-to-fine Gaussian fit."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from test_statistics import simulate_particles

from cryosplat.core.ctf import ctf_from_params
from cryosplat.core.errors import InputError
from cryosplat.core.fourier import fft2_centered, phase_shift_2d
from cryosplat.core.fourier_slice import extract_slices
from cryosplat.core.padded_transform import volume_to_padded_ft
from cryosplat.io.mrc import MRCStack, write_stack
from cryosplat.model.gaussians import GaussianModel
from cryosplat.reconstruct.grid.fit import (
    GridFitConfig,
    GridLoss,
    fit_gaussians,
    gridded_loss,
    stage_boxes,
)
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.validation.fsc import fsc, resolution_at

BOX, PIXEL = 24, 3.0


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return simulate_particles(
        tmp_path_factory.mktemp("gridfit"), n=80, box=BOX, pixel=PIXEL, noise=1.0, seed=0
    )


def _perturbed(model: GaussianModel, seed: int) -> GaussianModel:
    rng = np.random.default_rng(seed)
    with torch.no_grad():
        jitter = torch.tensor(rng.normal(scale=1.5, size=tuple(model.means.shape)))
        return GaussianModel(
            model.means + jitter,
            model.scales * 1.2,
            model.quaternions,
            model.amplitudes * 0.9,
            model.box,
            model.pixel_size_angstrom,
        )


def _shift_corrected_spectra(particles) -> torch.Tensor:
    rows = np.arange(len(particles))
    images = torch.from_numpy(particles.read_images(rows)).double()
    return phase_shift_2d(fft2_centered(images), -torch.tensor(particles.shifts_angstrom), PIXEL)


def _disc(radius: float) -> torch.Tensor:
    k = torch.arange(BOX) - BOX // 2
    return (k[:, None] ** 2 + k[None, :] ** 2) <= radius**2


def _slice_loss_agreement(particles, maps, pad: int) -> dict[str, float]:
    """Per-image loss with trilinear slices of the same padded transform vs the gridded loss."""
    stats = accumulate(particles, config=AccumulateConfig(pad=pad))
    spectra = _shift_corrected_spectra(particles)
    ctf = ctf_from_params(particles.ctf, BOX, PIXEL, dtype=torch.float64)
    inside = _disc(stats.max_radius)
    rotations = torch.tensor(particles.rotations)
    grid_loss = GridLoss(stats, gridding_correction=False, dtype=torch.float64)
    values, grads = [], []
    for volume in maps:
        a = volume.clone().requires_grad_(True)
        b = volume.clone().requires_grad_(True)
        slices = extract_slices(
            volume_to_padded_ft(a, pad, PIXEL), rotations, BOX, pad, stats.max_radius
        )
        per_image = ((slices * ctf - spectra).abs() ** 2)[:, inside].sum() / BOX**2
        per_image.backward()
        gridded = grid_loss(b)
        gridded.backward()
        values.append((float(per_image.detach()), float(gridded.detach())))
        grads.append((a.grad.flatten(), b.grad.flatten()))
    (i1, g1), (i2, g2) = values
    ga, gb = grads[1]
    return {
        "loss": abs(g1 - i1) / i1,
        "difference": abs((g1 - g2) - (i1 - i2)) / abs(i1 - i2),
        "gradient": float((ga - gb).norm() / ga.norm()),
        "cosine": float(torch.nn.functional.cosine_similarity(ga, gb, dim=0)),
    }


def test_gridded_loss_matches_per_image_slice_loss(dataset):
    """Gridding error of the loss and its gradient, against Fourier-slice predictions.

    Tolerances at padding 2 (measured: loss 8 %, loss difference 24 %, gradient 16 %, cosine 0.987
    for this small map filling most of its box) and the error falling like 1/pad² at padding 4.
    """
    particles, truth, model = dataset
    with torch.no_grad():
        maps = [torch.from_numpy(truth), _perturbed(model, 2).voxelize()]
    pad2 = _slice_loss_agreement(particles, maps, 2)
    assert pad2["loss"] < 0.12
    assert pad2["difference"] < 0.35
    assert pad2["gradient"] < 0.25
    assert pad2["cosine"] > 0.97
    pad4 = _slice_loss_agreement(particles, maps, 4)
    for key in ("loss", "difference", "gradient"):
        assert pad4[key] < 0.4 * pad2[key]


def test_gridded_loss_matches_per_image_splat_loss(tmp_path):
    """Against images rendered by splatting: loss within 10 %, parameter gradients aligned.

    Measured: loss 6 %, gradients of means / raw scales / raw amplitudes within 8 % (cosine
    ≥ 0.997); the residual is the gridding error plus the voxelisation of the model.
    """
    imaging = pytest.importorskip("cryosplat.render.imaging")

    particles, _, truth = simulate_particles(tmp_path, n=80, box=BOX, pixel=PIXEL, seed=3)
    ctf = ctf_from_params(particles.ctf, BOX, PIXEL, dtype=torch.float64)
    rng = np.random.default_rng(5)
    with torch.no_grad():
        clean = imaging.predict_images(truth, particles.rotations, particles.shifts_angstrom, ctf)
    images = clean.numpy() + rng.normal(scale=float(clean.std()), size=tuple(clean.shape))
    write_stack(tmp_path / "splat.mrcs", images, PIXEL)
    particles.stacks = [MRCStack(tmp_path / "splat.mrcs")]
    stats = accumulate(particles)
    model = GaussianModel.random(
        60, BOX, PIXEL, seed=9, radius_fraction=0.22, scale_angstrom=4.0, dtype=torch.float64
    )
    params = [model.means, model.raw_scales, model.raw_amplitudes]
    predicted = fft2_centered(
        imaging.predict_images(model, particles.rotations, particles.shifts_angstrom, ctf)
    )
    inside = _disc(stats.max_radius)
    per_image = ((predicted - fft2_centered(torch.from_numpy(images))).abs() ** 2)[:, inside].sum()
    per_image = per_image / BOX**2
    g_image = torch.autograd.grad(per_image, params)
    gridded = gridded_loss(model, stats)
    g_grid = torch.autograd.grad(gridded, params)
    assert abs(float(gridded.detach()) - float(per_image.detach())) < 0.10 * float(
        per_image.detach()
    )
    for a, b in zip(g_image, g_grid, strict=True):
        assert float((a - b).norm() / a.norm()) < 0.12
        assert float(torch.nn.functional.cosine_similarity(a.flatten(), b.flatten(), dim=0)) > 0.995


def test_fit_reaches_good_fsc_to_the_truth(tmp_path):
    box, pixel, n = 32, 2.5, 600
    particles, truth, _ = simulate_particles(
        tmp_path, n=n, box=box, pixel=pixel, noise=2.0, seed=7, n_gaussians=80
    )
    half_a = accumulate(particles, np.arange(0, n, 2))
    half_b = accumulate(particles, np.arange(1, n, 2))
    model = fit_gaussians(half_a, GridFitConfig(n_gaussians=300, seed=1), heldout=half_b)
    assert (model.box, model.pixel_size_angstrom) == (box, pixel)
    with torch.no_grad():
        fitted = model.voxelize().double().numpy()
    fitted_res = resolution_at(fsc(fitted, truth), 0.5, box, pixel)
    wiener_res = resolution_at(fsc(half_a.reconstruct_wiener().numpy(), truth), 0.5, box, pixel)
    assert fitted_res < 10.0  # measured 9.2 Å; the simulated signal fades beyond ~8 Å
    assert fitted_res < wiener_res
    scale = float((fitted * truth).sum() / (truth * truth).sum())
    assert 0.7 < scale < 1.3


def test_stopping_rule_and_callbacks(dataset):
    particles = dataset[0]
    half_a = accumulate(particles, np.arange(0, 80, 2))
    half_b = accumulate(particles, np.arange(1, 80, 2))
    config = GridFitConfig(
        n_gaussians=100,
        stage_fractions=(0.5,),
        stage_steps=(400,),
        check_every=5,
        patience=2,
        seed=2,
    )
    steps, checks = [], []
    fit_gaussians(
        half_a,
        config,
        heldout=half_b,
        progress=lambda done, total: steps.append((done, total)),
        callback=lambda stage, step, loss, held: checks.append((step, held)),
    )
    assert steps[-1][1] == 400
    assert len(steps) < 400  # the held-out loss stopped improving before the budget ran out
    assert all(held is not None for _, held in checks)
    # It stopped because the last `patience` checks did not beat the best before them.
    best = min(held for _, held in checks[:-2])
    assert all(held >= best - 1e-4 * abs(best) for _, held in checks[-2:])


def test_fit_is_invariant_to_the_initial_amplitude_scale(dataset):
    particles = dataset[0]
    stats = accumulate(particles)
    config = GridFitConfig(stage_fractions=(0.5, 1.0), stage_steps=(10, 5), seed=1)
    maps = []
    for total in (1.0, 1e4):
        start = GaussianModel.random(
            150, BOX, PIXEL, seed=4, radius_fraction=0.25, total_amplitude=total
        )
        with torch.no_grad():
            maps.append(fit_gaussians(stats, config, model=start).voxelize())
    assert torch.allclose(maps[0], maps[1], rtol=1e-3, atol=1e-4 * float(maps[0].abs().max()))


def test_a_given_model_is_grown_to_grow_to_before_the_fit(dataset):
    stats = accumulate(dataset[0])
    start = GaussianModel.random(150, BOX, PIXEL, seed=4, radius_fraction=0.25)
    config = GridFitConfig(stage_fractions=(1.0,), stage_steps=(2,), seed=1)
    assert len(fit_gaussians(stats, config, model=start)) == 150
    assert len(fit_gaussians(stats, replace(config, grow_to=240), model=start)) == 240
    assert len(fit_gaussians(stats, replace(config, grow_to=100), model=start)) == 150
    assert len(start) == 150  # the given model is not modified


def test_fit_rejects_inverted_contrast_and_bad_config(dataset):
    stats = accumulate(dataset[0], np.arange(20))
    stats.data = -stats.data
    with pytest.raises(InputError, match="invert"):
        fit_gaussians(stats, GridFitConfig(n_gaussians=20, stage_steps=(1, 1, 1, 1)))
    with pytest.raises(InputError, match="stage_fractions and stage_steps"):
        GridFitConfig(stage_fractions=(0.5, 1.0), stage_steps=(10,)).validate()
    with pytest.raises(InputError, match=r"got 2 fractions \(0.5, 1.0\) and 1 step counts"):
        GridFitConfig(stage_fractions=(0.5, 1.0), stage_steps=(10,)).validate()
    with pytest.raises(InputError, match="max_scale_pixels"):
        GridFitConfig(min_scale_pixels=2.0, max_scale_pixels=1.0).validate()
    with pytest.raises(InputError, match="grow_to"):
        GridFitConfig(grow_to=-1).validate()
    assert stage_boxes(96, (0.25, 0.5, 0.75, 1.0)) == [24, 48, 72, 96]


def test_the_last_stage_decays_to_its_own_fraction(dataset, monkeypatch):
    """Each stage's rates decay to ``lr_final_fraction`` of their start, the last stage's to
    ``lr_final_fraction_last_stage``, whether the stages are fitted in one call or one by one
    (``GridFitConfig.stage``, as the grid engine fits them)."""
    import cryosplat.reconstruct.grid.fit as fit_module

    rates: list[float] = []

    class RecordingAdam(fit_module.Adam):
        def step(self) -> None:
            rates.append(self.param_groups[0]["lr"])
            super().step()

    monkeypatch.setattr(fit_module, "Adam", RecordingAdam)
    stats = accumulate(dataset[0], np.arange(40))
    config = GridFitConfig(
        n_gaussians=50, stage_fractions=(0.5, 1.0), stage_steps=(5, 5), check_every=100, seed=1
    )
    assert (config.lr_final_fraction, config.lr_final_fraction_last_stage) == (0.3, 0.6)

    def decays() -> list[float]:  # each stage's last rate over its first: the fraction ** (4/5)
        return [rates[i + 4] / rates[i] for i in range(0, len(rates), 5)]

    fit_gaussians(stats, config)
    assert decays() == pytest.approx([0.3**0.8, 0.6**0.8], rel=1e-9)
    rates.clear()
    model = fit_gaussians(stats, config.stage(0))
    fit_gaussians(stats, config.stage(1), model=model)
    assert decays() == pytest.approx([0.3**0.8, 0.6**0.8], rel=1e-9)
    with pytest.raises(ValueError, match="stage 2"):
        config.stage(2)
