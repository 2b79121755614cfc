"""``cryosplat info`` output, and the view-coverage measure behind it."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from cryosplat.cli.main import main
from cryosplat.core.rotations import random_rotations
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.summary import fibonacci_sphere, view_coverage, viewing_directions


def test_info_relion31(shared_data, capsys):
    assert (
        main(["info", str(shared_data / "particles/betagal_17/sample_particles_relion31.star")])
        == 0
    )
    out = capsys.readouterr().out
    assert "count:        17" in out and "box:          200 px" in out
    assert "pixel size:   1.4000 Å" in out
    assert "opticsGroup1: 1.4000 Å, 300 kV, Cs 2.7 mm, Q 0.1, 8 particles" in out
    assert "opticsGroup2: 1.4000 Å, 200 kV, Cs 2.7 mm, Q 0.1, 9 particles" in out
    assert "defocus:      2.127 - 2.127 µm" in out
    assert "poses:        yes" in out and "CTF:          yes" in out
    assert "random subsets: 1: 10, 2: 7" in out
    assert "view coverage:" in out and "tilt histogram: 0-30°: 0, 30-60°: 4" in out
    assert "sample.mrcs: 17 images, 17 referenced" in out


def test_info_cs_without_poses(shared_data, capsys):
    assert main(["info", str(shared_data / "particles/empiar10076_7/empiar_10076_7.cs")]) == 0
    out = capsys.readouterr().out
    assert "count:        7" in out and "poses:        no" in out
    assert "random subsets: none" in out and "view coverage" not in out
    assert "defocus:      1.496 - 1.517 µm" in out


def test_info_datadir(tmp_path, small_stack, capsys):
    from cryosplat.io.star import write_relion31_particles

    stack, _ = small_stack
    meta = tmp_path / "a" / "b" / "c" / "meta"  # four levels down: past the project search
    meta.mkdir(parents=True)
    write_relion31_particles(
        meta / "p.star", image_names=["1@stack.mrcs"], pixel_size_angstrom=2.0, box=16
    )
    capsys.readouterr()
    assert main(["info", str(meta / "p.star")]) == 2  # the stack is not where it is looked for
    missing = capsys.readouterr()
    assert "stack.mrcs' not found" in missing.err
    # the metadata are still shown, said to be alone
    assert "count:        1" in missing.out and "metadata alone" in missing.out
    assert main(["info", str(meta / "p.star"), "--datadir", str(tmp_path)]) == 0
    found = capsys.readouterr().out
    assert "stack.mrcs: 6 images, 1 referenced" in found and "metadata alone" not in found


def test_view_coverage_uniform_and_single():
    full, n_cells = view_coverage(viewing_directions(random_rotations(20000, 0)))
    assert 170 <= n_cells <= 190 and full == 1.0
    one, _ = view_coverage(np.tile([[0.0, 0.0, 1.0]], (100, 1)))
    assert one == pytest.approx(1 / n_cells)
    # Rotations about the z axis only (tilt 0) all view along +z.
    ang = np.deg2rad(np.linspace(0, 360, 50))
    rz = np.zeros((50, 3, 3))
    rz[:, 0, 0], rz[:, 0, 1], rz[:, 1, 0], rz[:, 1, 1] = (
        np.cos(ang),
        np.sin(ang),
        -np.sin(ang),
        np.cos(ang),
    )
    rz[:, 2, 2] = 1
    np.testing.assert_allclose(viewing_directions(rz), np.tile([0, 0, 1.0], (50, 1)))


def test_fibonacci_sphere_is_spread():
    p = fibonacci_sphere(200)
    np.testing.assert_allclose(np.linalg.norm(p, axis=1), 1.0)
    assert np.abs(p.mean(axis=0)).max() < 0.01


def test_densest_cone_uniform_preferred_and_tilted():
    from cryosplat.particles.summary import densest_cone, uniform_cone_share
    from cryosplat.simulate.views import PreferredViews, preferred_rotations

    uniform, _ = densest_cone(viewing_directions(random_rotations(20_000, 1)))
    assert uniform_cone_share(20.0) == pytest.approx(0.0603, abs=1e-4)
    assert 0.055 < uniform < 0.075  # the best of 2,000 axes: a little above 6 %
    views = preferred_rotations(20_000, PreferredViews(0.8, 20.0), np.random.default_rng(2))
    share, axis = densest_cone(viewing_directions(views))
    assert share > 0.75 and abs(axis[2]) > 0.99  # axes ~2.6° apart: the cone edge is shared
    # the same views about another axis: A -> A Q moves every viewing direction d to Qᵀ d
    q = random_rotations(1, 3)[0]
    share_q, axis_q = densest_cone(viewing_directions(views @ q))
    assert share_q == pytest.approx(share, abs=0.03)
    assert abs(axis_q @ (q.T @ [0.0, 0.0, 1.0])) > 0.99
    assert densest_cone(np.tile([[0.0, 1.0, 0.0]], (10, 1)))[0] == 1.0
    with pytest.raises(ValueError, match="cone_degrees"):
        densest_cone(np.eye(3), cone_degrees=0.0)


def test_densest_cone_coarse_to_fine_finds_the_exhaustive_share():
    """The coarse-to-fine search against every one of the 2,000 axes: two or three clusters of
    views of unequal weight, one cluster over uniform views, uniform views."""
    from cryosplat.particles.summary import _cone_counts, densest_cone, fibonacci_sphere

    rng = np.random.default_rng(7)

    def cluster(n, sd_degrees):
        axis = rng.normal(size=3)
        v = axis / np.linalg.norm(axis) + rng.normal(scale=np.radians(sd_degrees), size=(n, 3))
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    uniform = cluster(3000, 1e4)
    sets = [
        np.vstack([cluster(1500, 10), cluster(1400, 12)]),
        np.vstack([cluster(900, 15), cluster(1000, 15), cluster(1100, 15)]),
        np.vstack([cluster(2400, 12), uniform[:600]]),
        uniform,
    ]
    axes = fibonacci_sphere(4000)[:2000]
    for d in sets:
        exhaustive = _cone_counts(d, axes, np.cos(np.radians(20.0)), 8192).max() / len(d)
        share, axis = densest_cone(d)
        assert share == pytest.approx(exhaustive, abs=2e-3)
        assert np.mean(np.abs(d @ axis) >= np.cos(np.radians(20.0))) == pytest.approx(share)


def test_info_warns_of_preferred_orientation(tmp_path, small_stack, capsys):
    from cryosplat.io.star import write_relion31_particles
    from cryosplat.simulate.views import PreferredViews, preferred_rotations

    stack, _ = small_stack
    names = [f"{1 + i % 6}@{stack.name}" for i in range(400)]
    for fraction, warned in ((0.9, True), (0.0, False)):
        rotations = preferred_rotations(
            400, PreferredViews(fraction, 15.0), np.random.default_rng(4)
        )
        star = stack.parent / f"p{fraction}.star"
        write_relion31_particles(
            star, image_names=names, rotations=rotations, pixel_size_angstrom=2.0, box=16
        )
        assert main(["info", str(star)]) == 0
        out = capsys.readouterr().out
        assert "densest 20° cone:" in out and "(uniform views: 6 %)" in out
        assert ("warning: preferred orientation:" in out) == warned


def test_info_on_a_complete_run_folder(tiny_set, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["reconstruct", str(tiny_set), "-o", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    summary = json.loads((out / "run.json").read_text())["summary"]
    assert f"run:          {out} (complete;" in text
    assert f"resolution:   {summary['resolution_angstrom']:.2f} Å (68 % band" in text
    # The written map's header, read back: the particles' pixel size.
    assert f"voxel size {summary['pixel_size_angstrom']:.4f} Å (header)" in text
    assert "Gaussians:" in text and "half sets:" in text and "resume:" not in text
    low, median, high = summary["local_resolution_5_50_95_angstrom"]
    assert f"local resolution: {low:.2f}-{high:.2f} Å (5th-95th percentile, median" in text
    # A run that read no window (its percentiles written as null) has no such line.
    from cryosplat.cli.info_run import format_run
    from cryosplat.reconstruct.run_summary import RunSummary

    unread = {"local_resolution_5_50_95_angstrom": [None, None, None]}
    assert "local resolution" not in format_run(
        RunSummary(out, "complete", None, {}, results=unread)
    )
    # The run's peak memory beside the plan's prediction (what the config recorded).
    planned = json.loads((out / "config.json").read_text())["memory_plan"]
    assert summary["predicted_peak_memory_gb"] == planned["predicted_peak_bytes"] / 1e9
    assert 0 < summary["peak_resident_memory_gb"]
    assert (
        f"memory:       peak {summary['peak_resident_memory_gb']:.2f} GB resident "
        f"(predicted {summary['predicted_peak_memory_gb']:.2f} GB)"
    ) in text
    # The negative population as saved: its count and its mass against the positive mass.
    for i, name in enumerate("AB"):
        amplitudes = GaussianModel.load(out / f"model_{name}.npz").amplitudes.detach().double()
        assert summary["n_negative_gaussians"][i] == int((amplitudes < 0).sum()) > 0
        share = float(-amplitudes[amplitudes < 0].sum() / amplitudes[amplitudes > 0].sum())
        assert summary["negative_mass_share"][i] == pytest.approx(share, rel=1e-6)
    assert (
        "  below the solvent level: {} + {}, their mass".format(*summary["n_negative_gaussians"])
        in text
    )
    (out / "model_B.cif").unlink()
    assert main(["info", str(out)]) == 0
    assert "missing outputs: model_B.cif" in capsys.readouterr().out
    level = summary["chimerax_surface_level"]
    assert f"view:         chimerax {out / 'chimerax.cxc'} (the surface at {level:.4g})" in text
    # chimerax.cxc is missed where the run wrote one (its summary holds the level), not in a
    # run from before the script was written
    (out / "chimerax.cxc").unlink()
    assert main(["info", str(out)]) == 0
    assert "missing outputs: model_B.cif, chimerax.cxc" in capsys.readouterr().out
    status = json.loads((out / "run.json").read_text())
    del status["summary"]["chimerax_surface_level"]
    (out / "run.json").write_text(json.dumps(status))
    assert main(["info", str(out)]) == 0
    assert "missing outputs: model_B.cif\n" in capsys.readouterr().out


def test_info_gives_the_spheres_reading_beside_the_automatic_masks():
    """Where the resolution was read within the automatic mask, the soft sphere's own reading
    is printed beside it; not otherwise."""
    from pathlib import Path

    from cryosplat.cli.info_run import format_run
    from cryosplat.reconstruct.run_summary import RunSummary

    results = {"resolution_angstrom": 14.68, "resolution_soft_spherical_mask_angstrom": 20.85}
    run = RunSummary(Path("run"), "complete", None, {}, results=results)
    assert "in the soft spherical mask alone: 20.85 Å" in format_run(run)
    del results["resolution_soft_spherical_mask_angstrom"]
    assert "soft spherical mask alone" not in format_run(run)


def test_info_reads_a_resolution_no_shell_vouches_for():
    """run.json writes a non-finite resolution and band as null (every view within 10° of one
    axis): info says "none" and leaves the band out (it raised on the band before)."""
    from pathlib import Path

    from cryosplat.cli.info_run import format_run
    from cryosplat.reconstruct.run_summary import RunSummary

    results = {
        "resolution_angstrom": None,
        "resolution_band_angstrom": [None, None],
        "data_half_maps_0143_angstrom": 20.86,
        "data_half_maps_0143_by_direction_angstrom": [17.4, None],
    }
    text = format_run(RunSummary(Path("run"), "complete", None, {}, results=results))
    assert "resolution:   none\n" in text + "\n"
    assert "band" not in text
    assert "data half maps FSC 0.143: 20.86 Å\n" in text + "\n"
    results["resolution_band_angstrom"] = [30.5, 41.25]
    text = format_run(RunSummary(Path("run"), "complete", None, {}, results=results))
    assert "resolution:   none (68 % band 30.50-41.25 Å)" in text


def test_info_on_an_unfinished_run_says_who_holds_it_and_how_to_resume(tmp_path, capsys):
    from cryosplat.reconstruct.run_folder import RunFolder

    folder = RunFolder(tmp_path / "run", {"input": "p.star", "n_particles": 10, "box": 24})
    folder.prepare()  # holds the folder's lock, as a running reconstruct does
    assert main(["info", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert f"pid {os.getpid()} on" in text and "works in this folder now" in text
    assert "resume:" not in text
    folder.release()  # the process ended without a word: its status still says running
    assert main(["info", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert "no process holds it" in text
    assert f"resume:       cryosplat reconstruct p.star -o {tmp_path / 'run'} --resume" in text
    folder.fail("interrupted (Ctrl-C); --resume continues it", status="interrupted")
    assert main(["info", str(tmp_path / "run")]) == 0
    text = capsys.readouterr().out
    assert "(interrupted;" in text and "stopped by:   interrupted (Ctrl-C)" in text
    assert "chose its particles" not in text
    chosen = {"input": "p.star", "n_particles": 10, "box": 24, "selection": "rlnClassNumber 2"}
    folder = RunFolder(tmp_path / "chosen", chosen)
    folder.prepare()
    folder.release()
    assert main(["info", str(tmp_path / "chosen")]) == 0
    assert "it chose its particles: rlnClassNumber 2)" in capsys.readouterr().out


def test_info_refuses_a_folder_without_a_run_and_particle_options_for_a_folder(tmp_path, capsys):
    assert main(["info", str(tmp_path)]) == 2
    assert "holds no cryosplat run" in capsys.readouterr().err
    assert main(["info", str(tmp_path), "--datadir", str(tmp_path)]) == 2
    assert "takes no --datadir, --poses, --ctf, --class, --ind or --optics-group" in (
        capsys.readouterr().err
    )
    assert main(["info", str(tmp_path), "--class", "2"]) == 2
    assert "takes no --datadir" in capsys.readouterr().err
    (tmp_path / "run.json").write_text("[1, 2]")
    assert main(["info", str(tmp_path)]) == 2
    assert "not a cryosplat run status" in capsys.readouterr().err
    (tmp_path / "run.json").write_text("{broken")
    assert main(["info", str(tmp_path)]) == 2
    assert "run.json: unreadable" in capsys.readouterr().err


def test_info_names_the_negative_population_only_where_there_is_one():
    """Each half's negative Gaussians and their mass as a share of the positive mass; no line
    for models of positive Gaussians alone."""
    from pathlib import Path

    from cryosplat.cli.info_run import format_run
    from cryosplat.reconstruct.report import _negative_population
    from cryosplat.reconstruct.run_summary import RunSummary

    def model(amplitudes):
        n = len(amplitudes)
        return GaussianModel(
            torch.zeros(n, 3),
            torch.ones(n, 3),
            torch.tensor([[1.0, 0, 0, 0]] * n),
            torch.tensor(amplitudes),
            16,
            1.0,
            signed=True,
        )

    population = _negative_population([model([2.0, 1.0, -1.5]), model([1.0, 1.0])])
    assert population["n_negative_gaussians"] == [1, 0]
    assert population["negative_mass_share"] == pytest.approx([0.5, 0.0])
    results = {"n_gaussians": [3, 2], **population}
    text = format_run(RunSummary(Path("run"), "complete", None, {}, results=results))
    assert "  below the solvent level: 1 + 0, their mass 50 % and 0 % of the positive mass" in text
    results["n_negative_gaussians"] = [0, 0]
    text = format_run(RunSummary(Path("run"), "complete", None, {}, results=results))
    assert "below the solvent level" not in text


def test_info_reads_the_images_left_out_as_each_version_wrote_them():
    from cryosplat.cli.info_run import _result_lines

    sampled = {"sampled_images_left_out": 141, "sampled_images": 1000, "limits": [13.5]}
    old = _result_lines({"background_structure": sampled})  # written before session 74
    assert any("141 of 1000 sampled images" in line for line in old)
    counted = {**sampled, "images_left_out": 926, "images": 6000, "files": ["a.npy", "a.star"]}
    new = [line for line in _result_lines({"background_structure": counted}) if "left out" in line]
    assert len(new) == 1
    assert "926 of 6000 particles (the sample held 141 of 1000)" in new[0]
    assert new[0].endswith("their rows: a.npy, a.star")


def test_info_summarises_a_map_and_a_mask_and_reconstruct_refuses_them(tmp_path, capsys):
    """A map (``.mrc`` of as many sections as pixels a side, or ``.map``) is summarised, not read
    as a stack of its z planes; a mask is named; particle commands refuse a map by name."""
    from cryosplat.io.mrc import write_map

    volume = np.random.default_rng(0).normal(size=(24, 24, 24)).astype(np.float32)
    density, deposited, mask = tmp_path / "map.mrc", tmp_path / "emd.map", tmp_path / "mask.mrc"
    write_map(density, volume, 2.5, origin_angstrom=[-30.0, -30.0, -30.0])
    write_map(deposited, volume, 2.5)
    write_map(mask, (np.abs(volume) < 1).astype(np.float32), 2.5)
    assert main(["info", str(density)]) == 0
    printed = capsys.readouterr().out
    assert "box:          24 voxels (60.0 Å a side)" in printed
    assert "voxel size:   2.5000 Å (Nyquist 5.00 Å)" in printed
    assert "centre voxel 12 at (0.0, 0.0, 0.0) Å" in printed  # -30 + 12 × 2.5
    assert "written by:   Created by cryosplat" in printed and "a mask" not in printed
    assert "count:" not in printed and "hot pixels" not in printed
    assert main(["info", str(deposited)]) == 0
    assert "map:          " in capsys.readouterr().out
    assert main(["info", str(mask)]) == 0
    share = 100 * float((np.abs(volume) < 1).mean())
    assert (
        f"a mask:       values 0-1, {share:.1f} % of the voxels inside" in capsys.readouterr().out
    )
    ringing = tmp_path / "rescaled_mask.mrc"  # a resampled mask overshoots: still a mask
    write_map(ringing, np.where(np.abs(volume) < 1, 1.08, -0.072).astype(np.float32), 2.5)
    assert main(["info", str(ringing)]) == 0
    assert "a mask:       values 0-1" in capsys.readouterr().out
    assert main(["info", str(density), "--class", "1"]) == 2
    assert "a map, which takes no --datadir, --class" in capsys.readouterr().err
    for path in (density, deposited):
        assert main(["reconstruct", str(path), "-o", str(tmp_path / "run")]) == 2
        assert f"{path}: holds a 3D map, not particle images" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
