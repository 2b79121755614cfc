"""Slices kept between passes (``cryosplat.reconstruct.grid.slice_cache``): handed back only for
the same map, shells and images, the same values as read afresh, and never past the budget."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from cryosplat.io.mrc import read_map
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.particle_scores import SampleReading, read_samples
from cryosplat.reconstruct.grid.slice_cache import SliceCache


@pytest.fixture(scope="module")
def tiny(tiny_set):
    return read_particles(tiny_set), read_map(tiny_set.parent / "truth.mrc")[0]


def _slices(particles, rows, volume, reading) -> torch.Tensor:
    """The slices of ``rows`` in their order, (n, M)."""
    out = {}
    for samples in read_samples(particles, rows, volume, reading):
        for position, values in zip(samples.positions, samples.slices, strict=True):
            out[int(position)] = values
    return torch.stack([out[i] for i in range(len(rows))])


def test_slices_kept_are_handed_back_as_read(tiny):
    particles, volume = tiny
    rows = np.arange(0, len(particles), 2)
    plain = SampleReading(batch_size=16, max_radius_px=8.0)
    cached = replace(plain, slices=SliceCache(10**9))
    fresh = _slices(particles, rows, volume, plain)
    first = _slices(particles, rows, volume, cached)
    assert cached.slices.hits == 0
    again = _slices(particles, rows, volume, cached)
    assert cached.slices.hits == len(rows)
    torch.testing.assert_close(first, fresh, rtol=0, atol=0)
    torch.testing.assert_close(again, fresh, rtol=0, atol=0)
    # a subset, in another order and batching: the same values
    some = rows[::-3]
    torch.testing.assert_close(
        _slices(particles, some, volume, replace(cached, batch_size=5)),
        _slices(particles, some, volume, plain),
        rtol=0,
        atol=0,
    )


def test_fewer_shells_are_handed_back_within_the_slices_kept(tiny):
    particles, volume = tiny
    rows = np.arange(0, len(particles), 3)
    cache = SliceCache(10**9)
    reading = SampleReading(batch_size=16, max_radius_px=8.0, slices=cache)
    kept = _slices(particles, rows, volume, reading)
    assert cache.used_bytes == kept.numel() * 8
    fewer = replace(reading, max_radius_px=4.5)
    handed = _slices(particles, rows, volume, fewer)
    assert cache.hits == len(rows) and cache.used_bytes == kept.numel() * 8  # nothing more kept
    fresh = _slices(particles, rows, volume, replace(fewer, slices=None))
    assert (
        handed.shape == fresh.shape
        and handed.shape[1]
        < _slices(particles, rows, volume, replace(reading, slices=None)).shape[1]
    )
    torch.testing.assert_close(handed, fresh, rtol=0, atol=0)


def test_more_shells_maps_or_images_are_read_afresh(tiny):
    particles, volume = tiny
    rows = np.arange(0, len(particles), 2)
    cache = SliceCache(10**9)
    reading = SampleReading(batch_size=16, max_radius_px=8.0, slices=cache)
    _slices(particles, rows, volume, reading)
    hits = cache.hits
    _slices(particles, rows, volume, replace(reading, max_radius_px=9.0))  # more shells
    other = volume.copy()  # another map, though equal
    _slices(particles, rows, other, reading)
    _slices(particles, rows + 1, volume, reading)  # images not read before
    assert cache.hits == hits
    # images half read before, a batch each: those read before are handed back
    mixed = np.concatenate([rows[:16], rows[:16] + 1])
    _slices(particles, mixed, volume, replace(reading, batch_size=1))
    assert cache.hits == hits + 16
    # in batches that hold both, the batch is read afresh
    _slices(particles, mixed, volume, reading)
    assert cache.hits == hits + 16


def test_no_more_is_kept_than_the_budget(tiny):
    particles, volume = tiny
    rows = np.arange(len(particles))
    one_map = _slices(particles, rows, volume, SampleReading(max_radius_px=8.0))
    size = one_map.numel() * 8
    cache = SliceCache(size)  # room for one map's slices, not two
    reading = SampleReading(max_radius_px=8.0, slices=cache)
    other = volume.copy()
    for _ in range(2):
        _slices(particles, rows, volume, reading)
        _slices(particles, rows, other, reading)
    assert cache.used_bytes == size and cache.hits == len(rows)
    assert SliceCache(0).budget_bytes == 0
    with pytest.raises(ValueError, match="budget_bytes"):
        SliceCache(-1)
