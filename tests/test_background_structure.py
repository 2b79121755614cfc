"""Images whose background holds structure (a support film's edge): named and left out
(``cryosplat.reconstruct.grid.background_structure``, ``noise_levels``)."""

from __future__ import annotations

import logging
import re

import numpy as np
import pytest
import torch
from test_robust_cases import FAST, run_cli, status, write_set

from cryosplat.cli.main import main
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.background_structure import (
    STRUCTURE_FACTOR,
    TAIL_FACTOR,
    TAIL_SHARE,
    structure_limits,
    structure_ratios,
)
from cryosplat.reconstruct.grid.noise_levels import measure_noise_levels

BOX = 64


def _noise(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, BOX, BOX)).astype(np.float32)


def _edge(step: float, angle: float = 0.7, distance: float = 0.3) -> np.ndarray:
    """A support film past a straight edge ``distance`` of the box from the centre."""
    yy, xx = np.indices((BOX, BOX)) - BOX // 2
    along = np.cos(angle) * xx + np.sin(angle) * yy
    return (step * (along > distance * BOX)).astype(np.float32)


def test_an_edge_raises_the_ratio_many_times_a_plane_and_an_offset_do_not():
    noise = _noise(200)
    plain = structure_ratios(torch.from_numpy(noise))
    yy, xx = np.indices((BOX, BOX)) - BOX // 2
    plane = (0.02 * xx - 0.015 * yy + 5.0).astype(np.float32)  # a gradient of 1.3 sds over the box
    np.testing.assert_allclose(structure_ratios(torch.from_numpy(noise + plane)), plain, rtol=1e-2)
    edged = structure_ratios(torch.from_numpy(noise + _edge(1.0)))
    assert float(edged.min()) > 10.0 * float(plain.median())
    # the ratio does not depend on the images' unit or level
    np.testing.assert_allclose(structure_ratios(torch.from_numpy(7.0 * noise)), plain, rtol=1e-4)


def test_limits_are_set_only_where_the_sample_holds_structure():
    plain = structure_ratios(torch.from_numpy(_noise(600)))
    assert structure_limits(plain) is None
    images = _noise(600, seed=1)
    images[::10] += _edge(0.8)  # a tenth of them
    ratios = structure_ratios(torch.from_numpy(images))
    limits = structure_limits(ratios)
    assert limits is not None and limits[0] >= STRUCTURE_FACTOR * float(ratios.median())
    flagged = (ratios > limits[0]).numpy()
    edged = np.arange(600) % 10 == 0
    # every edge, and (a tenth of them holding one: the limit at the factor alone) a few others
    assert flagged[edged].all() and flagged[~edged].mean() < 0.04
    # images of another kind (differently correlated noise) are compared within their own kind
    kinds = (np.arange(600) % 20 == 0).astype(np.int64)  # 30 of them
    mixed = torch.where(torch.from_numpy(kinds == 1), 30.0 * plain, plain)
    assert structure_limits(mixed, kinds) is None
    assert structure_limits(mixed) is not None  # read as one kind, the other looks structured


def test_many_weak_edges_lower_the_limit_to_the_factor_alone():
    rng = np.random.default_rng(4)
    plain = torch.from_numpy(rng.gamma(8.0, 1.0, 1000))  # a noise-like spread of ratios
    median = float(plain.median())
    assert float((plain > TAIL_FACTOR * median).double().mean()) < TAIL_SHARE
    # a few far out: the strict limit, past the noise's own tail
    few = plain.clone()
    few[:5] = 20.0 * median
    strict = structure_limits(few)
    assert strict is not None and strict[0] > TAIL_FACTOR * median
    # a quarter of them at four times the median, none of which the strict limit would take
    many = plain.clone()
    many[:250] = 4.0 * median
    lowered = structure_limits(many)
    assert lowered is not None
    assert lowered[0] == pytest.approx(STRUCTURE_FACTOR * float(many.median()))
    assert bool((many[:250] > lowered[0]).all())


def test_a_run_leaves_the_images_with_an_edge_out_and_names_them(tmp_path, capsys, caplog):
    film = np.zeros((200, 16, 16), dtype=np.float32)
    yy, xx = np.indices((16, 16)) - 8
    film[::8] = 6.0 * (xx + 0.5 * yy > 4)  # one image in eight: a film 6 noise sds bright

    blob = np.exp(-(xx**2 + yy**2) / 8.0).astype(np.float32)  # a molecule: positive density

    def with_film(images):
        sd = images.std()
        images += (film + 2.0 * blob) * sd

    star = write_set(tmp_path / "d", n=200, image=with_film)
    weights = measure_noise_levels(read_particles(star))
    assert weights is not None and weights.structure_limits is not None
    images = torch.from_numpy(read_particles(star).read_images(np.arange(200)))
    w = weights.weights(images).numpy()
    filmed = np.arange(200) % 8 == 0
    assert (w[filmed] == 0).all() and (w[~filmed] == 0).mean() < 0.05
    plain = measure_noise_levels(read_particles(write_set(tmp_path / "e", n=200)))
    assert plain is None or plain.structure_limits is None
    capsys.readouterr()
    caplog.set_level(logging.INFO, logger="cryosplat")
    caplog.clear()
    assert main(["info", str(star)]) == 0
    assert not [r for r in caplog.records if r.getMessage().startswith("noise levels")]
    captured = capsys.readouterr()
    sampled = re.search(r"warning: background structure: (\d+) of 200 sampled images", captured.out)
    assert sampled and int(sampled.group(1)) == weights.structure_sampled[0] >= 25
    out = tmp_path / "run"
    code, err = run_cli(capsys, "reconstruct", star, "-o", out, *FAST)
    assert code == 0, err
    assert "background structure: " in (out / "log.txt").read_text()
    log = (out / "log.txt").read_text()
    assert "left out of the map (weight 0)" in log
    # the background's level is read without them: their film would have read as an offset of
    # about a fifth of the noise's sd
    levels = re.findall(r"corners average \S+ \(([\d.]+)% of their noise", log)
    assert len(levels) == 2 and max(map(float, levels)) < 8.0, levels
    # run.json and info keep the count: the sample's, and every image's
    left_out = status(out)["summary"]["background_structure"]
    assert left_out["sampled_images"] == 200 and 25 <= left_out["sampled_images_left_out"] < 35
    assert left_out["images"] == 200
    # the rows written are the images weighed 0, every filmed one among them
    rows = np.load(out / "background_structure.npy")
    np.testing.assert_array_equal(rows, np.flatnonzero(w == 0))
    assert left_out["images_left_out"] == rows.size
    assert left_out["files"] == ["background_structure.npy", "background_structure.star"]
    named = read_particles(out / "background_structure.star", datadir=star.parent)
    assert len(named) == rows.size
    np.testing.assert_allclose(named.read_images(np.arange(rows.size)), images[rows].numpy())
    assert f"{rows.size} of 200 particles left out (weight 0" in log
    capsys.readouterr()
    assert main(["info", str(out)]) == 0
    text = capsys.readouterr().out
    assert f"left out:     {rows.size} of 200 particles (the sample held" in text
    assert "background_structure.npy, background_structure.star" in text


@pytest.mark.parametrize("box", [48, 100, 256])
def test_every_box_has_edges_to_try(box):
    images = torch.zeros((2, box, box))
    images[1, :, : box // 8] = 5.0  # a film along one side
    ratios = structure_ratios(
        images + torch.randn(2, box, box, generator=torch.Generator().manual_seed(3))
    )
    assert float(ratios[1]) > 20.0 * float(ratios[0])
