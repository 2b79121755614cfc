"""Sharpening (``cryosplat.validation.sharpening``, ``cryosplat sharpen``): the Guinier B-factor of
a map blurred by a known one, its removal, and what sharpening leaves unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.io.mrc import read_map, read_map_origin, write_map
from cryosplat.validation.fsc import fsc
from cryosplat.validation.local_filter import local_filter
from cryosplat.validation.sharpening import (
    FILTER_EDGE_SHELLS,
    GuinierFit,
    guinier_fit,
    guinier_plot,
    sharpen,
    shell_amplitudes,
)

BOX, PIXEL = 48, 1.2


def _points_map(seed: int = 0) -> np.ndarray:
    """Random point masses blurred a little: a spectrum nearly flat past 10 Å, as Wilson's."""
    rng = np.random.default_rng(seed)
    volume = np.zeros((BOX, BOX, BOX))
    idx = rng.integers(12, 36, size=(600, 3))
    np.add.at(volume, tuple(idx.T), rng.uniform(0.5, 1.5, size=600))
    return _blurred(volume, 10.0)


def _blurred(volume: np.ndarray, bfactor: float) -> np.ndarray:
    """``volume`` times ``exp(−B s² / 4)`` in Fourier space."""
    k = np.fft.fftfreq(BOX) / PIXEL
    s2 = k[:, None, None] ** 2 + k[None, :, None] ** 2 + k[None, None, :] ** 2
    return np.real(np.fft.ifftn(np.fft.fftn(volume) * np.exp(-0.25 * bfactor * s2)))


def test_the_fit_reads_a_known_blur_as_its_b_factor():
    sharp = _points_map()
    base = guinier_fit(sharp, PIXEL, 3.0)
    for bfactor in (50.0, 150.0):
        fit = guinier_fit(_blurred(sharp, bfactor), PIXEL, 3.0)
        assert isinstance(fit, GuinierFit)
        assert fit.bfactor_angstrom2 - base.bfactor_angstrom2 == pytest.approx(bfactor, rel=0.03)
        assert fit.correlation < -0.95 and fit.shells >= 10
        assert fit.low_resolution_angstrom == 10.0 and 3.0 <= fit.high_resolution_angstrom < 3.2


def test_sharpening_by_minus_the_blur_gives_the_map_back_to_its_resolution():
    sharp = _points_map(1)
    blurred = _blurred(sharp, 120.0)
    restored = sharpen(blurred, PIXEL, -120.0, 2 * PIXEL)  # to Nyquist: nothing cut
    freq, amp_sharp = shell_amplitudes(sharp, PIXEL)
    _, amp_restored = shell_amplitudes(restored, PIXEL)
    band = (freq > 0) & (freq < 1 / (2 * PIXEL) - 2 / (BOX * PIXEL))
    np.testing.assert_allclose(amp_restored[band], amp_sharp[band], rtol=1e-4)
    assert restored.dtype == np.float32


def test_sharpening_leaves_each_shell_s_fsc_and_empties_past_the_low_pass():
    truth = _points_map(2)
    noisy = _blurred(truth, 80.0) + 0.02 * np.random.default_rng(3).standard_normal(truth.shape)
    resolution = 4.0
    out = sharpen(noisy, PIXEL, -80.0, resolution)
    before, after = fsc(noisy, truth), fsc(out, truth)
    cut = BOX * PIXEL / resolution  # shells
    inside = np.arange(len(before)) <= cut
    # the same to the factor's change across a shell's width
    np.testing.assert_allclose(after[inside], before[inside], atol=0.005)
    freq, amp = shell_amplitudes(out, PIXEL)
    assert np.all(amp[freq * BOX * PIXEL > cut + FILTER_EDGE_SHELLS + 0.5] < 1e-6 * amp[1])


def test_too_few_shells_and_bad_limits_are_refused_naming_the_values():
    volume = _points_map()
    with pytest.raises(ValueError, match="no finer than the Guinier band's coarse end 10 Å"):
        guinier_fit(volume, PIXEL, 12.0)
    with pytest.raises(ValueError, match="shells of the map lie between 10 Å"):
        guinier_fit(volume, PIXEL, 9.0)  # shells 6-7 only
    with pytest.raises(ValueError, match="must be positive"):
        guinier_fit(volume, PIXEL, -3.0)
    with pytest.raises(ValueError, match="positive resolution"):
        sharpen(volume, PIXEL, -50.0, 0.0)
    with pytest.raises(ValueError, match="cubic"):
        shell_amplitudes(np.zeros((4, 4, 5)), PIXEL)


