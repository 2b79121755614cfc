"""Fourier slices on the padded grid: layouts, central-slice theorem, adjointness, Friedel insertion."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryosplat.core import slice_insertion
from cryosplat.core.fourier import fft2_centered
from cryosplat.core.fourier_slice import (
    SliceReader,
    default_max_radius,
    extract_slices,
)
from cryosplat.core.padded_transform import (
    _rows,
    cropped_irfftn,
    full_to_half,
    half_to_full,
    padded_ft_to_volume,
    trilinear_apodization,
    volume_to_padded_ft,
)
from cryosplat.core.rotations import random_rotations
from cryosplat.core.slice_insertion import SliceAccumulator, insert_slices
from cryosplat.model.gaussians import GaussianModel

BOX, PIXEL, PAD = 24, 2.0, 2


@pytest.fixture(scope="module")
def model() -> GaussianModel:
    return GaussianModel.random(
        40, BOX, PIXEL, seed=1, radius_fraction=0.25, scale_angstrom=3.0, dtype=torch.float64
    )


@pytest.fixture(scope="module")
def volume(model) -> torch.Tensor:
    with torch.no_grad():
        return model.voxelize()


@pytest.fixture(scope="module")
def rotations() -> torch.Tensor:
    return torch.tensor(random_rotations(12, seed=3))


def _disc(box: int, radius: float) -> torch.Tensor:
    k = torch.arange(box) - box // 2
    return (k[:, None] ** 2 + k[None, :] ** 2) <= radius**2


def test_layouts_agree_and_invert(volume):
    full = volume_to_padded_ft(volume, PAD, PIXEL)
    half = volume_to_padded_ft(volume, PAD, PIXEL, half=True)
    size = PAD * BOX
    assert full.shape == (size, size, size) and half.shape == (size, size, size // 2 + 1)
    scale = full.abs().max()
    assert torch.allclose(full_to_half(full), half, atol=1e-12 * scale)
    assert torch.allclose(half_to_full(half), full, atol=1e-12 * scale)
    for grid in (full, half):
        assert torch.allclose(padded_ft_to_volume(grid, BOX, PIXEL), volume, atol=1e-12)
    # Zero frequency = integral of the density (× voxel³ / voxel²: per-Å² projection units).
    assert math.isclose(
        float(full[size // 2, size // 2, size // 2].real),
        float(volume.sum()) * PIXEL,
        rel_tol=1e-12,
    )


def test_identity_slice_is_the_projection_spectrum(volume):
    """Central-slice theorem with the scale convention: slice = DFT of map.sum(z) · pixel."""
    spectrum = extract_slices(
        volume_to_padded_ft(volume, PAD, PIXEL), torch.eye(3)[None].double(), BOX, PAD
    )[0]
    expected = fft2_centered(volume.sum(0) * PIXEL)
    inside = _disc(BOX, default_max_radius(BOX, PAD))
    assert torch.allclose(spectrum[inside], expected[inside], atol=1e-10 * expected.abs().max())
    assert bool((spectrum[~inside] == 0).all())


def test_slices_match_analytic_projections(model, volume, rotations):
    """Against the exact transform of the Gaussian mixture, along random views.

    Trilinear interpolation on a 2× padded grid errs by a few per cent for a map filling most of
    the box; the gridding correction (dividing by the sinc² apodisation) reduces the error.
    """
    freq = (torch.arange(BOX, dtype=torch.float64) - BOX // 2) / (BOX * PIXEL)
    ky, kx = torch.meshgrid(freq, freq, indexing="ij")
    k3 = (
        kx[None, ..., None] * rotations[:, None, None, 0]
        + ky[None, ..., None] * rotations[:, None, None, 1]
    )
    with torch.no_grad():
        phase = torch.exp(-2j * math.pi * torch.einsum("bjic,nc->bjin", k3, model.means))
        envelope = torch.exp(
            -2 * math.pi**2 * torch.einsum("bjic,ncd,bjid->bjin", k3, model.covariances(), k3)
        )
        exact = (model.amplitudes * phase * envelope).sum(-1) / PIXEL**2
    inside = _disc(BOX, default_max_radius(BOX, PAD))
    errors = {}
    for correction in (False, True):
        grid = volume_to_padded_ft(volume, PAD, PIXEL, gridding_correction=correction, half=True)
        slices = extract_slices(grid, rotations, BOX, PAD)
        errors[correction] = float((slices - exact)[:, inside].norm() / exact[:, inside].norm())
    assert errors[True] < 0.04
    assert errors[True] < errors[False]


def test_insertion_is_the_adjoint_of_extraction(rotations):
    rng = torch.Generator().manual_seed(0)
    size = PAD * BOX
    grid = torch.randn(size, size, size, dtype=torch.complex128, generator=rng)
    values = torch.randn(len(rotations), BOX, BOX, dtype=torch.complex128, generator=rng)
    inserted = torch.zeros_like(grid)
    insert_slices(values, rotations, BOX, PAD, inserted)
    lhs = (extract_slices(grid, rotations, BOX, PAD).conj() * values).sum()
    rhs = (grid.conj() * inserted).sum()
    assert torch.allclose(lhs, rhs, rtol=1e-12)


def test_half_grid_insertion_equals_full_restricted(rotations):
    """Friedel insertion on the half grid = full-grid insertion of real images, for Kx ≥ 0."""
    rng = torch.Generator().manual_seed(1)
    images = torch.randn(len(rotations), BOX, BOX, dtype=torch.float64, generator=rng)
    spectra = fft2_centered(images)
    raw = torch.rand(len(rotations), BOX, BOX, dtype=torch.float64, generator=rng)
    weights = raw + torch.roll(torch.flip(raw, (1, 2)), (1, 1), (1, 2))  # w(k) = w(-k)
    size = PAD * BOX
    full_data = torch.zeros(size, size, size, dtype=torch.complex128)
    full_weight = torch.zeros(size, size, size, dtype=torch.float64)
    insert_slices(spectra, rotations, BOX, PAD, full_data, weights, full_weight)
    half_data = torch.zeros(size, size, size // 2 + 1, dtype=torch.complex128)
    half_weight = torch.zeros(size, size, size // 2 + 1, dtype=torch.float64)
    insert_slices(spectra, rotations, BOX, PAD, half_data, weights, half_weight)
    assert torch.allclose(full_to_half(full_data), half_data, atol=1e-10)
    assert torch.allclose(full_to_half(full_weight), half_weight, atol=1e-10)
    # The rfft layout of the same spectra gives the same result.
    rfft_layout = torch.cat([spectra[..., BOX // 2 :], spectra[..., :1]], dim=-1)
    again = torch.zeros_like(half_data)
    insert_slices(rfft_layout, rotations, BOX, PAD, again)
    assert torch.allclose(again, half_data, atol=1e-10)


def test_accumulator_sums_in_chunks_and_partial_grids(rotations, monkeypatch):
    """Batches, chunks of views and flushed partial grids change nothing but rounding."""
    rng = torch.Generator().manual_seed(2)
    images = torch.randn(len(rotations), BOX, BOX, dtype=torch.float64, generator=rng)
    spectra = fft2_centered(images)
    weights = torch.rand(len(rotations), BOX, BOX, dtype=torch.float64, generator=rng)
    weights = weights + torch.roll(torch.flip(weights, (1, 2)), (1, 1), (1, 2))
    size = PAD * BOX
    data = torch.zeros(size, size, size // 2 + 1, dtype=torch.complex128)
    weight = torch.zeros(size, size, size // 2 + 1, dtype=torch.float64)
    insert_slices(spectra, rotations, BOX, PAD, data, weights, weight)
    monkeypatch.setattr(slice_insertion, "_CHUNK_POINTS", 300)  # a few views per chunk
    sums = SliceAccumulator(BOX, PAD, True, "cpu", torch.float64, flush_every=2)
    for part in torch.arange(len(rotations)).split(3):
        sums.insert(spectra[part], rotations[part], weights[part])
    summed, summed_weight = sums.result()
    assert torch.allclose(summed, data, atol=1e-10)
    assert torch.allclose(summed_weight, weight, atol=1e-10)
    with pytest.raises(RuntimeError, match="finished"):
        sums.insert(spectra[:1], rotations[:1], weights[:1])


def test_cropped_inverse_equals_the_cropped_full_inverse():
    rng = torch.Generator().manual_seed(5)
    half = torch.randn(32, 32, 17, dtype=torch.complex128, generator=rng)
    keep = torch.tensor([0, 3, 5, 30, 31])
    full = torch.fft.irfftn(half, s=(32,) * 3)[keep][:, keep][:, :, keep]
    assert torch.allclose(cropped_irfftn(half, 32, keep), full, rtol=0, atol=1e-14)
    real = torch.rand(32, 32, 17, dtype=torch.float64, generator=rng)
    full = torch.fft.irfftn(real.to(torch.complex128), s=(32,) * 3)[keep][:, keep][:, :, keep]
    assert torch.allclose(cropped_irfftn(real, 32, keep), full, rtol=0, atol=1e-14)


def test_cropped_inverse_in_many_slabs_equals_one(monkeypatch):
    """The slab of ``x`` columns bounds the temporaries only: a few columns at a time give the
    same values as the whole grid at once."""
    from cryosplat.core import padded_transform

    rng = torch.Generator().manual_seed(6)
    half = torch.randn(32, 32, 17, dtype=torch.complex128, generator=rng)
    keep = torch.tensor([28, 29, 30, 31, 0, 1, 2, 3])
    whole = cropped_irfftn(half, 32, keep)
    monkeypatch.setattr(padded_transform, "SLAB_ELEMENTS", 3 * 32 * 32)  # 3 columns a slab
    assert torch.allclose(cropped_irfftn(half, 32, keep), whole, rtol=0, atol=1e-14)


@pytest.mark.parametrize(
    "keep",
    [
        torch.tensor([24, 25, 26, 27, 28, 29, 30, 31, 0, 1, 2, 3, 4, 5, 6, 7]),  # a wrapped map
        torch.arange(4, 12),  # one run
        torch.tensor([1, 2, 3, 9, 10, 20]),  # three runs: gathered
        torch.tensor([7, 6, 5]),  # descending: gathered
    ],
)
def test_rows_read_as_runs_equal_the_gather(keep):
    """Indices that are one or two ascending runs are read as views and joined: the same values
    as ``index_select``, on every axis of the cropped inverse."""
    t = torch.randn(32, 32, 17, dtype=torch.complex128, generator=torch.Generator().manual_seed(7))
    for dim in range(3):
        if int(keep.max()) < t.shape[dim]:
            assert torch.equal(_rows(t, dim, keep), t.index_select(dim, keep))
    full = torch.fft.irfftn(t, s=(32,) * 3)[keep][:, keep][:, :, keep]
    assert torch.allclose(cropped_irfftn(t, 32, keep), full, rtol=0, atol=1e-14)


def test_half_and_full_extraction_agree(volume, rotations):
    full = volume_to_padded_ft(volume, PAD, PIXEL)
    half = volume_to_padded_ft(volume, PAD, PIXEL, half=True)
    a = extract_slices(full, rotations, BOX, PAD)
    b = extract_slices(half, rotations, BOX, PAD)
    assert torch.allclose(a, b, atol=1e-12 * a.abs().max())


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The reader's grid_sample and the sampler's gather: the same stencil, summed in another
    order (double precision here)."""
    return a.shape == b.shape and bool((a - b).abs().max() <= 1e-12 * b.abs().max())


