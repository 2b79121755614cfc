"""Batches of particle images for the statistics pass: read ahead or not, the same batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryosplat.core.ctf import CTFParams
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import MRCStack, write_stack
from cryosplat.particles.particle_set import ParticleSet
from cryosplat.reconstruct.grid.gather import AccumulateConfig
from cryosplat.reconstruct.grid.half_statistics import statistics_batch_size
from cryosplat.reconstruct.grid.staging import device_batches


@pytest.fixture
def particles(tmp_path):
    rng = np.random.default_rng(3)
    n, box = 23, 16
    images = rng.normal(size=(n, box, box)).astype(np.float32)
    write_stack(tmp_path / "p.mrcs", images, 2.0)
    ctf = CTFParams.create(n, defocus_u_angstrom=1e4, defocus_v_angstrom=1e4)
    particles = ParticleSet(
        box,
        2.0,
        [MRCStack(tmp_path / "p.mrcs")],
        np.zeros(n, dtype=np.int64),
        np.arange(n),
        random_rotations(n, rng),
        np.zeros((n, 2)),
        ctf,
    )
    return particles, images


@pytest.mark.parametrize("read_ahead", [0, 1, 3])
def test_batches_hold_the_rows_in_order_whatever_the_read_ahead(particles, read_ahead):
    particles, images = particles
    indices = np.random.default_rng(4).permutation(len(particles))[:19]
    got = list(device_batches(particles, indices, 5, "cpu", read_ahead=read_ahead))
    assert [len(rows) for rows, _ in got] == [5, 5, 5, 4]
    assert np.array_equal(np.concatenate([rows for rows, _ in got]), indices)
    for rows, batch in got:
        assert batch.dtype == torch.float32 and batch.device.type == "cpu"
        assert torch.equal(batch, torch.from_numpy(images[rows]))


def test_statistics_batch_is_raised_only_on_cuda_and_only_from_the_default():
    default = AccumulateConfig.batch_size
    assert statistics_batch_size(default, "cpu") == default
    assert statistics_batch_size(default, "cuda:0") > default
    assert statistics_batch_size(7, "cuda") == 7
