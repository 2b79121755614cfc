"""A mask the user gives: checked, brought to the map's grid, and the resolution read within it."""

from __future__ import annotations

import json
import logging

import mrcfile
import numpy as np
import pytest
import torch

from cryosplat.cli.main import main
from cryosplat.core.errors import InputError
from cryosplat.core.fourier import fourier_crop_volume
from cryosplat.io.mrc import read_map, write_map
from cryosplat.model.gaussians import GaussianModel
from cryosplat.validation.crossval import cross_validated_fsc
from cryosplat.validation.masks import auto_mask, spherical_mask
from cryosplat.validation.user_mask import (
    FSCMask,
    core_coverage,
    coverage_warning,
    load_fsc_mask,
)

BOX, PIXEL = 48, 2.0


def _mask_file(tmp_path, volume, voxel=PIXEL, name="mask.mrc"):
    path = tmp_path / name
    if voxel > 0:
        write_map(path, np.asarray(volume, dtype=np.float32), voxel)
    else:  # a header without a voxel size
        with mrcfile.new(path) as m:
            m.set_data(np.asarray(volume, dtype=np.float32))
    return path


def test_a_mask_on_the_maps_grid_is_taken_as_it_is(tmp_path):
    sphere = spherical_mask(BOX, radius_px=10.0, soft_width_px=4.0)
    mask = load_fsc_mask(_mask_file(tmp_path, sphere), BOX, PIXEL)
    assert isinstance(mask, FSCMask) and mask.name.endswith("mask.mrc")
    np.testing.assert_allclose(mask.volume, sphere, atol=1e-7)
    assert load_fsc_mask(None, BOX, PIXEL) is None
    # An unset voxel size (0 in the header) is not a mismatch.
    assert load_fsc_mask(_mask_file(tmp_path, sphere, voxel=0.0, name="m0.mrc"), BOX, PIXEL)
    # A resampled mask's ringing (relion_image_handler --rescale_angpix: -0.072 to 1.080) is
    # clipped, not refused.
    ringing = np.where(sphere > 0.99, 1.08, np.where(sphere < 0.01, -0.072, sphere))
    clipped = load_fsc_mask(_mask_file(tmp_path, ringing, name="ringing.mrc"), BOX, PIXEL)
    assert clipped.volume.min() == 0.0 and clipped.volume.max() == 1.0


def _corner_cube(box: int) -> np.ndarray:
    """A mask whose inside lies in its box's corner, far outside a box of 48 about the centre."""
    volume = np.zeros((box,) * 3)
    volume[:10, :10, :10] = 1.0
    return volume


@pytest.mark.parametrize(
    ("volume", "voxel", "words"),
    [
        (np.ones((40, 40, 40)), 0.0, "the mask's box is 40, the map's 48, and its header holds no"),
        (_corner_cube(120), PIXEL, "holds nothing on the map's grid"),
        (np.ones((BOX,) * 3), 1.0, "voxel size is 1 Å, the map's grid of box 48 has 2 Å"),
        (np.full((BOX,) * 3, 3.0), PIXEL, "holds values from 3 to 3"),
        (np.zeros((BOX,) * 3), PIXEL, "holds nothing"),
    ],
)
def test_what_is_not_a_mask_of_the_maps_grid_is_refused_naming_it(tmp_path, volume, voxel, words):
    with pytest.raises(InputError, match=words):
        load_fsc_mask(_mask_file(tmp_path, volume, voxel), BOX, PIXEL)


