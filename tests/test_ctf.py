"""CTF: zeros at the analytic frequencies, sign, envelope, batching, dtype and bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from cryosplat.core.ctf import CTFParams, compute_ctf, ctf_from_params, electron_wavelength_angstrom

BOX, PIXEL = 256, 1.0


def _ctf(**kw):
    values = dict(
        defocus_u_angstrom=15000.0,
        defocus_v_angstrom=15000.0,
        defocus_angle_degrees=0.0,
        voltage_kv=300.0,
        cs_mm=2.7,
        amplitude_contrast=0.0,
    )
    values.update(kw)
    return compute_ctf(
        BOX, PIXEL, **{k: torch.tensor([float(v)], dtype=torch.float64) for k, v in values.items()}
    )[0].numpy()


def _analytic_zeros(defocus, voltage_kv=300.0, cs_mm=2.7, k_max=0.5):
    """Frequencies (1/Å) where χ = nπ, χ = πλΔf k² − (π/2) Cs λ³ k⁴, up to k_max."""
    lam = float(electron_wavelength_angstrom(voltage_kv))
    cs = cs_mm * 1e7
    zeros = []
    for n in range(1, 200):
        # (π/2) Cs λ³ u² − π λ Δf u + nπ = 0, u = k²; the small root is the n-th zero.
        a, b, c = 0.5 * cs * lam**3, -lam * defocus, float(n)
        disc = b * b - 4 * a * c
        if disc < 0:
            break
        u = (-b - math.sqrt(disc)) / (2 * a)
        if math.sqrt(u) > k_max:
            break
        zeros.append(math.sqrt(u))
    return np.array(zeros)


def _crossings(profile, k):
    """Linearly interpolated sign changes of a 1D profile sampled at frequencies k."""
    s = np.sign(profile)
    idx = np.flatnonzero(s[:-1] * s[1:] < 0)
    return k[idx] - profile[idx] * (k[idx + 1] - k[idx]) / (profile[idx + 1] - profile[idx])


def test_zeros_non_astigmatic():
    c = _ctf()
    k = (np.arange(BOX) - BOX // 2) / (BOX * PIXEL)
    expected = _analytic_zeros(15000.0, k_max=k[-1])
    for profile in (c[BOX // 2, BOX // 2 :], c[BOX // 2 :, BOX // 2]):
        found = _crossings(profile, k[BOX // 2 :])
        # Only zeros well separated from their neighbours are resolved by the grid.
        n = min(len(found), 8)
        np.testing.assert_allclose(found[:n], expected[:n], atol=0.1 / (BOX * PIXEL))


def test_zeros_astigmatic_along_x_and_y():
    du, dv = 12000.0, 20000.0
    c = _ctf(defocus_u_angstrom=du, defocus_v_angstrom=dv, defocus_angle_degrees=0.0)
    k = (np.arange(BOX) - BOX // 2) / (BOX * PIXEL)
    along_x = _crossings(c[BOX // 2, BOX // 2 :], k[BOX // 2 :])
    along_y = _crossings(c[BOX // 2 :, BOX // 2], k[BOX // 2 :])
    np.testing.assert_allclose(along_x[:5], _analytic_zeros(du)[:5], atol=0.1 / BOX)
    np.testing.assert_allclose(along_y[:5], _analytic_zeros(dv)[:5], atol=0.1 / BOX)
    # Rotating the astigmatism by 90° swaps the axes.
    c90 = _ctf(defocus_u_angstrom=du, defocus_v_angstrom=dv, defocus_angle_degrees=90.0)
    np.testing.assert_allclose(c90[BOX // 2, BOX // 2 :], c[BOX // 2 :, BOX // 2], atol=1e-9)


def test_positive_at_low_frequency():
    c = _ctf(amplitude_contrast=0.1)
    assert c[BOX // 2, BOX // 2] == pytest.approx(math.sin(math.atan(0.1 / math.sqrt(0.99))))
    assert c[BOX // 2, BOX // 2 + 1] > 0
    assert _ctf(amplitude_contrast=0.0)[BOX // 2, BOX // 2 + 2] > 0


def test_bfactor_envelope():
    plain, damped = (
        _ctf(amplitude_contrast=0.1),
        _ctf(amplitude_contrast=0.1, bfactor_angstrom2=100.0),
    )
    k = (np.arange(BOX) - BOX // 2) / (BOX * PIXEL)
    k2 = k[None, :] ** 2 + k[:, None] ** 2
    np.testing.assert_allclose(damped, plain * np.exp(-100.0 * k2 / 4.0), atol=1e-12)


def test_phase_shift_and_scale():
    base = _ctf(amplitude_contrast=0.0)
    shifted = _ctf(amplitude_contrast=0.0, phase_shift_degrees=90.0, scale=0.5)
    # sin(χ + π/2) = cos χ and sin χ: squares add to one (times the scale).
    np.testing.assert_allclose(base**2 + (2 * shifted) ** 2, np.ones_like(base), atol=1e-9)


def test_batch_matches_single_and_dtype():
    params = CTFParams.create(
        3,
        defocus_u_angstrom=[10000.0, 15000.0, 20000.0],
        defocus_v_angstrom=[11000.0, 15000.0, 19000.0],
        defocus_angle_degrees=[10.0, 0.0, 45.0],
    )
    batch = ctf_from_params(params, 32, 1.5)
    assert batch.shape == (3, 32, 32) and batch.dtype == torch.float32
    for i in range(3):
        one = ctf_from_params(params.subset([i]), 32, 1.5, dtype=torch.float64)
        assert one.dtype == torch.float64
        np.testing.assert_allclose(batch[i].numpy(), one[0].numpy(), atol=1e-6)
    assert ctf_from_params(params, 32, 1.5, device="cpu").device.type == "cpu"


def test_device_follows_input():
    t = {
        k: torch.tensor([v])
        for k, v in dict(
            defocus_u_angstrom=1e4,
            defocus_v_angstrom=1e4,
            defocus_angle_degrees=0.0,
            voltage_kv=300.0,
            cs_mm=2.7,
            amplitude_contrast=0.1,
        ).items()
    }
    out = compute_ctf(16, 2.0, **t)
    assert out.dtype == torch.float32 and out.device == t["defocus_u_angstrom"].device


@pytest.mark.parametrize("q", [1.0, -0.1, 1.5])
def test_bad_amplitude_contrast_raises(q):
    with pytest.raises(ValueError, match="amplitude_contrast"):
        CTFParams.create(2, defocus_u_angstrom=1e4, defocus_v_angstrom=1e4, amplitude_contrast=q)


def test_nan_field_raises():
    with pytest.raises(ValueError, match="defocus_u_angstrom"):
        CTFParams.create(2, defocus_u_angstrom=[1e4, np.nan], defocus_v_angstrom=1e4)


def test_wavelength_300kv():
    assert float(electron_wavelength_angstrom(300.0)) == pytest.approx(0.019687, abs=1e-5)
