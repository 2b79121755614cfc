"""An image's own share in its half map (``reconstruct.grid.own_share``), read and taken out.

Physics invariants: the share is what an image's own half map holds of it beyond what the other
half's map holds (the same signal, none of its noise); the slices read without it are the map's
less ``κ_s C X``; and images read against their own half map without their share find their
defocus errors as widely spread as they are, where the map as it is draws them to the recorded
defocus.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from cryosplat.io.mrc import read_map
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.defocus_fit import (
    DefocusSearch,
    defocus_log_likelihood,
    fit_offsets,
)
from cryosplat.reconstruct.grid.noise_levels import NoiseLevels
from cryosplat.reconstruct.grid.own_share import insertion_weights, own_share
from cryosplat.reconstruct.grid.particle_scores import (
    SampleReading,
    ShellSums,
    read_samples,
    score_from_sums,
    shell_sums,
)
from cryosplat.reconstruct.run_halves import read_run_halves
from tests.conftest import reconstruct_quickly
from tests.test_defocus_refine import make_defocus_set


@pytest.fixture(scope="module")
def weak_set(tmp_path_factory):
    """400 particles at SNR 0.3 whose STAR's defoci are each 400 Å off
    (:func:`~tests.test_defocus_refine.make_defocus_set`)."""
    return make_defocus_set(tmp_path_factory.mktemp("weak"), n_particles=400, snr=0.3)


def _sums(rng, n=50, shells=12, share=None):
    """ShellSums of ``n`` images; with ``share``, their cross sums raised by ``share · ctf_data``."""
    ctf_data = rng.uniform(1.0, 2.0, (n, shells))
    cross = rng.normal(5.0, 1.0, (n, shells))
    if share is not None:
        cross = cross + share[None] * ctf_data
    ones = np.ones((n, shells))
    return ShellSums(cross, ones, ones, ones, ctf_data)


def test_the_share_is_the_own_maps_excess_agreement_over_the_others():
    rng = np.random.default_rng(0)
    other = _sums(rng)
    share = np.full(12, 0.3)
    own = ShellSums(
        other.cross + share * other.ctf_data, other.model, other.data, other.count, other.ctf_data
    )
    np.testing.assert_allclose(own_share(own, other), share, rtol=1e-12)
    np.testing.assert_allclose(own_share(own, other, window=0), share, rtol=1e-12)
    # a map that agrees less with its own images than the other half's: no share, not a negative
    assert np.all(own_share(other, own) == 0.0)
    # pooled over neighbouring shells, weighted by Σ C²|X|²: a share that changes shell to shell
    # is read as its weighted local mean
    varying = np.linspace(0.1, 0.5, 12)
    own = ShellSums(
        other.cross + varying * other.ctf_data, other.model, other.data, other.count, other.ctf_data
    )
    read = own_share(own, other, window=1)
    weight = other.ctf_data.sum(0)
    expected = np.convolve(varying * weight, np.ones(3), "same") / np.convolve(
        weight, np.ones(3), "same"
    )
    np.testing.assert_allclose(read, expected, rtol=1e-12)
    with pytest.raises(ValueError, match="shapes"):
        own_share(own, _sums(rng, n=10))
    with pytest.raises(ValueError, match="window"):
        own_share(own, other, window=-1)


def test_slices_read_without_the_share_are_the_maps_less_the_images_own(weak_set):
    star, _, _ = weak_set
    particles = read_particles(star)
    truth = read_map(star.parent / "truth.mrc")[0]
    rows = np.arange(40)
    share = tuple(np.linspace(0.0, 0.02, 40))
    plain = list(read_samples(particles, rows, truth, SampleReading(batch_size=16)))
    less = list(read_samples(particles, rows, truth, SampleReading(batch_size=16, own_share=share)))
    assert len(plain) == len(less) > 1
    for a, b in zip(plain, less, strict=True):
        ctf = a.part.ctf.reshape(len(a.positions), -1)[:, a.kept]
        kappa = torch.tensor(share, dtype=torch.float32)[a.shell]
        torch.testing.assert_close(b.slices, a.slices - kappa * ctf * a.data)
        torch.testing.assert_close(b.data, a.data)
    # an image inserted with weight w holds w times the share: its own is taken out so
    halved = SampleReading(
        batch_size=16,
        own_share=share,
        insertion_weights=lambda rows, images: torch.full((len(rows),), 0.5),
    )
    for a, b in zip(plain, read_samples(particles, rows, truth, halved), strict=True):
        ctf = a.part.ctf.reshape(len(a.positions), -1)[:, a.kept]
        kappa = torch.tensor(share, dtype=torch.float32)[a.shell]
        torch.testing.assert_close(b.slices, a.slices - 0.5 * kappa * ctf * a.data)
    sums = shell_sums(particles, rows, truth, SampleReading())
    weighed = shell_sums(particles, rows, truth, halved)
    np.testing.assert_allclose(weighed.ctf_data, 0.5 * sums.ctf_data, rtol=1e-6)
    with pytest.raises(ValueError, match="own share of 2 shells"):
        list(read_samples(particles, rows, truth, SampleReading(own_share=(0.0, 0.1))))


def test_the_insertion_weights_are_the_runs_noise_levels_times_the_users(weak_set):
    star, _, _ = weak_set
    particles = read_particles(star)
    assert insertion_weights(particles, None) is None  # weighed alike: nothing to scale
    rows = np.arange(8)
    images = torch.from_numpy(particles.read_images(rows))
    given = np.linspace(0.5, 2.0, len(particles))
    weighed = replace(particles, weights=given)
    np.testing.assert_allclose(insertion_weights(weighed, None)(rows, images).numpy(), given[:8])
    levels = NoiseLevels(mean_log=0.0, share=1.0, norm=1.0, spread=1.0)
    both = insertion_weights(weighed, levels)(rows, images).numpy()
    np.testing.assert_allclose(both, levels.weights(images).double().numpy() * given[:8])


def test_read_against_their_own_half_map_without_their_share_the_errors_keep_their_spread(
    weak_set, tmp_path
):
    _, wrong, errors = weak_set
    run = tmp_path / "run"
    assert reconstruct_quickly(str(wrong), "-o", str(run)) == 0
    halves = read_run_halves(read_particles(wrong), run, "test")
    particles = halves.particles
    search = DefocusSearch.for_shells(2000.0, 2 * particles.pixel_size_angstrom, 300.0)
    likelihood = {"as it is": [], "without": []}
    rows_all = []
    for (rows, volume), (_, other) in zip(halves.own(), halves.crossed(), strict=True):
        plain = SampleReading()
        own = shell_sums(particles, rows, volume, plain)
        share = own_share(own, shell_sums(particles, rows, other, plain))
        # 100 images a half: each holds a share of its map that the outer shells show (where the
        # signal is strong the two maps' own differences hide it)
        assert np.all(share[len(share) // 2 :] > 0)
        for name, reading in (
            ("as it is", plain),
            ("without", SampleReading(own_share=tuple(share))),
        ):
            scores = score_from_sums(shell_sums(particles, rows, volume, reading))
            ll = defocus_log_likelihood(particles, rows, volume, scores, search, reading)
            likelihood[name].append(ll)
        rows_all.append(rows)
    order = np.concatenate(rows_all)
    spread, left = {}, {}
    for name, parts in likelihood.items():
        fit = fit_offsets(np.concatenate(parts), search)
        spread[name] = fit.prior_sd_angstrom
        corr = np.corrcoef(fit.offset_angstrom, errors[order])[0, 1]
        left[name] = np.sqrt(np.mean((fit.offset_angstrom - errors[order]) ** 2))
        assert corr > 0.5, (name, corr)
    # the map as it is draws each image to its recorded defocus: the errors read narrower
    assert spread["as it is"] < 0.75 * np.std(errors)
    assert abs(spread["without"] / np.std(errors) - 1) < 0.2, spread
    assert left["without"] < 0.9 * left["as it is"], left
