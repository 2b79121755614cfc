"""``cryosplat fsc`` and :mod:`cryosplat.validation.map_comparison`: FSC physics, grid checks,
the hand and contrast notes, and the command's outputs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import mrcfile
import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.core.conventions import mirrored_map
from cryosplat.core.errors import InputError
from cryosplat.io.mrc import write_map
from cryosplat.model.atoms import model_from_atoms, read_atoms
from cryosplat.validation.map_comparison import (
    compare_maps,
    comparison_notes,
    read_inputs_on_one_grid,
    read_maps_on_one_grid,
)
from cryosplat.validation.masks import spherical_mask

BOX, PIXEL = 32, 3.0


def _blobs(seed: int = 0, box: int = BOX) -> np.ndarray:
    """An asymmetric molecule: Gaussian blobs of 1.5-2.5 voxels inside the box's central sphere."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(box)] * 3, indexing="ij"), -1).astype(np.float64)
    volume = np.zeros((box,) * 3)
    for _ in range(40):
        centre = box // 2 + rng.uniform(-0.25, 0.25, 3) * box
        width = rng.uniform(1.5, 2.5)
        volume += rng.uniform(0.5, 1.5) * np.exp(-((grid - centre) ** 2).sum(-1) / (2 * width**2))
    return volume.astype(np.float32)


def _lowpass(volume: np.ndarray, shell: int) -> np.ndarray:
    box = volume.shape[0]
    k = np.fft.fftfreq(box) * box
    radius = np.sqrt(sum(g**2 for g in np.meshgrid(k, k, k, indexing="ij")))
    return np.fft.ifftn(np.fft.fftn(volume) * (radius < shell)).real.astype(np.float32)


def _compare(reference, maps, mask=None):
    return compare_maps(reference, maps, PIXEL, mask, ("reference", "no mask"))


def test_a_map_low_passed_at_a_shell_crosses_there():
    truth = _blobs()
    result = _compare(truth, [("low-passed", _lowpass(truth, 6))]).maps[0]
    assert np.all(result.curve[1:6] > 0.999)
    assert np.all(np.abs(result.curve[7:]) < 0.2)  # past the cut only float32 rounding is left
    resolution = result.resolution_angstrom(0.5, PIXEL)
    assert BOX * PIXEL / 7 <= resolution <= BOX * PIXEL / 5


def test_each_curve_is_the_fsc_of_the_masked_maps_and_the_inputs_stay_as_given():
    """The reference's spectrum is made once for every map and mirror image, and the masked
    copies are made in place of scratch arrays only: the curves are :func:`fsc`'s of the masked
    maps, and neither the maps nor the mask change."""
    from cryosplat.validation.fsc import fsc

    truth, other = _blobs(0), _blobs(1)
    mask = spherical_mask(BOX)
    kept = [x.copy() for x in (truth, other, mask)]
    result = _compare(truth, [("other", other), ("truth", truth)], mask)
    for (name, volume), entry in zip(
        (("other", other), ("truth", truth)), result.maps, strict=True
    ):
        assert entry.name == name
        np.testing.assert_array_equal(entry.curve, fsc(volume * mask, truth * mask))
        np.testing.assert_array_equal(
            entry.mirrored, fsc(mirrored_map(volume) * mask, truth * mask)
        )
    for before, after in zip(kept, (truth, other, mask), strict=True):
        np.testing.assert_array_equal(before, after)


def test_equal_white_signal_and_noise_give_one_over_root_two_in_every_shell():
    rng = np.random.default_rng(1)
    signal = rng.normal(size=(BOX,) * 3).astype(np.float32)
    noisy = signal + rng.normal(size=(BOX,) * 3).astype(np.float32)
    curve = _compare(signal, [("noisy", noisy)]).maps[0].curve
    # shells 4 and up hold hundreds of voxels: the estimate within a few of its s.d.s
    assert np.allclose(curve[4:], 1 / np.sqrt(2), atol=0.08)
    assert abs(float(np.mean(curve[4:])) - 1 / np.sqrt(2)) < 0.01