@pytest.mark.parametrize("max_radius", [None, 5.5])
def test_a_slice_reader_reads_what_extract_slices_reads(volume, rotations, max_radius):
    half = volume_to_padded_ft(volume, PAD, PIXEL, half=True)
    reader = SliceReader(half, BOX, PAD)
    expected = extract_slices(half, rotations, BOX, PAD, max_radius)
    for batch in (rotations[:5], rotations[5:]):  # batch after batch from the one grid
        got = reader.slices(batch, max_radius)
        assert _close(got, extract_slices(half, batch, BOX, PAD, max_radius))
    columns = reader.half_slices(rotations, max_radius)
    assert columns.shape == (len(rotations), BOX, BOX // 2 + 1)
    assert _close(columns[:, :, : BOX // 2], expected[:, :, BOX // 2 :])
    with pytest.raises(ValueError, match="a half grid of size 48"):
        SliceReader(volume_to_padded_ft(volume, PAD, PIXEL), BOX, PAD)  # the full layout


def test_a_slice_reader_reads_chosen_frequencies_as_its_half_slices(volume, rotations):
    reader = SliceReader.from_map(volume, PAD, PIXEL)
    columns = reader.half_slices(rotations)[:, :, : BOX // 2].reshape(len(rotations), -1)
    # the columns' frequencies, flattened as the columns are (rows ky, then kx)
    every_ky, every_kx = torch.meshgrid(
        torch.arange(BOX) - BOX // 2, torch.arange(BOX // 2), indexing="ij"
    )
    every_kx, every_ky = every_kx.reshape(-1).double(), every_ky.reshape(-1).double()
    inside = every_kx**2 + every_ky**2 <= default_max_radius(BOX, PAD) ** 2
    kept = torch.as_tensor(np.random.default_rng(3).permutation(int(inside.sum()))[:40])
    kept = inside.nonzero().squeeze(1)[kept]
    kx, ky = every_kx[kept], every_ky[kept]
    # the same reads, only the frequencies asked for
    assert torch.equal(reader.half_samples(rotations, kx, ky), columns[:, kept])
    with pytest.raises(ValueError, match="outside"):
        reader.half_samples(rotations, kx + BOX // 2, ky)
    with pytest.raises(ValueError, match="outside"):
        reader.half_samples(rotations, -kx - 1, ky)


def test_the_slice_reader_and_the_differentiable_sampler_read_alike_in_single_precision(
    volume, rotations
):
    half = volume_to_padded_ft(volume, PAD, PIXEL, half=True).to(torch.complex64)
    got = SliceReader(half, BOX, PAD).slices(rotations.float())
    expected = extract_slices(half, rotations.float(), BOX, PAD)
    assert got.dtype == expected.dtype == torch.complex64
    assert bool((got - expected).abs().max() <= 1e-4 * expected.abs().max())


def test_a_slice_reader_from_a_map_reads_its_gridding_corrected_transform(volume, rotations):
    half = volume_to_padded_ft(volume, PAD, PIXEL, gridding_correction=True, half=True)
    expected = extract_slices(half, rotations, BOX, PAD)
    assert _close(SliceReader.from_map(volume, PAD, PIXEL).slices(rotations), expected)
    with pytest.raises(ValueError, match="cube"):
        SliceReader.from_map(volume[:-1], PAD, PIXEL)


def test_apodization_and_bad_arguments(volume, rotations):
    apod = trilinear_apodization(BOX, PAD, dtype=torch.float64)
    assert float(apod[BOX // 2, BOX // 2, BOX // 2]) == 1.0
    edge = float(np.sinc(-(BOX // 2) / (PAD * BOX)) ** 2)
    assert math.isclose(float(apod[BOX // 2, BOX // 2, 0]), edge, rel_tol=1e-12)
    grid = volume_to_padded_ft(volume, PAD, PIXEL)
    with pytest.raises(ValueError, match="max_radius"):
        extract_slices(grid, rotations, BOX, PAD, max_radius=BOX / 2)
    with pytest.raises(ValueError, match="does not match"):
        extract_slices(grid, rotations, BOX, 3)
    with pytest.raises(ValueError, match="even"):
        volume_to_padded_ft(torch.zeros(5, 5, 5), PAD)


@pytest.mark.parametrize("pad", [1, 2, 3])
def test_frequencies_gathered_to_nyquist_less_one_grid_step_stay_on_the_grid(pad):
    """Up to ``D/2 − 1/pad`` every trilinear neighbour exists, also for views along the grid's
    axes (a frequency of integer radius on an axis at pad 1): each point's weights add up to one
    on the grid, and the half layout takes the same points."""
    box = 16
    limit = default_max_radius(box, pad)
    assert box / 2 - 1.0 / pad - 0.01 < limit < box / 2 - 1.0 / pad
    turns = [
        np.eye(3),
        np.array([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]]),
        np.array([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]]),
        np.array([[0.0, -1, 0], [1, 0, 0], [0, 0, 1]]),
    ]
    rotations = torch.tensor(np.stack(turns + list(random_rotations(6, seed=7))))
    weights = torch.ones(len(rotations), box, box, dtype=torch.float64)
    values = torch.ones(len(rotations), box, box, dtype=torch.complex128)
    k = torch.arange(box) - box // 2
    kept = int(((k[:, None] ** 2 + k[None, :] ** 2) <= limit**2).sum())
    size = pad * box
    for shape in [(size, size, size), (size, size, size // 2 + 1)]:
        data = torch.zeros(shape, dtype=torch.complex128)
        weight = torch.zeros(shape, dtype=torch.float64)
        insert_slices(values, rotations, box, pad, data, weights, weight)
        if shape[2] == size:
            assert math.isclose(float(weight.sum()), len(rotations) * kept, rel_tol=1e-12)


@pytest.mark.parametrize("pad", [1, 2, 3])
def test_the_grid_reader_is_the_gathers_twin_at_every_pad(pad):
    """:class:`HalfGridReader` (grid_sample) against :func:`_read` (the gather HalfSlices reads
    with), points to the padded grid's limit and on both sides of the mirror plane ``Kx = 0``."""
    from cryosplat.core.half_slices import HalfGridReader, HalfPlane, _extend, _read

    gen = torch.Generator().manual_seed(pad)
    size = BOX * pad
    grid = torch.fft.rfftn(torch.randn(size, size, size, generator=gen, dtype=torch.float64))
    rotations = torch.as_tensor(random_rotations(40, seed=pad))
    rotations[0] = torch.eye(3, dtype=torch.float64)  # a slice in the plane Kx, Ky
    rotations[1] = torch.tensor([[0.0, 0, 1], [0, 1, 0], [-1, 0, 0]], dtype=torch.float64)
    plane = HalfPlane(BOX, pad, "cpu", torch.float64)
    got = HalfGridReader(grid).read(rotations, plane, 7)
    expected = _read(_extend(grid).reshape(-1), rotations, plane, 7)
    assert _close(got, expected)