def test_the_command_sharpens_a_map_and_keeps_its_voxel_and_origin(tmp_path, capsys):
    source = tmp_path / "map.mrc"
    write_map(source, _blurred(_points_map(4), 100.0), PIXEL, origin_angstrom=-0.6)
    out = tmp_path / "sharp.mrc"
    assert main(["sharpen", str(source), "-o", str(out), "--resolution", "3.5"]) == 0
    text = capsys.readouterr().out
    assert "Guinier fit 10-3." in text and "sharpened by B -" in text
    volume, voxel = read_map(out)
    assert voxel == pytest.approx(PIXEL) and read_map_origin(out) == pytest.approx(-0.6)
    fitted = guinier_fit(volume, PIXEL, 3.5)
    assert abs(fitted.bfactor_angstrom2) < 0.2 * 100.0  # the fall-off taken out
    svg = (tmp_path / "sharp_guinier.svg").read_text()
    assert "Guinier plot" in svg and "fit: B = " in svg and "Guinier plot " in text
    # a given B-factor instead of the fit
    assert (
        main(
            [
                "sharpen",
                str(source),
                "-o",
                str(out),
                "--resolution",
                "3.5",
                "--bfactor",
                "-40",
                "--overwrite",
            ]
        )
        == 0
    )
    assert "sharpened by B -40.0" in capsys.readouterr().out


def test_the_command_s_mask_is_checked_and_another_grid_s_resampled(tmp_path, capsys):
    """``--mask`` is read as every command reads a mask: a map given as one is refused, and a
    refinement's mask of another grid is put on the map's (the fit within it as within the same
    mask made on the map's grid)."""
    from cryosplat.validation.masks import spherical_mask

    source = tmp_path / "map.mrc"
    write_map(source, _blurred(_points_map(6), 100.0), PIXEL)
    not_a_mask = tmp_path / "other_map.mrc"
    write_map(not_a_mask, 50.0 * _points_map(7), PIXEL)
    base = ["sharpen", str(source), "--resolution", "3.5"]
    assert main([*base, "-o", str(tmp_path / "a.mrc"), "--mask", str(not_a_mask)]) == 2
    assert "is it a map rather than a mask?" in capsys.readouterr().err
    own = tmp_path / "own.mrc"
    write_map(own, spherical_mask(BOX, radius_px=14.0, soft_width_px=4.0), PIXEL)
    fine = tmp_path / "fine.mrc"  # the same sphere on a grid of half the voxel size
    write_map(fine, spherical_mask(2 * BOX, radius_px=28.0, soft_width_px=8.0), PIXEL / 2)
    assert main([*base, "-o", str(tmp_path / "own_sharp.mrc"), "--mask", str(own)]) == 0
    on_grid = capsys.readouterr().out
    assert main([*base, "-o", str(tmp_path / "fine_sharp.mrc"), "--mask", str(fine)]) == 0
    resampled = capsys.readouterr().out
    assert "resampled onto the map's grid" in resampled and "resampled" not in on_grid

    def bfactor(text: str) -> float:
        return float(text.split("sharpened by B ")[1].split()[0])

    assert bfactor(resampled) == pytest.approx(bfactor(on_grid), abs=2.0)


def test_the_command_refuses_what_it_cannot_do(tmp_path, capsys):
    source = tmp_path / "map.mrc"
    write_map(source, _points_map(5), PIXEL)
    out = tmp_path / "sharp.mrc"
    assert main(["sharpen", str(source), "-o", str(out)]) == 2
    assert "give --resolution" in capsys.readouterr().err
    assert main(["sharpen", str(source), "-o", str(out), "--resolution", "15"]) == 2
    assert "(--bfactor B)" in capsys.readouterr().err
    assert (
        main(["sharpen", str(source), "-o", str(source), "--resolution", "3", "--overwrite"]) == 2
    )
    assert "is the map being sharpened" in capsys.readouterr().err
    out.write_bytes(b"")
    assert main(["sharpen", str(source), "-o", str(out), "--resolution", "3"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"status": "running"}))
    assert main(["sharpen", str(folder), "-o", str(tmp_path / "x.mrc")]) == 2
    assert "a run that is running" in capsys.readouterr().err
    assert main(["sharpen", str(tmp_path / "none"), "-o", str(tmp_path / "y.mrc")]) == 2
    assert "none: not found (a reconstruct run folder or a map)" in capsys.readouterr().err
    local = ["sharpen", str(source), "-o", str(tmp_path / "z.mrc"), "--resolution", "3", "--local"]
    assert main(local) == 2
    assert "give --local-resolution MAP" in capsys.readouterr().err
    small = tmp_path / "small.mrc"
    write_map(small, np.full((8, 8, 8), 5.0, dtype=np.float32), PIXEL)
    assert main([*local[:-1], "--local-resolution", str(small)]) == 2
    assert "small.mrc: box 8 of 1.2 Å, the map's 48 of 1.2 Å" in capsys.readouterr().err
    assert not (tmp_path / "z.mrc").exists()


