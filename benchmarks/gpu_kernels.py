"""Kernel timings of the GPU check (:mod:`bench_gpu`): statistics pass, fit step, splat backends.

Each ``step_*`` adds rows to a :class:`bench_gpu.Report`-like object (``add(step, what, value,
status)``); times are medians after a warm-up, by CUDA events on a GPU and ``time.perf_counter``
elsewhere.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from cryosplat.core.ctf import CTFParams
from cryosplat.core.mixture import Mixture
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import MRCStack, write_stack
from cryosplat.model.gaussians import GaussianModel, voxelize_gaussians
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
from cryosplat.reconstruct.grid.half_statistics import statistics_batch_size
from cryosplat.reconstruct.grid.loss import GridLoss
from cryosplat.reconstruct.grid.statistics import FourierStatistics
from cryosplat.render import splat

PARTICLE_EXTENT_ANGSTROM = 153.6  # box × pixel of every simulated set (8ZPM is ~80 Å across)
RENDER_TARGET_IMAGES_PER_S = 20_000


def _timer(device: torch.device) -> Callable[[Callable[[], object]], float]:
    """Seconds one call takes: CUDA events on a GPU (after a synchronise), else perf_counter."""

    def cuda_time(fn):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize(device)
        start.record()
        fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3

    def cpu_time(fn):
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    return cuda_time if device.type == "cuda" else cpu_time


def _median_time(fn, device, seconds: float, most: int = 20, before=None) -> tuple[float, int]:
    """Median seconds of ``fn`` after one warm-up call, repeated to fill about ``seconds``."""
    timer = _timer(device)
    if before:
        before()
    first = timer(fn)  # warm-up (and a first estimate)
    repeats = int(max(3, min(most, seconds / max(first, 1e-6))))
    times = []
    for _ in range(repeats):
        if before:
            before()
        times.append(timer(fn))
    return statistics.median(times), repeats


def _random_particles(folder: Path, n: int, box: int, seed: int) -> tuple[ParticleSet, np.ndarray]:
    """``n`` random images in one MRC stack with random views, origins and CTF (cost only)."""
    rng = np.random.default_rng(seed)
    images = rng.standard_normal((n, box, box), dtype=np.float32)
    path = folder / f"random_{box}.mrcs"
    write_stack(path, images, 1.0)
    defocus = rng.uniform(8000, 25000, n)
    ctf = CTFParams.create(n, defocus_u_angstrom=defocus, defocus_v_angstrom=defocus - 200)
    particles = ParticleSet(
        box,
        1.0,
        [MRCStack(path)],
        np.zeros(n, dtype=np.int64),
        np.arange(n),
        random_rotations(n, rng),
        rng.normal(scale=2.0, size=(n, 2)),
        ctf,
    )
    return particles, images


def _drop_page_cache(path: Path) -> None:
    """Ask the kernel to drop a file's cached pages (a no-op where unsupported)."""
    if not hasattr(os, "posix_fadvise"):
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def step_statistics(report, device: torch.device, seconds: float, args) -> None:
    folder = args.workdir / "statistics"
    folder.mkdir(parents=True, exist_ok=True)
    per = seconds / (2 * len(args.sizes.stats_boxes))
    for box, n in zip(args.sizes.stats_boxes, args.sizes.stats_images, strict=True):
        particles, images = _random_particles(folder, n, box, seed=box)
        config = AccumulateConfig(device=str(device))
        config.batch_size = statistics_batch_size(config.batch_size, device)  # as reconstruct
        in_memory = _InMemoryParticles(particles, images)
        t, k = _median_time(lambda p=in_memory, c=config: accumulate(p, config=c), device, per)
        report.add(
            "statistics",
            f"box {box}, {n} images in host memory (batch {config.batch_size})",
            f"{n / t:,.0f} particles/s",
            f"median of {k}",
        )
        path = particles.stacks[0].path
        t, k = _median_time(
            lambda p=particles, c=config: accumulate(p, config=c),
            device,
            per,
            most=5,
            before=lambda path=path: _drop_page_cache(path),
        )
        report.add(
            "statistics",
            f"box {box}, {n} images from disk (page cache dropped)",
            f"{n / t:,.0f} particles/s",
            f"median of {k}",
        )
        path.unlink()


