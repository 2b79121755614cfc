"""Device correctness: each hot kernel in float32 on a device against the CPU in float64, and
the deterministic mode repeating them bit for bit.

Every kernel test runs twice: on ``"cpu"`` (float32 vs float64, which checks the test itself and
runs in CI) and on ``"cuda"`` (marked ``cuda``, skipped without a GPU; ``pytest -m cuda`` runs only
those). Inputs are fresh, seeded and random; the tolerance is a relative L2 error of 1e-4, the
accuracy a float32 computation must keep (rounding alone gives ~1e-6). The last test runs
``reconstruct --deterministic`` on the CPU (what it writes and logs).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cryosplat.core.ctf import CTFParams, compute_ctf, ctf_from_params
from cryosplat.core.device import (
    describe_device,
    deterministic_algorithms,
    peak_memory_gb,
    reset_peak_memory,
)
from cryosplat.core.fourier import fft2_centered, phase_shift_2d
from cryosplat.core.mixture import Mixture
from cryosplat.core.padded_transform import full_to_half
from cryosplat.core.rotations import random_quaternions, random_rotations
from cryosplat.core.slice_insertion import insert_slices
from cryosplat.io.mrc import MRCStack, write_stack
from cryosplat.model.two_grid import voxelize_two_grids
from cryosplat.model.voxelize import voxelize_gaussians
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.grid.loss import GridLoss
from cryosplat.reconstruct.grid.statistics import FourierStatistics
from cryosplat.render import splat_fast, splat_fourier, splat_reference
from cryosplat.validation.fsc import fsc, masked_fsc
from cryosplat.validation.masks import spherical_mask

TOLERANCE = 1e-4

DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=[
            pytest.mark.cuda,
            pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU"),
        ],
    ),
]


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    """``‖value − reference‖ / ‖reference‖`` with ``value`` brought to the reference's CPU float64."""
    value, reference = value.detach().cpu().to(reference.dtype), reference.detach()
    return float((value - reference).norm() / reference.norm())


def _mixture(n: int, box: int, pixel: float, seed: int) -> list[torch.Tensor]:
    """Random means (Å, within ±0.25 box), scales 1–2.5 px, quaternions, amplitudes; float64."""
    rng = np.random.default_rng(seed)
    means = (rng.uniform(-0.25, 0.25, (n, 3))) * box * pixel
    scales = rng.uniform(1.0, 2.5, (n, 3)) * pixel
    quaternions = random_quaternions(n, rng)
    amplitudes = rng.uniform(0.2, 1.2, n)
    return [torch.tensor(a, dtype=torch.float64) for a in (means, scales, quaternions, amplitudes)]


def _on(tensors, device) -> list[torch.Tensor]:
    """float32 copies on ``device`` that require gradients."""
    return [t.to(device, torch.float32).requires_grad_(True) for t in tensors]


def _leaves(tensors) -> list[torch.Tensor]:
    return [t.clone().requires_grad_(True) for t in tensors]


@pytest.mark.parametrize("device", DEVICES)
def test_ctf_matches_double_precision(device):
    rng = np.random.default_rng(11)
    n, box, pixel = 7, 48, 1.3
    fields = dict(
        defocus_u_angstrom=rng.uniform(6000, 25000, n),
        defocus_v_angstrom=rng.uniform(6000, 25000, n),
        defocus_angle_degrees=rng.uniform(0, 180, n),
        voltage_kv=rng.choice([200.0, 300.0], n),
        cs_mm=rng.uniform(0.01, 2.7, n),
        amplitude_contrast=rng.uniform(0.05, 0.15, n),
        phase_shift_degrees=rng.uniform(0, 90, n),
        bfactor_angstrom2=rng.uniform(0, 50, n),
        scale=rng.uniform(0.8, 1.2, n),
    )
    reference = ctf_from_params(CTFParams(**fields), box, pixel, dtype=torch.float64)
    tensors = {k: torch.tensor(v, dtype=torch.float32, device=device) for k, v in fields.items()}
    value = compute_ctf(box, pixel, **tensors)
    assert value.device.type == device and value.dtype == torch.float32
    assert relative_error(value, reference) < TOLERANCE


