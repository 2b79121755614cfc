"""The custom autograd functions on the grid engine's path against float64 gradcheck and twins.

``_FootprintTerms`` (a Gaussian's footprint terms from its parameters), ``_FootprintSum``
(voxelisation) and ``_SpectrumLoss`` (the gridded loss) have analytic backward passes; each is checked by ``torch.autograd.gradcheck`` in float64 and against a plain-autograd
twin with the same signature (values and gradients), and a deliberately wrong backward is shown to
fail the same gradcheck, so the check can fail.
"""

from __future__ import annotations

import pytest
import torch

from cryosplat.core.padded_transform import (
    corner_rfft_adjoint,
    padded_rfft,
    wrapped_to_corner_phase,
)
from cryosplat.model.footprint_terms import _FootprintTerms, footprint_terms_reference
from cryosplat.model.voxelize import FootprintChunk, _FootprintSum, footprint_sum_reference
from cryosplat.reconstruct.grid.loss import _SpectrumLoss, spectrum_loss_reference


def _footprint_inputs(seed: int = 0):
    """weight (M,), q0 (M,), coef (M, 9), two chunks of footprints (K = 7 and 5 voxels) whose
    buffer indices repeat, buffer size S."""
    g = torch.Generator().manual_seed(seed)
    m, s = 5, 12
    weight = torch.rand(m, dtype=torch.float64, generator=g) + 0.5
    q0 = torch.rand(m, dtype=torch.float64, generator=g)
    coef = 0.3 * torch.randn(m, 9, dtype=torch.float64, generator=g)
    chunks = []
    for start, stop, k in ((0, 3, 7), (3, 5, 5)):
        basis = torch.randint(-1, 2, (10, k), generator=g).double()
        basis[9] = 1.0
        base = torch.randint(0, 4, (stop - start,), generator=g)
        offsets = torch.randint(0, s - 4, (k,), generator=g)
        chunks.append(FootprintChunk(start, stop, basis, base, offsets))
    return weight, q0, coef, chunks, s


def _terms_inputs(seed: int = 0, n: int = 7):
    """means, scales, quaternions (not unit), amplitudes (signed) of ``n`` Gaussians, a
    permutation, the nearest voxels in its order, a mask with two Gaussians dropped, the pixel."""
    g = torch.Generator().manual_seed(seed)
    pixel = 1.3
    means = 5.0 * torch.randn(n, 3, dtype=torch.float64, generator=g)
    scales = 0.5 + 2.0 * torch.rand(n, 3, dtype=torch.float64, generator=g)
    quaternions = torch.randn(n, 4, dtype=torch.float64, generator=g)
    amplitudes = torch.randn(n, dtype=torch.float64, generator=g)
    order = torch.randperm(n, generator=g)
    centre = torch.round(means[order] / pixel).long()
    keep = torch.ones(n, dtype=torch.bool)
    keep[[2, 5]] = False
    return (means, scales, quaternions, amplitudes), (order, centre, keep, pixel)


