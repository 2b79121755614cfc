"""The benchmark catalogue (``benchmarks/bench_catalogue.py``): a set's name says one set.

Data sets are cached and chosen by name (``bench_datasets.make_dataset``,
``run_benchmarks.selected_specs``), so two groups that held different specs under one name would
run whichever came first and score it against the other's numbers."""

from __future__ import annotations

import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from bench_catalogue import DATASETS, QUICK  # noqa: E402


@pytest.mark.parametrize("table", [DATASETS, QUICK], ids=["full", "quick"])
def test_each_name_is_one_spec_across_groups(table):
    seen: dict[str, dict] = {}
    for group, specs in table.items():
        for spec in specs:
            first = seen.setdefault(spec.name, asdict(spec))
            assert first == asdict(spec), f"{spec.name} differs in group {group}"


def test_each_set_is_a_valid_simulation():
    for specs in DATASETS.values():
        for spec in specs:
            assert spec.box > 0 and spec.pixel_size_angstrom > 0 and spec.n_particles > 0, spec.name
            assert 0 < spec.snr, spec.name
            if spec.ctf_table is None:
                assert 0 < spec.defocus_min_um <= spec.defocus_max_um, spec.name
            low, high = spec.ctf_bfactor_angstrom2
            assert 0 <= low <= high, spec.name
            assert spec.noise in ("white", "coloured"), spec.name
            assert spec.pose_error_degrees >= 0 and spec.shift_error_angstrom >= 0, spec.name


def test_session_57_group_holds_its_six_sets_three_with_a_plain_defocus_range():
    sets = {s.name: s for s in DATASETS["unseen57"]}
    assert set(sets) == {
        "u57_emd5625_df",
        "u57_emd1832_lowdf",
        "u57_betagal_12k",
        "u57_emd6824_cs",
        "u57_emd1832_30k",
        "u57_emd5625_25k",
    }
    plain = {name for name, s in sets.items() if s.ctf_table is None}
    assert plain == {"u57_emd5625_df", "u57_emd1832_lowdf", "u57_emd6824_cs"}
    df = sets["u57_emd5625_df"]
    assert (df.defocus_min_um, df.defocus_max_um) == (1.8, 2.4)


def test_session_58_group_records_every_pose_with_an_error():
    sets = DATASETS["unseen58"]
    assert len(sets) == 8
    for spec in sets:
        assert spec.pose_error_degrees > 0 and spec.shift_error_angstrom > 0, spec.name
        assert spec.simulator == "relion_project", spec.name
    assert sum(spec.model.startswith("maps/") for spec in sets) == 7


def test_session_69_groups_read_their_maps_beside_the_shared_data():
    from bench_datasets import SHARED
    from bench_extra_maps import EXTRA_MAPS

    for group in ("unseen69", "unseen69b", "unseen69c"):
        for spec in DATASETS[group]:
            assert (SHARED / spec.model).parent.resolve() == EXTRA_MAPS.resolve(), spec.name


def test_session_70_sets_sharpen_real_maps_or_ramp_their_images():
    sharpened, ramps, both = DATASETS["unseen70"], DATASETS["unseen70b"], DATASETS["unseen70c"]
    assert all(spec.truth_bfactor_angstrom2 < 0 for spec in sharpened)
    assert all(spec.background_ramp_sd > 0 for spec in ramps)
    assert sum(s.truth_bfactor_angstrom2 < 0 or s.background_ramp_sd > 0 for s in both) == 4
    sets = [*sharpened, *ramps, *both]
    for spec in sets:
        assert spec.model.endswith((".mrc", ".map")), spec.name
        assert spec.simulator == "relion_project", spec.name
    assert len({spec.seed for spec in sets}) == len({spec.name for spec in sets}) == 12


def test_session_71_sets_image_through_a_phase_plate_or_at_100_kv():
    plate, mixed = DATASETS["unseen71"], [*DATASETS["unseen71b"], *DATASETS["unseen71c"]]
    sets = [*plate, *mixed]
    for spec in sets:
        if any(spec.phase_shift_degrees):
            low, high = spec.phase_shift_degrees
            assert 0 < low < high <= 180 and spec.defocus_max_um < 1.5, spec.name
        assert any(spec.phase_shift_degrees) != (spec.voltage_kv == 100.0), spec.name
        assert spec.ctf_table is None, spec.name  # the defocus range, not EMPIAR-10028's table
        assert spec.simulator == "relion_project", spec.name
    assert all(any(spec.phase_shift_degrees) for spec in plate)
    assert sum(spec.voltage_kv == 100.0 for spec in mixed) == 4
    assert len({spec.seed for spec in sets}) == len({spec.name for spec in sets}) == 12


