"""Reading at scale: MRC modes 12 and 1, a bounded number of open memory maps, thousands of stacks."""

from __future__ import annotations

import gc
import os
import resource
import subprocess
import sys
import textwrap
from dataclasses import replace

import numpy as np
import pytest
import torch

from cryosplat.core.ctf import CTFParams, ctf_from_params
from cryosplat.core.ctf_plane import CTFPlane
from cryosplat.io import mrc
from cryosplat.io.mrc import MRCStack, write_stack
from cryosplat.particles.read import read_particles
from cryosplat.simulate.noise_stacks import NoiseStacksConfig, write_noise_particles


@pytest.mark.parametrize(("mode", "code", "tolerance"), [("float16", 12, 1e-3), ("int16", 1, 0.5)])
def test_stack_mode_round_trip(tmp_path, mode, code, tolerance):
    rng = np.random.default_rng(1)
    images = (rng.normal(size=(5, 12, 12)) * (100.0 if mode == "int16" else 1.0)).astype(np.float32)
    path = tmp_path / "s.mrcs"
    write_stack(path, images, 1.7, mode=mode)
    stack = MRCStack(path)
    assert stack._info["mode"] == code
    assert path.stat().st_size == 1024 + images.size * 2
    got = stack.read([4, 0, 2])
    assert got.dtype == np.float32
    scale = np.abs(images).max() if mode == "float16" else 1.0
    assert np.abs(got - images[[4, 0, 2]]).max() <= tolerance * scale


def test_int16_out_of_range_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="32767"):
        write_stack(tmp_path / "s.mrcs", np.full((1, 4, 4), 4e4, np.float32), 1.0, mode="int16")


def test_star_of_float16_stacks_reads_like_float32(tmp_path):
    a = write_noise_particles(tmp_path / "a", NoiseStacksConfig(30, 16, per_stack=7))
    b = write_noise_particles(
        tmp_path / "b", NoiseStacksConfig(30, 16, per_stack=7, mode="float16")
    )
    pa, pb = read_particles(a), read_particles(b)
    assert len(pb.stacks) == 5
    rows = np.array([29, 3, 14])
    np.testing.assert_allclose(pb.read_images(rows), pa.read_images(rows), atol=5e-3)


def test_open_maps_are_bounded(tmp_path, monkeypatch):
    monkeypatch.setattr(mrc, "MAX_OPEN_MAPS", 4)
    stacks = []
    for i in range(10):
        write_stack(tmp_path / f"{i}.mrcs", np.full((2, 4, 4), i, np.float32), 1.0)
        stacks.append(MRCStack(tmp_path / f"{i}.mrcs"))
    for i, stack in enumerate(stacks):
        assert stack.read([1])[0, 0, 0] == i
        assert len(mrc._OPEN_MAPS) <= 4
    assert sum(s._mmap is not None for s in stacks) == 4
    assert stacks[0].read([0])[0, 0, 0] == 0  # evicted, mapped again
    del stacks, stack
    gc.collect()
    assert all(ref() is None for ref in mrc._OPEN_MAPS.values())  # the bound keeps none alive


def test_ctf_plane_matches_double_precision_ctf():
    rng = np.random.default_rng(2)
    n, box, pixel = 6, 64, 1.1
    params = CTFParams.create(
        n,
        defocus_u_angstrom=rng.uniform(5e3, 4e4, n),
        defocus_v_angstrom=rng.uniform(5e3, 4e4, n),
        defocus_angle_degrees=rng.uniform(0, 180, n),
        phase_shift_degrees=rng.uniform(0, 90, n),
        bfactor_angstrom2=rng.uniform(0, 80, n),
        scale=rng.uniform(0.5, 1.0, n),
    )
    ref = ctf_from_params(params, box, pixel)[..., box // 2 :]
    k = torch.arange(box) - box // 2
    kx = torch.arange(box // 2)
    plane = CTFPlane(kx[None, :].expand(box, -1), k[:, None].expand(-1, box // 2), box, pixel)
    assert torch.allclose(plane(params), ref, atol=2e-4)
    # With symmetric aberrations (rlnEvenZernike) on some rows: the same CTF, and a different one.
    even = np.zeros((n, 9))
    even[::2] = rng.normal(0, 10, (3, 9))
    aberrated = replace(params, even_zernike=even)
    ref_even = ctf_from_params(aberrated, box, pixel)[..., box // 2 :]
    assert torch.allclose(plane(aberrated), ref_even, atol=2e-4)
    assert torch.allclose(ref_even[1::2], ref[1::2])
    assert (ref_even[::2] - ref[::2]).abs().max() > 0.5
    # Defocus offsets as phases added to the unmoved one: each CTF as the plane makes it anew, at
    # 1.1 Å and 4·10⁴ Å of defocus.
    offsets = np.linspace(-3000.0, 3000.0, 37)
    moves = np.stack([offsets, 0 * offsets, 0 * offsets], 1)
    chi, factor, phases = plane.moved_phases(aberrated, moves)
    for k, offset in enumerate(offsets):
        anew = replace(
            aberrated,
            defocus_u_angstrom=aberrated.defocus_u_angstrom + offset,
            defocus_v_angstrom=aberrated.defocus_v_angstrom + offset,
        )
        moved = torch.sin(chi.double() + phases[:, k].reshape(chi.shape[1:])).float()
        moved = moved if factor is None else moved * factor
        assert torch.allclose(moved, plane(anew), atol=5e-4)


SCRIPT = textwrap.dedent(
    """
    import resource, sys
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    from cryosplat.particles.read import read_particles
    from cryosplat.reconstruct.grid.gather import AccumulateConfig, accumulate
    particles = read_particles(sys.argv[1])
    stats = accumulate(particles, None, AccumulateConfig(batch_size=1000))
    print(stats.n_particles, len(particles.stacks))
    """
)


@pytest.mark.slow
def test_two_thousand_stacks_under_ulimit_256(tmp_path):
    star = write_noise_particles(tmp_path, NoiseStacksConfig(2000, 16, per_stack=1))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 256:
        pytest.skip(f"hard limit on open files is {hard}")
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(star)],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["2000", "2000"]


def test_progress_reports_a_rate():
    import io
    import time

    from cryosplat.core.progress import Progress

    bar = Progress(100, "statistics", stream=io.StringIO())
    assert bar.rate_per_second() == 0.0
    time.sleep(0.05)
    bar.update(10)
    assert 0 < bar.rate_per_second() <= 10 / 0.05


def test_progress_leaves_work_read_back_out_of_its_rate_and_eta():
    import io
    import time

    from cryosplat.core.progress import Progress

    bar = Progress(100, "statistics", stream=io.StringIO())
    time.sleep(0.05)
    bar.resumed(60)  # a checkpoint read back: 60 units done before this run
    bar.update(70)
    assert bar.done == 70 and "70.0%" in bar.line()
    rate = bar.rate_per_second()
    assert 0 < rate <= 10 / 0.05  # the 10 units done in this run, not 70
    assert bar.eta_seconds() == pytest.approx(30 / rate, rel=0.05)


def test_progress_parts_count_from_where_the_bar_stands_and_work_found_extends_it():
    import io

    from cryosplat.core.progress import Progress

    bar = Progress(100, "defocus", stream=io.StringIO())
    first = bar.part()
    first(30)
    first(50)  # a part reports how much of itself is done
    second = bar.part()
    second(25)
    assert bar.done == 75 and "75.0%" in bar.line()
    bar.extend(50)  # a finer pass found needed
    assert bar.total == 150 and "50.0%" in bar.line()
