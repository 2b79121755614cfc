"""A detector's MTF (``cryosplat.io.mtf_star``) and its division out of a map before sharpening
(``cryosplat.validation.sharpening.divide_by_mtf``, ``cryosplat sharpen --mtf``), as
``relion_postprocess --mtf --mtf_angpix`` does it."""

from __future__ import annotations

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.core.errors import InputError
from cryosplat.io.mrc import read_map, write_map
from cryosplat.io.mtf_star import MTFCurve, read_mtf_star
from cryosplat.validation.fsc import fsc
from cryosplat.validation.sharpening import divide_by_mtf, shell_amplitudes

BOX, PIXEL = 40, 1.0


def _curve() -> MTFCurve:
    """A counting detector's fall: sinc of the pixel times a gentle Gaussian, 0.45 at Nyquist."""
    x = np.linspace(0.0, 0.5, 51)
    return MTFCurve(x, np.sinc(x) * np.exp(-1.4 * x**2))


def _write_curve(path, curve: MTFCurve, block: str = "mtf_k2_300kv") -> None:
    rows = "\n".join(
        f"{a:.6f}\t{b:.8f}" for a, b in zip(curve.inverse_pixel, curve.value, strict=True)
    )
    path.write_text(
        f"\n# a detector's MTF\ndata_{block}\n\nloop_\n_rlnResolutionInversePixel\n_rlnMtfValue\n"
        f"{rows}\n"
    )


def _frequency() -> np.ndarray:
    """|k| (1/Å) on the full FFT grid of the test box."""
    k = np.fft.fftfreq(BOX) / PIXEL
    return np.sqrt(k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2)