def _spectrum_inputs(seed: int = 0, box: int = 4, size: int = 8):
    """volume (box³), weights (size, size, size//2 + 1) ≥ 0, data (same) complex, size:
    padded (the default: the cropped inverse of the backward pass) or ``size == box`` (odd too:
    the columns that stand for two frequencies then run to the last)."""
    g = torch.Generator().manual_seed(seed)
    volume = torch.randn(box, box, box, dtype=torch.float64, generator=g)
    half = (size, size, size // 2 + 1)
    weights = torch.rand(*half, dtype=torch.float64, generator=g)
    data = torch.randn(*half, dtype=torch.complex128, generator=g)
    return volume, weights, data, size


class _FootprintSumWrongBackward(_FootprintSum):
    """A plausible bug: the ``−½`` of ``exp(−q/2)`` left out of the ``q`` gradients."""

    @staticmethod
    def backward(ctx, grad_out):
        grads = list(_FootprintSum.backward(ctx, grad_out))
        grads[1], grads[2] = -2.0 * grads[1], -2.0 * grads[2]
        return tuple(grads)


class _FootprintTermsWrongBackward(_FootprintTerms):
    """A plausible bug: the products ``q_a q_b`` differentiated in one factor only (``G q``
    for ``(G + Gᵀ) q``, half the quaternions' gradient)."""

    @staticmethod
    def backward(ctx, g_weight, g_q0, g_coef):
        grads = list(_FootprintTerms.backward(ctx, g_weight, g_q0, g_coef))
        grads[2] = 0.5 * grads[2]
        return tuple(grads)


class _SpectrumLossWrongBackward(_SpectrumLoss):
    """A plausible bug: the gradient of the loss with respect to the map taken twice as large."""

    @staticmethod
    def backward(ctx, grad_loss, grad_spectrum):
        grads = list(_SpectrumLoss.backward(ctx, grad_loss, grad_spectrum))
        grads[0] = 2.0 * grads[0]
        return tuple(grads)


class _SpectrumLossWrongCoarse(_SpectrumLoss):
    """A plausible bug: the coarse part's gradient without the conjugate of its phase."""

    @staticmethod
    def backward(ctx, grad_loss, grad_spectrum):
        grads = list(_SpectrumLoss.backward(ctx, grad_loss, grad_spectrum))
        grads[1] = torch.roll(grads[1], 1, dims=0)
        return tuple(grads)


@pytest.mark.parametrize(
    "function,passes", [(_FootprintSum, True), (_FootprintSumWrongBackward, False)]
)
def test_footprint_sum_gradcheck(function, passes):
    weight, q0, coef, chunks, size = _footprint_inputs()
    inputs = tuple(t.clone().requires_grad_() for t in (weight, q0, coef))

    def f(w, q, c):
        return function.apply(w, q, c, chunks, size)

    assert torch.autograd.gradcheck(f, inputs, raise_exception=False) is passes


def test_footprint_sum_equals_its_plain_autograd_twin():
    values = _footprint_inputs(seed=1)
    probe = torch.randn(values[4], dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    results = []
    for fn in (_FootprintSum.apply, footprint_sum_reference):
        leaves = [t.clone().requires_grad_() for t in values[:3]]
        result = fn(*leaves, *values[3:])
        (result * probe).sum().backward()
        results.append((result.detach(), [t.grad for t in leaves]))
    (fused, fused_grads), (plain, plain_grads) = results
    torch.testing.assert_close(fused, plain, rtol=1e-12, atol=1e-12)
    for a, b in zip(fused_grads, plain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize(
    "function,passes", [(_FootprintTerms, True), (_FootprintTermsWrongBackward, False)]
)
def test_footprint_terms_gradcheck(function, passes):
    leaves, fixed = _terms_inputs()
    inputs = tuple(t.clone().requires_grad_() for t in leaves)

    def f(*params):
        return function.apply(*params, *fixed)

    assert torch.autograd.gradcheck(f, inputs, raise_exception=False) is passes


def test_footprint_terms_equal_their_plain_autograd_twin():
    """Values and gradients (every output probed at once) of the fused terms and the plain
    expression, with Gaussians dropped from the buffer and a shuffled order."""
    leaves, fixed = _terms_inputs(seed=4, n=9)
    g = torch.Generator().manual_seed(5)
    results = []
    for fn in (_FootprintTerms.apply, footprint_terms_reference):
        params = [t.clone().requires_grad_() for t in leaves]
        outputs = fn(*params, *fixed)
        if not results:
            probes = [torch.randn(o.shape, dtype=o.dtype, generator=g) for o in outputs]
        sum((o * p).sum() for o, p in zip(outputs, probes, strict=True)).backward()
        results.append(([o.detach() for o in outputs], [t.grad for t in params]))
    (fused, fused_grads), (plain, plain_grads) = results
    assert float(fused[0][~fixed[2]].abs().max()) == 0.0  # dropped Gaussians weigh nothing
    for a, b in zip(fused + fused_grads, plain + plain_grads, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "function,passes", [(_SpectrumLoss, True), (_SpectrumLossWrongBackward, False)]
)
def test_spectrum_loss_gradcheck(function, passes):
    volume, weights, data, size = _spectrum_inputs()

    def f(v):
        return function.apply(v, None, weights, data, size)[0]

    assert torch.autograd.gradcheck(f, (volume.requires_grad_(),), raise_exception=False) is passes


@pytest.mark.parametrize(
    "function,passes", [(_SpectrumLoss, True), (_SpectrumLossWrongCoarse, False)]
)
@pytest.mark.parametrize("box,size", [(8, 16), (6, 6), (10, 10)])
def test_spectrum_loss_with_a_coarse_part_gradcheck(function, passes, box, size):
    """The loss of a map with a part at twice the voxel size (model.two_grid), in both parts:
    padded, unpadded with an odd coarse box (6 → 3) and an odd coarse padded size (10 → 5)."""
    volume, weights, data, size = _spectrum_inputs(seed=7, box=box, size=size)
    g = torch.Generator().manual_seed(8)
    coarse = torch.randn((box // 2,) * 3, dtype=torch.float64, generator=g)

    def f(v, c):
        return function.apply(v, c, weights, data, size)[0]

    inputs = (volume.requires_grad_(), coarse.requires_grad_())
    assert torch.autograd.gradcheck(f, inputs, raise_exception=False) is passes


@pytest.mark.parametrize(
    "box,size,coarse",
    [(4, 8, False), (5, 10, False), (6, 6, False), (5, 5, False), (8, 16, True), (6, 6, True)],
)
def test_spectrum_loss_equals_its_plain_autograd_twin(box, size, coarse):
    volume, weights, data, size = _spectrum_inputs(seed=3, box=box, size=size)
    g = torch.Generator().manual_seed(4)
    part = torch.randn((box // 2,) * 3, dtype=torch.float64, generator=g) if coarse else None
    results = []
    for fn in (_SpectrumLoss.apply, spectrum_loss_reference):
        leaf = volume.clone().requires_grad_()
        leaf_c = None if part is None else part.clone().requires_grad_()
        loss, spectrum = fn(leaf, leaf_c, weights, data, size)
        loss.backward()
        results.append((loss.detach(), spectrum, leaf.grad))
        if leaf_c is not None:
            results[-1] += (leaf_c.grad,)
    for custom, plain in zip(*results, strict=True):
        torch.testing.assert_close(custom, plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("box,size", [(4, 8), (6, 6), (5, 5), (3, 7), (5, 10)])
def test_rfft_adjoints_equal_autograd_of_the_transform(box, size):
    """Both placements' adjoints against PyTorch's own backward of ``rfftn``, odd sizes included
    (there every column past the first stands for two frequencies; until round 2 the last one was
    counted once, a wrong gradient for odd unpadded boxes)."""
    g = torch.Generator().manual_seed(box * 100 + size)
    grad = torch.randn(size, size, size // 2 + 1, dtype=torch.complex128, generator=g)
    volume = torch.randn(box, box, box, dtype=torch.float64, generator=g)
    corner = volume.clone().requires_grad_()
    (grad * torch.fft.rfftn(corner, s=(size,) * 3).conj()).real.sum().backward()
    torch.testing.assert_close(corner_rfft_adjoint(grad, box, size), corner.grad)
    wrapped = volume.clone().requires_grad_()
    (grad * padded_rfft(wrapped, size).conj()).real.sum().backward()
    reference = wrapped.grad
    placed = volume.clone().requires_grad_()
    shift = [(i - box // 2) % size for i in range(box)]
    grid = torch.zeros((size,) * 3, dtype=torch.float64)
    grid[torch.tensor(shift)[:, None, None], torch.tensor(shift)[None, :, None], shift] = placed
    (grad * torch.fft.rfftn(grid).conj()).real.sum().backward()
    torch.testing.assert_close(reference, placed.grad)
    # The two placements' spectra differ by the phase of the shift.
    along_zy, along_x = wrapped_to_corner_phase(box, size, dtype=torch.complex128)
    shifted = (
        padded_rfft(volume, size) * along_zy[:, None, None] * along_zy[None, :, None] * along_x
    )
    torch.testing.assert_close(shifted, torch.fft.rfftn(volume, s=(size,) * 3))