def test_the_mirror_reverses_z_about_the_box_centre_and_twice_is_the_map():
    for box in (8, 9):
        volume = np.random.default_rng(box).normal(size=(box,) * 3)
        mirrored = mirrored_map(volume)
        assert np.array_equal(mirrored_map(mirrored), volume)
        assert np.array_equal(mirrored[box // 2], volume[box // 2])
        assert np.array_equal(mirrored[box // 2 + 1], volume[box // 2 - 1])


def test_a_map_of_the_other_hand_and_one_of_inverted_contrast_are_named():
    truth = _blobs(2)
    rng = np.random.default_rng(3)
    noisy = truth + 0.05 * rng.normal(size=truth.shape).astype(np.float32)
    comparison = _compare(
        truth, [("same", noisy), ("mirrored", mirrored_map(noisy)), ("inverted", -noisy)]
    )
    notes = comparison_notes(comparison)
    assert len(notes) == 2
    assert notes[0].startswith("mirrored:") and "opposite hands" in notes[0]
    assert notes[1].startswith("inverted:") and "inverted contrast" in notes[1]


def test_maps_off_the_reference_grid_are_refused_naming_the_file(tmp_path):
    ref, other_box, other_voxel, no_voxel = (
        tmp_path / n for n in ("ref.mrc", "box.mrc", "voxel.mrc", "none.mrc")
    )
    write_map(ref, _blobs(), PIXEL)
    write_map(other_box, _blobs(box=24), PIXEL)
    write_map(other_voxel, _blobs(), PIXEL * 1.05)
    with mrcfile.new(no_voxel) as m:  # a header without a voxel size
        m.set_data(_blobs())
        m.voxel_size = 0.0
    with pytest.raises(InputError, match=r"box\.mrc: box 24, the reference .* box 32: --resample"):
        read_maps_on_one_grid([ref, other_box])
    with pytest.raises(InputError, match=r"voxel\.mrc: voxel size 3\.15 Å"):
        read_maps_on_one_grid([ref, other_voxel])
    grid = read_maps_on_one_grid([ref, other_voxel], pixel_size_angstrom=2.0)
    assert grid.pixel_size_angstrom == 2.0 and len(grid.volumes) == 2
    with pytest.raises(InputError, match="no voxel size; give --angpix"):
        read_maps_on_one_grid([no_voxel, ref])
    grid = read_maps_on_one_grid([ref, no_voxel])  # a header without one is not a conflict
    assert grid.pixel_size_angstrom == pytest.approx(PIXEL)
    with pytest.raises(InputError, match="--angpix must be positive, got -1"):
        read_maps_on_one_grid([ref], pixel_size_angstrom=-1.0)


def test_the_command_prints_the_crossings_and_writes_curves_and_plot(tmp_path, capsys):
    truth = _blobs(4)
    ref, low = tmp_path / "truth.mrc", tmp_path / "low.mrc"
    write_map(ref, truth, PIXEL)
    write_map(low, _lowpass(truth, 6), PIXEL)
    run = tmp_path / "run"
    run.mkdir()
    write_map(run / "map.mrc", truth, PIXEL)
    out = tmp_path / "cmp.json"
    assert main(["fsc", str(ref), str(low), str(run), "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "soft spherical mask" in printed and "warning" not in printed
    data = json.loads(out.read_text())
    assert data["box"] == BOX and data["pixel_size_angstrom"] == pytest.approx(PIXEL)
    assert [m["map"] for m in data["maps"]] == [str(low), str(run / "map.mrc")]
    assert data["maps"][1]["resolution_fsc_0.5_angstrom"] == pytest.approx(2 * PIXEL)
    # the soft mask spreads the cut at shell 6 over a shell or two
    assert 5 <= BOX * PIXEL / data["maps"][0]["resolution_fsc_0.5_angstrom"] <= 8
    assert len(data["maps"][0]["fsc"]) == len(data["frequency_per_angstrom"]) == BOX // 2 + 1
    assert out.with_suffix(".svg").read_text().startswith("<svg")
    assert main(["fsc", str(ref), str(low), "-o", str(out)]) == 2  # exists
    assert "exists; --overwrite" in capsys.readouterr().err
    assert main(["fsc", str(ref), str(low), "-o", str(out), "--overwrite", "--no-mask"]) == 0
    assert json.loads(out.read_text())["mask"] == "no mask"
    noise = tmp_path / "noise.mrc"  # no agreement at all: no crossing, written as null
    write_map(noise, np.random.default_rng(7).normal(size=(BOX,) * 3), PIXEL)
    assert main(["fsc", str(ref), str(noise), "-o", str(out), "--overwrite"]) == 0
    assert json.loads(out.read_text())["maps"][0]["resolution_fsc_0.5_angstrom"] is None
    assert "none" in capsys.readouterr().out


def test_the_command_refuses_what_it_cannot_compare(tmp_path, capsys):
    ref = tmp_path / "truth.mrc"
    write_map(ref, _blobs(), PIXEL)
    assert main(["fsc", str(ref), str(ref), "-o", str(tmp_path / "cmp.txt")]) == 2
    assert "name it *.json" in capsys.readouterr().err
    assert main(["fsc", str(ref), str(tmp_path)]) == 2  # a folder without map.mrc
    assert "not a complete reconstruct run" in capsys.readouterr().err
    mask = tmp_path / "mask.mrc"
    with mrcfile.new(mask) as handle:  # another box, and no voxel size to place it by
        handle.set_data(spherical_mask(24))
    assert main(["fsc", str(ref), str(ref), "--mask", str(mask)]) == 2
    assert "the mask's box is 24, the map's 32, and its header holds no" in capsys.readouterr().err
    write_map(mask, spherical_mask(24, 10.0, 1.0), PIXEL)  # placed by its voxel size: resampled
    assert main(["fsc", str(ref), str(ref), "--mask", str(mask)]) == 0
    printed = capsys.readouterr().out
    assert "box 24 of 3 Å resampled onto the map's grid (box 32" in printed
    assert "covers" not in printed  # over the molecule
    aside = tmp_path / "aside.mrc"  # the same sphere, small, in the box's corner
    write_map(aside, np.roll(spherical_mask(BOX, 4.0, 2.0), (12, 12, 12), (0, 1, 2)), PIXEL)
    assert main(["fsc", str(ref), str(ref), "--mask", str(aside)]) == 0
    assert f"warning: the given mask {aside} covers" in capsys.readouterr().out
    small = tmp_path / "small.mrc"
    write_map(small, _blobs(box=12), PIXEL)
    assert main(["fsc", str(small), str(small)]) == 2
    assert "box 12 is too small for the default soft spherical mask" in capsys.readouterr().err
    assert main(["fsc", str(small), str(small), "--no-mask"]) == 0
    with pytest.raises(SystemExit):  # argparse: a mask and no mask at once
        main(["fsc", str(ref), str(ref), "--mask", str(mask), "--no-mask"])


def _blobs_angstrom(box: int, pixel: float) -> np.ndarray:
    """One molecule (blobs 4-7 Å wide, placed in Å from voxel ``box // 2``) sampled on a grid."""
    rng = np.random.default_rng(5)
    axis = (np.arange(box) - box // 2) * pixel
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), -1)
    volume = np.zeros((box,) * 3)
    for _ in range(30):
        centre, width = rng.uniform(-25, 25, 3), rng.uniform(4, 7)
        volume += rng.uniform(0.5, 1.5) * np.exp(-((grid - centre) ** 2).sum(-1) / (2 * width**2))
    return volume.astype(np.float32)


def test_maps_of_other_grids_are_resampled_onto_the_reference_s(tmp_path, capsys):
    """One molecule sampled on the reference's grid, on a finer grid of the same extent and in a
    larger box: resampled, both agree with the reference to its Nyquist; unasked, refused."""
    ref, fine, large = (tmp_path / n for n in ("ref.mrc", "fine.mrc", "large.mrc"))
    write_map(ref, _blobs_angstrom(BOX, PIXEL), PIXEL)
    write_map(fine, _blobs_angstrom(48, 2.0), 2.0)
    write_map(large, _blobs_angstrom(40, PIXEL), PIXEL)
    out = tmp_path / "cmp.json"
    args = ["fsc", str(ref), str(fine), str(large), "--no-mask", "-o", str(out)]
    assert main(args) == 2
    assert "--resample puts it on the reference's grid" in capsys.readouterr().err
    assert main([*args, "--resample"]) == 0
    printed = capsys.readouterr().out
    assert f"{fine}: box 48 of 2 Å resampled onto box 32 of 3 Å" in printed
    assert "(low-passed to the coarser Nyquist)" in printed
    assert f"{large}: box 40 of 3 Å resampled onto box 32" in printed
    assert "note:" not in printed  # headers of origin zero: centre on centre is their frame
    data = json.loads(out.read_text())
    assert data["box"] == BOX and data["pixel_size_angstrom"] == pytest.approx(PIXEL)
    for m in data["maps"]:
        assert min(m["fsc"][: BOX // 2 - 2]) > 0.999
    grid = read_maps_on_one_grid([fine, ref], resample=True)  # the finer map as the reference
    assert grid.volumes[1].shape == (48,) * 3 and grid.pixel_size_angstrom == pytest.approx(2.0)
    error = (grid.volumes[1] - _blobs_angstrom(48, 2.0))[2:-2, 2:-2, 2:-2]  # inside the extent
    assert np.abs(error).max() < 1e-3 * grid.volumes[0].max()
    grid = read_maps_on_one_grid([ref, ref], resample=True)  # one grid: nothing resampled
    assert grid.resampled == () and np.array_equal(grid.volumes[0], grid.volumes[1])
    deposited = tmp_path / "emd.map"  # the EMDB's centre at (0, 0, 0): centred too, no note
    write_map(deposited, _blobs_angstrom(48, 2.0), 2.0, origin_angstrom=-48.0)
    assert main(["fsc", str(ref), str(deposited), "--resample"]) == 0
    assert "note:" not in capsys.readouterr().out
    placed = tmp_path / "placed.mrc"  # a header that places the map elsewhere: named
    write_map(placed, _blobs_angstrom(48, 2.0), 2.0, origin_angstrom=30.0)
    assert main(["fsc", str(ref), str(placed), "--resample"]) == 0
    assert re.search(
        r"note: the headers of .*placed\.mrc and .*ref\.mrc place their centre "
        r"voxels 52\.0 Å apart",
        capsys.readouterr().out,
    )
    assert main(["fsc", str(ref), str(placed), "--resample", "--fit"]) == 0
    assert "note:" not in capsys.readouterr().out  # the fit places it: the note is moot
    assert main([*args, "--resample", "--angpix", "3", "--overwrite"]) == 2
    assert "give one of the two" in capsys.readouterr().err
    no_voxel = tmp_path / "none.mrc"
    with mrcfile.new(no_voxel) as m:
        m.set_data(_blobs())
        m.voxel_size = 0.0
    with pytest.raises(InputError, match=r"none\.mrc: its header holds no voxel size, which --re"):
        read_maps_on_one_grid([ref, no_voxel], resample=True)


def test_a_map_that_is_not_cubic_is_resampled_and_refused_as_the_reference(tmp_path, capsys):
    """A deposited map boxed around its model (43 × 46 × 40 voxels, each axis's centre voxel on
    the molecule's centre): named without --resample, put on the reference's cube with it (the
    same curve as the whole cube it was cut from, to the shells the cut leaves whole); as the
    reference, refused (it sets a cubic grid)."""
    ref, whole, boxed = (tmp_path / n for n in ("ref.mrc", "whole.mrc", "boxed.map"))
    write_map(ref, _blobs_angstrom(BOX, PIXEL), PIXEL)
    cube = _blobs_angstrom(48, 2.0)
    write_map(whole, cube, 2.0)
    cut = np.ascontiguousarray(cube[4:44, 1:47, 3:46])  # centre voxels 20, 23, 21 ← 24
    with mrcfile.new(boxed) as m:
        m.set_data(cut)
        m.voxel_size = 2.0
    assert main(["fsc", str(ref), str(boxed), "--no-mask"]) == 2
    assert "box 43 × 46 × 40 (x, y, z), the reference" in capsys.readouterr().err
    out = tmp_path / "cmp.json"
    args = ["fsc", str(ref), str(whole), str(boxed), "--no-mask", "--resample", "-o", str(out)]
    assert main(args) == 0
    assert f"{boxed}: box 43 × 46 × 40 (x, y, z) of 2 Å resampled onto box 32" in (
        capsys.readouterr().out
    )
    curves = [np.array(m["fsc"]) for m in json.loads(out.read_text())["maps"]]
    assert np.abs(curves[0][:12] - curves[1][:12]).max() < 0.01
    assert main(["fsc", str(boxed), str(ref), "--resample"]) == 2
    assert "the reference sets the grid" in capsys.readouterr().err
    assert main(["info", str(boxed)]) == 0
    printed = capsys.readouterr().out
    assert "box:          43 × 46 × 40 (x, y, z) voxels (86.0 × 92.0 × 80.0 Å)" in printed
    assert "centre voxel (21, 23, 20)" in printed and "not cubic:" in printed
    as_mrc = tmp_path / "boxed.mrc"  # images are square: an .mrc of 43 × 46 is no stack
    write_map(as_mrc, cut, 2.0)
    assert main(["info", str(as_mrc)]) == 0
    assert "not cubic:" in capsys.readouterr().out
    sharpened = str(tmp_path / "sharp.mrc")
    assert main(["sharpen", str(boxed), "--resolution", "5", "-o", sharpened]) == 2
    assert "a map of 43 × 46 × 40 voxels (x, y, z), not cubic" in capsys.readouterr().err


MODEL = "models/8zpm.cif"


def _centred_model_map(path, box, pixel):
    """The model's density centred in the box (as ``cryosplat simulate`` makes its truth) and
    its centre of mass (file coordinates, Å)."""
    atoms = read_atoms(path)
    weights = atoms.masses_dalton * atoms.occupancies
    centre = (atoms.positions_angstrom * weights[:, None]).sum(0) / weights.sum()
    volume = model_from_atoms(path, box, pixel).voxelize().detach().numpy()
    return volume, centre


def test_an_atomic_model_is_drawn_in_the_frame_of_the_map_s_header(shared_data, tmp_path):
    """A map of the model centred in its box, its header placing voxel D // 2 at the model's
    centre of mass: by its origin (x, y, z apart), or by its start indices. The model read in its
    own coordinates agrees with it to Nyquist; shifted by two voxels it does not."""
    path, box, pixel = shared_data / MODEL, 64, 2.0
    volume, centre = _centred_model_map(path, box, pixel)
    origin = centre - (box // 2) * pixel  # where voxel 0 lies
    by_origin, by_start = tmp_path / "origin.mrc", tmp_path / "start.mrc"
    with mrcfile.new(by_origin) as m:
        m.set_data(volume.astype(np.float32))
        m.voxel_size = pixel
        m.header.origin = tuple(float(v) for v in origin)
    with mrcfile.new(by_start) as m:  # whole voxels: the centre off by under half a voxel
        m.set_data(volume.astype(np.float32))
        m.voxel_size = pixel
        m.header.nxstart, m.header.nystart, m.header.nzstart = (
            int(v) for v in np.round(origin / pixel)
        )
    volumes = read_inputs_on_one_grid([by_origin, path], None, centre_models=False).volumes
    assert np.all(_compare(volumes[0], [("model", volumes[1])]).maps[0].curve[1:] > 0.999)
    volumes = read_inputs_on_one_grid([by_start, path], None, centre_models=False).volumes
    assert np.all(_compare(volumes[0], [("model", volumes[1])]).maps[0].curve[1:8] > 0.95)
    shifted = tmp_path / "shifted.mrc"
    with mrcfile.new(shifted) as m:
        m.set_data(volume.astype(np.float32))
        m.voxel_size = pixel
        m.header.origin = tuple(float(v) for v in origin + 2 * pixel)
    volumes = read_inputs_on_one_grid([shifted, path], None, centre_models=False).volumes
    curve = _compare(volumes[0], [("model", volumes[1])]).maps[0].curve
    assert curve[box // 4] < 0.5  # two voxels off: the phases at a quarter of Nyquist turned


def test_a_model_centred_as_simulate_centres_it_and_one_outside_the_box(shared_data, tmp_path):
    path, box, pixel = shared_data / MODEL, 64, 2.0
    volume, _ = _centred_model_map(path, box, pixel)
    truth = tmp_path / "truth.mrc"
    write_map(truth, volume, pixel)
    volumes = read_inputs_on_one_grid([path, truth], None, centre_models=True).volumes
    assert np.allclose(volumes[0], volumes[1])
    with pytest.raises(
        InputError, match=r"of its atoms lie outside the map's box.*--centre-models"
    ):
        read_inputs_on_one_grid([truth, path], None, centre_models=False)
    with pytest.raises(InputError, match="only atomic models given"):
        read_inputs_on_one_grid([path, path], None, centre_models=True)


def test_a_tight_mask_s_own_correlation_is_taken_out_by_phase_randomisation():
    """Two half maps that share a molecule low-passed at shell 6 and hold independent noise: a
    tight mask's edge correlates them past shell 6 by itself; the corrected FSC is back near
    zero there, and the same below."""
    truth = _blobs(5)
    signal = _lowpass(truth, 6)
    rng = np.random.default_rng(6)
    noise = 0.02 * float(signal.std())
    half_a, half_b = (signal + noise * rng.normal(size=signal.shape) for _ in range(2))
    tight = (_lowpass(truth, 4) > 0.3 * truth.max()).astype(np.float32)
    plain = compare_maps(half_a, [("b", half_b)], PIXEL, tight, ("a", "tight")).maps[0]
    corrected = compare_maps(
        half_a, [("b", half_b)], PIXEL, tight, ("a", "tight"), correct_mask=True
    ).maps[0]
    assert np.allclose(corrected.masked, plain.curve)
    past = slice(9, BOX // 2 + 1)
    assert float(np.mean(plain.curve[past])) > 0.3  # the mask's edge, not the data
    assert abs(float(np.mean(corrected.curve[past]))) < 0.1
    assert np.allclose(corrected.curve[1:5], plain.curve[1:5], atol=1e-6)


@pytest.mark.skipif(shutil.which("relion_image_handler") is None, reason="RELION not on PATH")
def test_the_unmasked_fsc_is_relion_image_handler_s(tmp_path):
    """``relion_image_handler --fsc``'s curve, shell by shell (a map against a noisy, blurred copy
    of it at box 64): within 0.005 where the maps agree, within 0.03 in the shells of noise
    alone, where the two programs' binning of the edge voxels differs most."""
    box = 64
    truth = _blobs(8, box=box)
    rng = np.random.default_rng(9)
    copy = _lowpass(truth, 20) + 0.05 * float(truth.std()) * rng.normal(size=truth.shape)
    first, second = tmp_path / "a.mrc", tmp_path / "b.mrc"
    write_map(first, truth, PIXEL)
    write_map(second, copy, PIXEL)
    printed = subprocess.run(
        ["relion_image_handler", "--i", str(first), "--fsc", str(second), "--angpix", str(PIXEL)],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # it leaves a scratch file (.spi) in its working folder
    ).stdout
    rows = [line.split() for line in printed.splitlines()]
    table = np.array([[float(v) for v in r] for r in rows if len(r) == 4 and r[0].isdigit()])
    ours = compare_maps(truth, [("copy", copy)], PIXEL, None, ("truth", "no mask")).maps[0]
    shells = table[1:, 0].astype(int)
    assert shells.tolist() == list(range(1, box // 2 + 1))
    theirs, mine = table[1:, 3], ours.curve[shells]
    agree = theirs > 0.2
    assert agree.sum() >= 15 and (~agree).sum() >= 5
    assert np.allclose(theirs[agree], mine[agree], atol=0.005)
    assert np.allclose(theirs, mine, atol=0.03)