def test_a_mask_of_the_particles_box_is_fourier_cropped_to_the_maps():
    """The same physical sphere: radius 12 voxels of 2 Å at box 48, 6 voxels of 4 Å at box 24,
    about voxel D // 2 of each; values kept in [0, 1]."""
    big = spherical_mask(BOX, radius_px=12.0, soft_width_px=6.0)
    small = spherical_mask(24, radius_px=6.0, soft_width_px=3.0)
    cropped = fourier_crop_volume(torch.as_tensor(big, dtype=torch.float64), 24).numpy()
    assert np.abs(cropped - small).max() < 0.08
    assert np.abs(cropped - small).mean() < 0.005
    constant = fourier_crop_volume(
        torch.full((25, 25, 25), 0.7, dtype=torch.float64), 24
    )  # an odd box, as images' are
    np.testing.assert_allclose(constant, 0.7, atol=1e-12)
    # From an odd box: the centre voxel D // 2 stays the centre, d // 2.
    odd = fourier_crop_volume(
        torch.as_tensor(spherical_mask(25, radius_px=6.0, soft_width_px=4.0), dtype=torch.float64),
        24,
    ).numpy()
    same = spherical_mask(24, radius_px=6.0 * 24 / 25, soft_width_px=4.0 * 24 / 25)
    assert np.abs(odd - same).max() < 0.02
    with pytest.raises(ValueError, match="even"):
        fourier_crop_volume(torch.as_tensor(big), 23)


def test_a_mask_of_the_particles_grid_is_read_for_a_run_at_a_smaller_box(tmp_path):
    big = spherical_mask(BOX, radius_px=12.0, soft_width_px=6.0)
    path = _mask_file(tmp_path, big)
    mask = load_fsc_mask(path, 24, 2 * PIXEL, source_box=BOX, source_pixel_size_angstrom=PIXEL)
    assert mask.volume.shape == (24, 24, 24)
    assert mask.volume.min() >= 0.0 and mask.volume.max() <= 1.0
    bare = _mask_file(tmp_path, big, voxel=0.0, name="bare.mrc")
    with pytest.raises(InputError, match="box is 48, the map's 24 \\(the particles' 50\\), and"):
        load_fsc_mask(bare, 24, 2 * PIXEL, source_box=50, source_pixel_size_angstrom=PIXEL)


def test_a_mask_of_another_grid_is_resampled_centre_on_centre_and_named(tmp_path):
    """A refinement's mask of another box or voxel size (the unbinned particles', a larger box)
    is put on the map's grid from its header's voxel size: the same physical sphere about voxel
    D // 2 of each, in [0, 1], with a note; a larger box of the same voxel size is its centre."""
    target = spherical_mask(BOX, radius_px=10.0, soft_width_px=4.0)
    fine = spherical_mask(2 * BOX, radius_px=20.0, soft_width_px=8.0)  # 1 Å voxels
    mask = load_fsc_mask(_mask_file(tmp_path, fine, voxel=PIXEL / 2, name="fine.mrc"), BOX, PIXEL)
    assert mask.volume.shape == (BOX,) * 3
    assert mask.volume.min() >= 0.0 and mask.volume.max() <= 1.0
    assert np.abs(mask.volume - target).max() < 0.05
    assert mask.note is not None and "box 96 of 1 Å resampled onto the map's grid" in mask.note
    assert mask.name.endswith("fine.mrc")
    wide = spherical_mask(64, radius_px=10.0, soft_width_px=4.0)  # box 64 of 2 Å
    centre = load_fsc_mask(_mask_file(tmp_path, wide, name="wide.mrc"), BOX, PIXEL)
    np.testing.assert_allclose(centre.volume, wide[8:56, 8:56, 8:56], atol=1e-6)
    np.testing.assert_allclose(centre.volume, target, atol=1e-6)
    same = load_fsc_mask(_mask_file(tmp_path, target, name="same.mrc"), BOX, PIXEL)
    assert same.note is None
    boxed = load_fsc_mask(  # not cubic: centre voxels 20, 24, 22 on 24
        _mask_file(tmp_path, target[4:44, :, 2:46], name="boxed.mrc"), BOX, PIXEL
    )
    assert "box 44 × 48 × 40 (x, y, z) of 2 Å resampled" in boxed.note
    np.testing.assert_allclose(boxed.volume, target, atol=1e-6)