@pytest.mark.parametrize("device", DEVICES)
def test_voxeliser_and_its_gradient_match_double_precision(device):
    box, pixel = 24, 1.5
    params = _mixture(120, box, pixel, seed=12)
    probe = torch.randn(
        (box,) * 3, generator=torch.Generator().manual_seed(13), dtype=torch.float64
    )

    def run(tensors, weights):
        volume = voxelize_gaussians(Mixture(*tensors), box, pixel)
        (volume * weights).sum().backward()
        return volume, [t.grad for t in tensors]

    ref_volume, ref_grads = run(_leaves(params), probe)
    volume, grads = run(_on(params, device), probe.to(device, torch.float32))
    assert volume.device.type == device
    assert relative_error(volume, ref_volume) < TOLERANCE
    for name, g, ref in zip(
        "means scales quaternions amplitudes".split(), grads, ref_grads, strict=True
    ):
        assert relative_error(g, ref) < TOLERANCE, name


@pytest.mark.parametrize("backend", [splat_reference, splat_fast, splat_fourier])
@pytest.mark.parametrize("device", DEVICES)
def test_splat_backends_forward_and_backward_match_double_precision(device, backend):
    box, pixel, n_views = 24, 1.5, 4
    params = _mixture(80, box, pixel, seed=14)
    rotations = torch.tensor(random_rotations(n_views, 15), dtype=torch.float64)
    probe = torch.randn(
        (n_views, box, box), generator=torch.Generator().manual_seed(16), dtype=torch.float64
    )

    def run(tensors, rot, weights):
        images = backend(Mixture(*tensors), rot, box, pixel)
        (images * weights).sum().backward()
        return images, [t.grad for t in tensors]

    ref_images, ref_grads = run(_leaves(params), rotations, probe)
    rot32 = rotations.to(device, torch.float32)
    images, grads = run(_on(params, device), rot32, probe.to(device, torch.float32))
    assert images.device.type == device and images.dtype == torch.float32
    assert relative_error(images, ref_images) < TOLERANCE
    for name, g, ref in zip(
        "means scales quaternions amplitudes".split(), grads, ref_grads, strict=True
    ):
        assert relative_error(g, ref) < TOLERANCE, name