def test_session_72_sets_hold_noise_stronger_along_one_axis_or_hot_pixels():
    groups = ("unseen72", "unseen72b", "unseen72c", "unseen72d")
    aniso, hot, both, after = (DATASETS[g] for g in groups)
    sets = [*aniso, *hot, *both, *after]
    assert all(0 < spec.noise_anisotropy < 1 for spec in aniso)
    assert all(spec.hot_pixels[0] > 0 for spec in [*hot, *after])
    for spec in sets:
        assert spec.noise_anisotropy > 0 or spec.hot_pixels[0] > 0, spec.name
        fraction, sd = spec.hot_pixels
        assert fraction < 0.01 and (fraction == 0) == (sd == 0), spec.name
        assert spec.model.endswith((".mrc", ".map")), spec.name
        assert spec.simulator == "relion_project", spec.name
    assert len({spec.seed for spec in sets}) == len({spec.name for spec in sets}) == 16


def test_session_73_sets_hold_a_part_that_moves():
    sets = [spec for group in ("unseen73", "unseen73b") for spec in DATASETS[group]]
    for spec in sets:
        part = spec.moving_part
        assert part is not None and spec.missing_part is None, spec.name
        assert 0 < part.sd_degrees <= 20 and part.states == 7, spec.name
        # the hinge lies one radius from the ball's centre, the axis across that direction
        arm = np.subtract(part.centre_voxel, part.hinge_voxel) * spec.pixel_size_angstrom
        assert np.linalg.norm(arm) == pytest.approx(part.radius_angstrom, rel=0.05), spec.name
        assert abs(np.dot(arm, part.axis)) < 0.05 * np.linalg.norm(arm), spec.name
        assert all(0 <= c < spec.box for c in (*part.centre_voxel, *part.hinge_voxel)), spec.name
        assert spec.model.endswith((".mrc", ".map")), spec.name
    assert len({spec.seed for spec in sets}) == len({spec.name for spec in sets}) == 8


def test_session_73c_sets_hold_carbon_edges_in_a_share_of_their_images():
    sets = [*DATASETS["unseen73c"], *DATASETS["unseen73d"], *DATASETS["unseen73e"]]
    for spec in sets:
        fraction, step = spec.carbon_edges
        assert 0 < fraction < 0.5 and 0.5 <= step <= 5, spec.name
        assert spec.moving_part is None and spec.hot_pixels == (0.0, 0.0), spec.name
        assert spec.simulator == "relion_project", spec.name
    assert len({spec.seed for spec in sets}) == len({spec.name for spec in sets}) == 9


def test_session_74_sets_hold_ice_blobs_in_a_share_of_their_images():
    sets = [*DATASETS["unseen74"], *DATASETS["unseen74b"]]
    for spec in sets:
        fraction, step = spec.ice_blobs
        assert 0 < fraction < 0.5 and 1 <= step <= 8, spec.name
        assert spec.moving_part is None and spec.hot_pixels == (0.0, 0.0), spec.name
        assert spec.simulator == "relion_project", spec.name
    assert sum(spec.carbon_edges != (0.0, 0.0) for spec in sets) == 1  # one with films too
    assert len({spec.seed for spec in sets}) == len({spec.name for spec in sets}) == 8


def test_session_74c_sets_take_other_microscopes_ctfs():
    sets = DATASETS["unseen74c"]
    for spec in sets:
        assert spec.ctf_table is None and spec.defocus_min_um < spec.defocus_max_um, spec.name
        assert spec.ice_blobs == (0.0, 0.0) and spec.carbon_edges == (0.0, 0.0), spec.name
    assert {spec.cs_mm for spec in sets} == {0.01, 2.7}
    assert {spec.amplitude_contrast for spec in sets} == {0.07, 0.1, 0.15}
    assert len({spec.seed for spec in sets}) == len({spec.name for spec in sets}) == 4


def test_session_74d_sets_hold_the_artefacts_of_real_data_together():
    sets = DATASETS["unseen74d"]
    for spec in sets:
        assert spec.ice_blobs[0] > 0 and spec.carbon_edges[0] > 0, spec.name
        assert spec.hot_pixels[0] > 0 and spec.background_ramp_sd > 0, spec.name
        assert spec.noise_sd_spread > 0, spec.name
    assert len({spec.seed for spec in sets}) == len({spec.name for spec in sets}) == 4


def test_session_75_sets_hold_particles_at_a_micrograph_edge():
    sets = [*DATASETS["unseen75"], *DATASETS["unseen75b"]]
    for spec in sets:
        fraction, depth = spec.micrograph_edges
        assert 0 < fraction < 0.5 and 0.1 <= depth <= 0.45, spec.name
        assert spec.ice_blobs == (0.0, 0.0) and spec.carbon_edges == (0.0, 0.0), spec.name
        assert spec.simulator == "relion_project", spec.name
    assert len({spec.seed for spec in sets}) == len({spec.name for spec in sets}) == 8


def test_an_odd_box_is_cut_about_its_centre_voxel():
    from bench_extra_maps import even_box

    volume = np.zeros((65, 65, 65), dtype=np.float32)
    volume[32, 31, 33] = 1.0
    cut = even_box(volume)
    assert cut.shape == (64, 64, 64)
    assert cut[32, 31, 33] == 1.0 and cut.sum() == 1.0
    with pytest.raises(ValueError, match="odd cube"):
        even_box(cut)