def test_the_command_reads_a_complete_run_folder(tiny_set, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["reconstruct", str(tiny_set), "-o", str(run), "--no-progress"]) == 0
    capsys.readouterr()
    resolution = json.loads((run / "fsc.json").read_text())["resolution_angstrom"]
    # at 4 Å/px the run's resolution leaves no shell finer than 10 Å to fit
    assert main(["sharpen", str(run), "-o", str(tmp_path / "a.mrc")]) == 2
    assert f"resolution {resolution:.2f} Å is no finer" in capsys.readouterr().err
    out = tmp_path / "b.mrc"
    assert main(["sharpen", str(run), "-o", str(out), "--bfactor", "-50"]) == 0
    assert f"low-passed at {resolution:.2f} Å" in capsys.readouterr().out
    volume, voxel = read_map(out)
    original, original_voxel = read_map(run / "map.mrc")
    assert voxel == pytest.approx(original_voxel) and volume.shape == original.shape
    # --local: the map filtered by the run's local resolution, on the same grid
    assert main(["sharpen", str(run), "-o", str(out), "--bfactor", "-50", "--local"]) == 2
    assert "b_local.mrc" not in capsys.readouterr().err  # b.mrc exists: nothing written
    args = ["sharpen", str(run), "-o", str(out), "--bfactor", "-50", "--local", "--overwrite"]
    assert main(args) == 0
    assert "within the mask" in capsys.readouterr().out
    local, local_voxel = read_map(tmp_path / "b_local.mrc")
    assert local_voxel == pytest.approx(original_voxel)
    assert read_map_origin(tmp_path / "b_local.mrc") == read_map_origin(run / "map.mrc")
    local_resolution = read_map(run / "local_resolution.mrc")[0]
    expected = local_filter(original, voxel, local_resolution, -50.0, coarsest_angstrom=resolution)
    np.testing.assert_allclose(local, expected, atol=1e-6)
    # `cryosplat info` names the command for a run finer than 10 Å only
    assert main(["info", str(run)]) == 0
    assert "sharpen:" not in capsys.readouterr().out
    status = json.loads((run / "run.json").read_text())
    status["summary"]["resolution_angstrom"] = 4.0
    (run / "run.json").write_text(json.dumps(status))
    assert main(["info", str(run)]) == 0
    assert f"sharpen:      cryosplat sharpen {run} -o OUT.mrc" in capsys.readouterr().out


def test_the_guinier_plot_draws_the_fit_over_its_band_only():
    blurred = _blurred(_points_map(6), 90.0)
    fit = guinier_fit(blurred, PIXEL, 3.0)
    plot = guinier_plot(blurred, sharpen(blurred, PIXEL, -fit.bfactor_angstrom2, 3.0), PIXEL, fit)
    plot.validate()
    labels = [c.label for c in plot.curves]
    assert labels == ["map", "sharpened", f"fit: B = {fit.bfactor_angstrom2:.1f} Å²"]
    s = np.sqrt(plot.x)
    line = plot.curves[2].y
    band = (s >= 0.1 - 1e-9) & (s <= 1 / fit.high_resolution_angstrom + 1e-9)
    assert np.all(np.isfinite(line[band])) and np.all(np.isnan(line[~band]))
    # the line lies on the map's curve over the band, within the scatter of the fit
    assert np.max(np.abs(line[band] - plot.curves[0].y[band])) < 0.5
    assert [c.label for c in guinier_plot(blurred, blurred, PIXEL).curves] == ["map", "sharpened"]
