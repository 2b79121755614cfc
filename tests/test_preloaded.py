"""A particle set read once into memory reads as the stacks do."""

from __future__ import annotations

import numpy as np
import pytest

from cryosplat.particles.downsample import downsample_particles
from cryosplat.particles.preloaded import PreloadedStack, preloaded
from cryosplat.particles.read import read_particles


def test_preloaded_images_are_the_stacks(tiny_set):
    particles = read_particles(tiny_set)
    rows = np.array([7, 0, 3, 3, 11])
    for source in (particles, downsample_particles(particles, 16)):
        sample = source.subset(rows)
        held = preloaded(sample)
        assert [type(s) for s in held.stacks] == [PreloadedStack] * len(sample.stacks)
        np.testing.assert_array_equal(
            held.read_images(np.arange(len(rows))), sample.read_images(np.arange(len(rows)))
        )
        np.testing.assert_array_equal(held.read_images([4, 1]), sample.read_images([4, 1]))
        assert held.box == sample.box and held.stacks[0].box == sample.stacks[0].box


def test_images_are_read_in_batches(tiny_set, monkeypatch):
    from cryosplat.particles import preloaded as module

    monkeypatch.setattr(module, "READ_BATCH", 3)
    particles = read_particles(tiny_set)
    calls = []
    stack = particles.stacks[0]
    original = stack.read
    monkeypatch.setattr(stack, "read", lambda idx: calls.append(len(idx)) or original(idx))
    held = PreloadedStack(stack, [9, 1, 4, 7, 2, 5, 8])
    assert calls == [3, 3, 1]
    assert stack._mmap is None  # released after each batch: its pages do not stay resident
    np.testing.assert_array_equal(held.read([8, 1]), original([8, 1]))


def test_an_image_not_held_is_named(tiny_set):
    particles = read_particles(tiny_set)
    stack = PreloadedStack(particles.stacks[0], [2, 5])
    np.testing.assert_array_equal(stack.read([5, 2]), particles.stacks[0].read([5, 2]))
    with pytest.raises(KeyError, match="image 4 of"):
        stack.read([5, 3])
    with pytest.raises(KeyError, match="image 1 of"):
        PreloadedStack(particles.stacks[0], []).read([0])