def test_a_mask_that_misses_the_molecule_is_named():
    """The mean of a mask over the molecule's core: about 1 for a mask over the molecule (the
    automatic one, a sphere about it), small for one placed elsewhere, which is warned of."""
    model = GaussianModel.random(
        300, BOX, PIXEL, seed=1, radius_fraction=0.12, scale_angstrom=1.2, dtype=torch.float64
    )
    volume = model.voxelize().detach().numpy()
    around = auto_mask(volume, PIXEL)
    assert core_coverage(around, volume, PIXEL) > 0.99
    assert core_coverage(spherical_mask(BOX), volume, PIXEL) > 0.99
    aside = np.roll(around, (BOX // 2, 0, 0), (0, 1, 2))  # half a box away: the solvent
    assert core_coverage(aside, volume, PIXEL) < 0.1
    assert coverage_warning(FSCMask(around, "around.mrc"), volume, PIXEL) is None
    warning = coverage_warning(FSCMask(aside, "aside.mrc"), volume, PIXEL)
    assert warning is not None and "the given mask aside.mrc covers " in warning
    assert core_coverage(around, np.zeros_like(volume), PIXEL) is None


def test_a_mask_of_an_odd_box_on_its_own_grid_is_taken_as_it_is(tmp_path):
    """An odd map's own mask (no crop can make an odd box): read as given, not refused."""
    odd = spherical_mask(33, radius_px=8.0, soft_width_px=3.0)
    mask = load_fsc_mask(_mask_file(tmp_path, odd, name="odd.mrc"), 33, PIXEL)
    np.testing.assert_array_equal(mask.volume, odd.astype(np.float64))


def _molecule_and_data(noise_sd: float):
    model = GaussianModel.random(
        300, BOX, PIXEL, seed=1, radius_fraction=0.12, scale_angstrom=1.2, dtype=torch.float64
    )
    truth = model.voxelize().detach().numpy()
    rng = np.random.default_rng(3)
    data = tuple(truth + noise_sd * truth.std() * rng.normal(size=truth.shape) for _ in range(2))
    return truth, data


def test_the_resolution_is_read_within_the_given_mask_and_the_spheres_kept_beside():
    """An exact model against noisy data: within a mask around the molecule the data vouch
    further than in the sphere; the report keeps the mask's reading, names the mask, and keeps
    the sphere's own reading and the models' FSC within the mask."""
    from cryosplat.reconstruct.half_map_report import CrossValidationInputs, evaluate_half_maps

    truth, data = _molecule_and_data(10.0)
    volume = auto_mask(truth, PIXEL)
    report, amask = evaluate_half_maps(
        truth,
        truth,
        PIXEL,
        crossval=CrossValidationInputs(data),
        user_mask=FSCMask(volume, "around.mrc"),
    )
    in_sphere = cross_validated_fsc(truth, truth, *data, spherical_mask(BOX), PIXEL)
    assert "the given mask around.mrc" in report.cv_mask and "around.mrc" in report.headline
    assert report.resolution_angstrom < 0.9 * in_sphere.resolution_angstrom
    out = report.to_dict()
    kept = out["cross_validated"]["soft_spherical_mask_reading"]
    assert kept["resolution_angstrom"] == pytest.approx(in_sphere.resolution_angstrom)
    assert out["model_half_maps"]["given_mask"]["file"] == "around.mrc"
    assert amask.shape == truth.shape  # the automatic mask is still made and returned


def test_a_mask_of_ones_reads_what_the_sphere_reads_up_to_its_cut():
    """The given mask is taken times the sphere: all ones is the sphere, with the sphere's FSC
    noise; the two readings differ only past the cut (where a given mask takes the lower bound
    in every shell it cannot read)."""
    from cryosplat.reconstruct.half_map_report import CrossValidationInputs, evaluate_half_maps

    truth, data = _molecule_and_data(2.0)
    report, _ = evaluate_half_maps(
        truth,
        truth,
        PIXEL,
        crossval=CrossValidationInputs(data),
        user_mask=FSCMask(np.ones(truth.shape), "ones"),
    )
    sphere = cross_validated_fsc(truth, truth, *data, spherical_mask(BOX), PIXEL)
    ours = report.cross_validated
    cut = sphere.vouched_shells or BOX // 2 + 1
    assert cut > 5  # the data vouch for some shells
    np.testing.assert_allclose(
        ours.model_vs_truth_estimate[:cut], sphere.model_vs_truth_estimate[:cut], atol=1e-9
    )


def test_reconstruct_with_a_mask_of_the_particles_grid_reports_within_it(
    tiny_set, tmp_path, capsys, caplog
):
    """Through the command line, at a smaller box than the particles' (--downsample): the mask
    of the particles' grid is cropped to the map's, the resolution is read within it, and
    fsc.json, run.json and ``cryosplat info`` say so; a mask of another grid whose header holds no
    voxel size stops the run before any work."""
    mask = spherical_mask(24, radius_px=7.0, soft_width_px=3.0)
    path = _mask_file(tmp_path, mask, voxel=4.0)
    out = tmp_path / "run"
    args = ["reconstruct", str(tiny_set), "-o", str(out), "--no-progress", "--downsample", "16"]
    assert main([*args, "--mask", str(path)]) == 0
    fsc = json.loads((out / "fsc.json").read_text())
    assert str(path) in fsc["cross_validated"]["mask"]
    assert "soft_spherical_mask_reading" in fsc["cross_validated"]
    summary = json.loads((out / "run.json").read_text())["summary"]
    assert summary["given_mask"] == str(path)
    assert summary["resolution_angstrom"] == fsc["resolution_angstrom"]
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"read within the given mask {path}" in text and "given mask" in text
    wrong = _mask_file(tmp_path, spherical_mask(20), voxel=0.0, name="wrong.mrc")
    assert main([*args[:3], str(tmp_path / "run2"), "--no-progress", "--mask", str(wrong)]) == 2
    assert "the mask's box is 20" in capsys.readouterr().err
    assert not (tmp_path / "run2").exists()
    assert not any("covers" in w for w in fsc["warnings"])  # a mask over the molecule
    # Another grid's mask, resampled and named; placed off the molecule (a corner): warned of.
    corner = np.roll(spherical_mask(20, radius_px=3.0, soft_width_px=2.0), (7, 7, 7), (0, 1, 2))
    placed = _mask_file(tmp_path, corner, voxel=4.0, name="placed.mrc")
    with caplog.at_level(logging.INFO, logger="cryosplat"):
        assert main([*args[:3], str(tmp_path / "run3"), *args[4:], "--mask", str(placed)]) == 0
    assert "placed.mrc: box 20 of 4 Å resampled onto the map's grid (box 16" in caplog.text
    warnings = json.loads((tmp_path / "run3" / "fsc.json").read_text())["warnings"]
    assert any(f"the given mask {placed} covers" in w for w in warnings)


def test_a_complete_run_with_kept_checkpoints_is_resumed_to_read_a_mask(tiny_set, tmp_path, capsys):
    """The mask made after the run: resumed from its kept checkpoints, nothing is fitted again,
    the map is the same to the bit, and the resolution is read within the mask."""
    out = tmp_path / "run"
    args = ["reconstruct", str(tiny_set), "-o", str(out), "--no-progress"]
    assert main([*args, "--keep-checkpoints"]) == 0
    before = read_map(out / "map.mrc")[0]
    first = json.loads((out / "fsc.json").read_text())["cross_validated"]["mask"]
    path = _mask_file(tmp_path, spherical_mask(24, radius_px=7.0, soft_width_px=3.0), voxel=4.0)
    assert main([*args, "--resume", "--mask", str(path)]) == 0
    np.testing.assert_array_equal(read_map(out / "map.mrc")[0], before)
    assert str(path) not in first
    assert str(path) in json.loads((out / "fsc.json").read_text())["cross_validated"]["mask"]
    log = (out / "log.txt").read_text()
    assert "outputs are made again from its kept checkpoints" in log
    assert json.loads((out / "run.json").read_text())["status"] == "complete"
    assert any((out / "checkpoints").iterdir())  # kept for the next remake, the flag or not
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert "kept: cryosplat reconstruct" in text
    assert "; the outputs made again since from the kept checkpoints" in text