class _InMemoryParticles(ParticleSet):
    """A ParticleSet whose images are an array already in host memory."""

    def __init__(self, particles: ParticleSet, images: np.ndarray) -> None:
        fields = {k: getattr(particles, k) for k in particles.__dataclass_fields__}
        super().__init__(**fields)
        self._images = images

    def read_images(self, indices) -> np.ndarray:
        return self._images[np.asarray(indices, dtype=np.int64)]


def step_fit(report, device: torch.device, seconds: float, args) -> None:
    box, n = args.sizes.fit_box, args.sizes.fit_gaussians
    pixel = PARTICLE_EXTENT_ANGSTROM / box
    size = 2 * box
    shape = (size, size, size // 2 + 1)
    gen = torch.Generator(device=device).manual_seed(0)
    weights = torch.rand(shape, generator=gen, device=device)
    data = torch.randn(shape, generator=gen, device=device, dtype=torch.complex64)
    radius = box / 2 - 1.0
    power = torch.ones(int(radius**2) + 1, dtype=torch.float64)
    stats = FourierStatistics(weights, data, box, 2, pixel, 10_000, power, radius)
    loss_fn = GridLoss(stats, 1.0, True, device)
    del weights, data, stats
    model = GaussianModel.random(n, box, pixel, seed=1, radius_fraction=0.3, scale_angstrom=pixel)
    leaves = [
        t.detach().to(device).requires_grad_(True)
        for t in (model.means, model.scales, model.quaternions, model.amplitudes)
    ]
    optimizer = torch.optim.Adam(leaves, lr=1e-3)

    def step():
        optimizer.zero_grad(set_to_none=True)
        volume = voxelize_gaussians(Mixture(*leaves), box, pixel)
        loss_fn.data_term_and_spectrum(volume)[0].backward()
        optimizer.step()

    t, k = _median_time(step, device, seconds)
    report.add(
        "fit",
        f"one step (voxelise, loss, backward, Adam), box {box}, {n:,} Gaussians",
        f"{t * 1e3:.1f} ms",
        f"median of {k}",
    )


def step_render(report, device: torch.device, seconds: float, args) -> None:
    box, n = args.sizes.render_box, args.sizes.render_gaussians
    model = GaussianModel.random(n, box, 1.0, seed=0).to(device)
    best = 0.0
    for backend, batch in args.sizes.render_batches.items():
        rot = torch.tensor(random_rotations(batch, seed=1), dtype=torch.float32, device=device)

        def step(backend=backend, rot=rot):
            model.zero_grad(set_to_none=True)
            images = splat(
                model.mixture(),
                rot,
                box,
                1.0,
                backend=backend,
            )
            images.square().sum().backward()

        try:
            t, k = _median_time(step, device, seconds / 3)
        except torch.cuda.OutOfMemoryError:
            report.add("render", f"{backend}, batch {batch}", "out of GPU memory", "FAIL")
            continue
        rate = batch / t
        best = max(best, rate)
        report.add(
            "render",
            f"{backend}, D = {box}, {n:,} Gaussians, batch {batch}, fwd + bwd",
            f"{rate:,.0f} images/s",
            f"median of {k}",
        )
    target = check(best >= RENDER_TARGET_IMAGES_PER_S, device)
    report.add(
        "render", f"best backend ≥ {RENDER_TARGET_IMAGES_PER_S:,} images/s", f"{best:,.0f}", target
    )


def check(ok: bool, device: torch.device) -> str:
    """A target's status: only a GPU run is held to the GPU targets."""
    if device.type != "cuda":
        return "n/a (not a GPU)"
    return "pass" if ok else "FAIL"