def _random_statistics(box: int, pixel: float, seed: int) -> FourierStatistics:
    """Statistics with random positive ``W``, random complex ``B`` and power, float64."""
    g = torch.Generator().manual_seed(seed)
    size = 2 * box
    shape = (size, size, size // 2 + 1)
    radius = box / 2 - 1.0
    weights = torch.rand(shape, generator=g, dtype=torch.float64) * 5.0
    data = torch.complex(
        torch.randn(shape, generator=g, dtype=torch.float64),
        torch.randn(shape, generator=g, dtype=torch.float64),
    )
    power = torch.rand(int(radius**2) + 1, generator=g, dtype=torch.float64) * 100.0
    return FourierStatistics(weights, data, box, 2, pixel, 500, power, radius)


@pytest.mark.parametrize("device", DEVICES)
def test_gridded_loss_and_its_gradient_match_double_precision(device):
    box, pixel = 24, 2.0
    stats = _random_statistics(box, pixel, seed=17)
    volume = torch.randn(
        (box,) * 3, generator=torch.Generator().manual_seed(18), dtype=torch.float64
    )

    def run(loss_fn, v):
        v = v.clone().requires_grad_(True)
        value = loss_fn(v)
        value.backward()
        return value, v.grad

    ref_loss, ref_grad = run(GridLoss(stats, 1.3, True, "cpu", torch.float64), volume)
    loss, grad = run(
        GridLoss(stats, 1.3, True, device, torch.float32), volume.to(device, torch.float32)
    )
    assert grad.device.type == device and grad.dtype == torch.float32
    assert relative_error(loss, ref_loss) < TOLERANCE
    assert relative_error(grad, ref_grad) < TOLERANCE


@pytest.mark.parametrize("device", DEVICES)
def test_two_grid_loss_and_its_gradient_match_double_precision(device):
    """The fit's loss of broad Gaussians on the coarse grid (model.two_grid), float32 on the
    device against float64 on the CPU: values and the gradient in every parameter."""
    box, pixel = 32, 2.0
    stats = _random_statistics(box, pixel, seed=23)
    tensors = _mixture(6, box, pixel, seed=24)
    # every Gaussian broad enough for the coarse grid, and not round (its orientation matters)
    tensors[1] = (tensors[1] - pixel) / 1.5 * 0.7 + 2.5 * pixel  # scales 2.5–3.2 px

    def run(device, dtype, leaves):
        loss_fn = GridLoss(stats, 1.0, True, device, dtype)
        volume = voxelize_two_grids(Mixture(*leaves), box, pixel)
        assert volume.coarse is not None
        value = loss_fn.data_term_and_spectrum(volume)[0]
        value.backward()
        return value, [t.grad for t in leaves]

    ref_loss, ref_grads = run("cpu", torch.float64, _leaves(tensors))
    loss, grads = run(device, torch.float32, _on(tensors, device))
    assert relative_error(loss, ref_loss) < TOLERANCE
    for grad, ref in zip(grads, ref_grads, strict=True):
        assert grad.device.type == device
        assert relative_error(grad, ref) < 10 * TOLERANCE


def _particles(folder: Path, n: int, box: int, pixel: float, seed: int) -> ParticleSet:
    """Random images (white noise plus a blob) with random views, origins and CTF."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:box, :box] - box // 2
    blob = np.exp(-(x**2 + y**2) / (2 * (box / 8) ** 2))
    images = rng.normal(size=(n, box, box)) + 3.0 * blob
    path = folder / "particles.mrcs"
    write_stack(path, images.astype(np.float32), pixel)
    defocus = rng.uniform(8000, 20000, n)
    ctf = CTFParams.create(
        n,
        defocus_u_angstrom=defocus,
        defocus_v_angstrom=defocus - rng.uniform(0, 500, n),
        defocus_angle_degrees=rng.uniform(0, 180, n),
    )
    return ParticleSet(
        box,
        pixel,
        [MRCStack(path)],
        np.zeros(n, dtype=np.int64),
        np.arange(n),
        random_rotations(n, rng),
        rng.normal(scale=1.5 * pixel, size=(n, 2)),
        ctf,
    )


@pytest.mark.parametrize("device", DEVICES)
def test_statistics_match_a_double_precision_full_grid_sum(tmp_path, device):
    """``accumulate`` on the device (float32 grids) against a float64 insertion on the CPU."""
    box, pixel = 24, 2.0
    particles = _particles(tmp_path, 40, box, pixel, seed=19)
    config = AccumulateConfig(batch_size=16, device=device)
    stats = accumulate(particles, config=config, take_off_background=False)  # images as they are
    assert stats.weights.device.type == device and stats.data.device.type == device
    rows = np.arange(len(particles))
    images = torch.from_numpy(particles.read_images(rows)).double()
    spectra = phase_shift_2d(fft2_centered(images), -torch.tensor(particles.shifts_angstrom), pixel)
    ctf = ctf_from_params(particles.ctf, box, pixel, dtype=torch.float64)
    size = 2 * box
    data = torch.zeros((size,) * 3, dtype=torch.complex128)
    weights = torch.zeros((size,) * 3, dtype=torch.float64)
    rotations = torch.tensor(particles.rotations)
    insert_slices(spectra * ctf, rotations, box, 2, data, ctf**2, weights, stats.max_radius)
    assert relative_error(stats.weights, full_to_half(weights)) < TOLERANCE
    assert relative_error(stats.data, full_to_half(data)) < TOLERANCE
    k = torch.arange(box) - box // 2
    inside = (k[:, None] ** 2 + k[None, :] ** 2) <= stats.max_radius**2
    power = float((spectra.abs() ** 2)[:, inside].sum())
    assert abs(stats.data_power - power) < TOLERANCE * power


@pytest.mark.parametrize("device", DEVICES)
def test_device_description_and_peak_memory(device):
    text = describe_device(device)
    assert text.startswith(device) and torch.__version__ in text
    if device == "cuda":
        assert torch.cuda.get_device_name() in text
        reset_peak_memory(device)
        block = torch.ones(2**20, device=device)
        assert peak_memory_gb(device) >= block.numel() * 4 / 1e9
    else:
        assert peak_memory_gb(device) is None


@pytest.mark.parametrize("device", DEVICES)
def test_fsc_and_masked_fsc_on_the_device_match_numpy_input(device):
    g = torch.Generator().manual_seed(20)
    a = torch.randn((24,) * 3, generator=g, dtype=torch.float64)
    b = a + 0.5 * torch.randn((24,) * 3, generator=g, dtype=torch.float64)
    reference = fsc(a.numpy(), b.numpy())
    curve = fsc(a.to(device), b.to(device, torch.float32))
    assert np.abs(curve - reference).max() < TOLERANCE
    mask = spherical_mask(24)
    reference = masked_fsc(a.numpy(), b.numpy(), mask, 2.0)
    result = masked_fsc(a.to(device), b.to(device), mask, 2.0)
    assert result.randomize_from_shell == reference.randomize_from_shell
    for name in ("masked", "randomized", "corrected"):
        assert np.abs(getattr(result, name) - getattr(reference, name)).max() < TOLERANCE, name


@pytest.mark.parametrize("device", DEVICES)
def test_deterministic_kernels_repeat_the_statistics_and_the_voxeliser_bit_for_bit(
    tmp_path, device
):
    """Under ``deterministic_algorithms`` the scatter sums (slice insertion, the voxeliser's
    forward and gradient) give identical bits when repeated; the setting is restored after."""
    before = torch.are_deterministic_algorithms_enabled()
    particles = _particles(tmp_path, 48, 24, 2.0, seed=23)
    params = _mixture(300, 24, 2.0, seed=24)
    probe = torch.randn((24,) * 3, generator=torch.Generator().manual_seed(25)).to(device)

    def run():
        stats = accumulate(particles, config=AccumulateConfig(batch_size=16, device=device))
        tensors = _on(params, device)
        volume = voxelize_gaussians(Mixture(*tensors), 24, 2.0)
        (volume * probe).sum().backward()
        return [stats.data, stats.weights, volume.detach()] + [t.grad for t in tensors]

    with deterministic_algorithms():
        assert torch.are_deterministic_algorithms_enabled()
        first, second = run(), run()
    assert torch.are_deterministic_algorithms_enabled() == before
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)


def test_reconstruct_deterministic_flag_on_the_cpu_changes_nothing_but_the_log(tiny_set, tmp_path):
    """The CPU path is deterministic already: ``--deterministic`` writes the same map, logs that
    it is on, and leaves PyTorch's setting as it was."""
    from cryosplat.cli.main import main
    from cryosplat.io.mrc import read_map

    args = ["--n-gaussians", "60", "--no-progress", "--stage-fractions", "0.5,1.0"]
    args += ["--stage-steps", "10,10", "--device", "cpu"]
    before = torch.are_deterministic_algorithms_enabled()
    assert main(["reconstruct", str(tiny_set), "-o", str(tmp_path / "plain"), *args]) == 0
    out = tmp_path / "deterministic"
    assert main(["reconstruct", str(tiny_set), "-o", str(out), *args, "--deterministic"]) == 0
    assert torch.are_deterministic_algorithms_enabled() == before
    assert "deterministic kernels (--deterministic)" in (out / "log.txt").read_text()
    plain, _ = read_map(tmp_path / "plain" / "map.mrc")
    again, _ = read_map(out / "map.mrc")
    np.testing.assert_array_equal(plain, again)
    # config.json holds the settings as run, not the placeholders reconstruct fills in.
    config = json.loads((out / "config.json").read_text())
    assert config["device"] == "cpu" and config["config"]["deterministic"] is True
    grid = config["config"]["grid"]
    assert grid["fit"]["device"] == "cpu" and grid["accumulate"]["device"] == "cpu"
    assert grid["fit"]["n_gaussians"] == 60 == config["n_gaussians"]