def _map(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    volume = np.zeros((BOX, BOX, BOX))
    idx = rng.integers(10, 30, size=(400, 3))
    np.add.at(volume, tuple(idx.T), rng.uniform(0.5, 1.5, size=400))
    return volume


def _through_detector(volume: np.ndarray, curve: MTFCurve, detector_pixel: float) -> np.ndarray:
    """``volume`` with every frequency inside Nyquist times the MTF read at ``s·detector_pixel``."""
    s = _frequency()
    factor = np.where(s < 0.5 / PIXEL, curve.at(s * detector_pixel), 1.0)
    return np.real(np.fft.ifftn(np.fft.fftn(volume) * factor))


def test_a_relion_mtf_file_is_read_whatever_its_block_and_interpolated_as_relion_does(tmp_path):
    curve = _curve()
    path = tmp_path / "mtf.star"
    _write_curve(path, curve)
    read = read_mtf_star(path)
    np.testing.assert_allclose(read.inverse_pixel, curve.inverse_pixel, atol=1e-6)
    np.testing.assert_allclose(read.value, curve.value, atol=1e-8)
    _write_curve(path, curve, block="")
    assert read_mtf_star(path).at(np.array([0.0]))[0] == pytest.approx(1.0)
    # linear between rows, held at the ends
    two = MTFCurve(np.array([0.1, 0.3]), np.array([0.9, 0.5]))
    np.testing.assert_allclose(two.at(np.array([0.0, 0.2, 0.25, 0.6])), [0.9, 0.7, 0.6, 0.5])


def test_a_bad_mtf_file_is_refused_naming_the_file_and_row(tmp_path):
    path = tmp_path / "mtf.star"
    path.write_text("data_\nloop_\n_rlnResolutionInversePixel\n_rlnFscValue\n0 1\n0.5 0.4\n")
    with pytest.raises(InputError, match="no loop with _rlnResolutionInversePixel and _rlnMtf"):
        read_mtf_star(path)
    path.write_text("data_\nloop_\n_rlnResolutionInversePixel\n_rlnMtfValue\n0 1\n0.5 0\n")
    with pytest.raises(InputError, match=r"mtf.star: the MTF must be positive, row 2 holds 0"):
        read_mtf_star(path)
    path.write_text(
        "data_\nloop_\n_rlnResolutionInversePixel\n_rlnMtfValue\n0 1\n0.3 0.6\n0.2 0.5\n"
    )
    with pytest.raises(InputError, match="frequencies must increase, row 3"):
        read_mtf_star(path)
    path.write_text("data_\nloop_\n_rlnResolutionInversePixel\n_rlnMtfValue\n0 1\n0.5 x\n")
    with pytest.raises(InputError, match="'x' is not a number"):
        read_mtf_star(path)


@pytest.mark.parametrize("detector_pixel", [PIXEL, 0.5 * PIXEL])
def test_dividing_gives_back_the_map_the_detector_saw_at_its_own_pixel(detector_pixel):
    truth = _map()
    seen = _through_detector(truth, _curve(), detector_pixel)
    restored = divide_by_mtf(seen, PIXEL, _curve(), detector_pixel)
    assert restored.dtype == np.float32
    freq, amp_truth = shell_amplitudes(truth, PIXEL)
    _, amp_restored = shell_amplitudes(restored, PIXEL)
    _, amp_seen = shell_amplitudes(seen, PIXEL)
    inside = freq < 0.5 / PIXEL - 1.0 / (BOX * PIXEL)
    np.testing.assert_allclose(amp_restored[inside], amp_truth[inside], rtol=1e-4)
    # what was divided: at the map's Nyquist the curve is read at 0.5 · detector / map pixel
    last = np.flatnonzero(inside)[-1]
    expected = _curve().at(np.array([freq[last] * detector_pixel]))[0]
    assert amp_seen[last] / amp_truth[last] == pytest.approx(expected, rel=0.02)
    # the division scales each frequency by a number of its magnitude: every FSC is kept
    noisy = seen + 0.05 * np.random.default_rng(1).standard_normal(seen.shape)
    before = fsc(noisy, truth)
    after = fsc(divide_by_mtf(noisy, PIXEL, _curve(), detector_pixel), truth)
    np.testing.assert_allclose(after[: BOX // 2], before[: BOX // 2], atol=0.005)
    with pytest.raises(ValueError, match="the detector's -1"):
        divide_by_mtf(seen, PIXEL, _curve(), -1.0)


def test_sharpen_divides_by_the_mtf_before_its_guinier_fit(tmp_path, capsys):
    source, star = tmp_path / "map.mrc", tmp_path / "mtf.star"
    _write_curve(star, _curve())
    write_map(source, _through_detector(_map(2), _curve(), 0.5 * PIXEL), PIXEL)
    plain, divided = tmp_path / "plain.mrc", tmp_path / "divided.mrc"
    common = ["--resolution", "2.0", "--bfactor", "0"]
    assert main(["sharpen", str(source), "-o", str(plain), *common]) == 0
    capsys.readouterr()
    args = ["sharpen", str(source), "-o", str(divided), *common, "--mtf", str(star)]
    assert main([*args, "--mtf-angpix", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "divided by the MTF in" in text and "detector pixel 0.5 Å;" in text
    assert f"Nyquist {_curve().at(np.array([0.25]))[0]:.3f}" in text
    freq, amp_plain = shell_amplitudes(read_map(plain)[0], PIXEL)
    _, amp_divided = shell_amplitudes(read_map(divided)[0], PIXEL)
    shell = int(0.4 * BOX)  # 0.4 cycles per map pixel: 0.2 per detector pixel
    ratio = amp_plain[shell] / amp_divided[shell]
    assert ratio == pytest.approx(_curve().at(np.array([0.2]))[0], rel=0.02)
    # the map's own pixel where none is given, said so
    assert main([*args, "--overwrite"]) == 0
    assert "the map's: --mtf-angpix sets it" in capsys.readouterr().out


def test_sharpen_refuses_an_mtf_pixel_without_a_curve_and_a_bad_curve(tmp_path, capsys):
    source, star = tmp_path / "map.mrc", tmp_path / "mtf.star"
    write_map(source, _map(3), PIXEL)
    out = str(tmp_path / "out.mrc")
    assert main(["sharpen", str(source), "-o", out, "--resolution", "3", "--mtf-angpix", "1"]) == 2
    assert "--mtf-angpix needs --mtf" in capsys.readouterr().err
    star.write_text("data_\nloop_\n_rlnResolutionInversePixel\n_rlnMtfValue\n0 1\n0.5 -0.1\n")
    assert main(["sharpen", str(source), "-o", out, "--resolution", "3", "--mtf", str(star)]) == 2
    assert "must be positive, row 2" in capsys.readouterr().err
    _write_curve(star, _curve())
    bad = ["--mtf", str(star), "--mtf-angpix", "0"]
    assert main(["sharpen", str(source), "-o", out, "--resolution", "3", *bad]) == 2
    assert "--mtf-angpix must be positive, got 0" in capsys.readouterr().err
