"""Images of several sizes read at one box (:mod:`cryosplat.particles.mixed_boxes`).

A noise-free set is projected at box 24 (3 Å); a quarter of it is stored binned (box 12 at 6 Å,
the same field of view) and another quarter at box 30 (3 Å, a larger field of view), each in an
optics group of its own, as RELION 3.1 holds data sets extracted at different boxes. Read from
the STAR file, every image comes back at box 24 and the statistics make the single-box map.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cryosplat.core.conventions import matrix_to_euler_relion
from cryosplat.core.errors import InputError
from cryosplat.core.fourier import radial_index_2d
from cryosplat.io.mrc import read_map, write_stack
from cryosplat.io.star import write_star
from cryosplat.particles.cryosparc import read_cryosparc
from cryosplat.particles.downsample import ResampledStack, fourier_resample_images
from cryosplat.particles.mixed_boxes import one_box
from cryosplat.particles.particle_set import OpticsGroup
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.grid.gather import accumulate
from cryosplat.reconstruct.run import ReconstructConfig, check_engine_particles
from cryosplat.reconstruct.splat.engine import SplatEngine, SplatEngineConfig
from cryosplat.reconstruct.splat.image_batches import image_batch, predict
from cryosplat.reconstruct.splat.runner import initial_models
from cryosplat.validation.fsc import fsc
from tests.test_cryosparc import _write_cs
from tests.test_optics_pixel_sizes import _fourier_crop, _project, truth_and_metadata

BOX, PIXEL, N = 24, 3.0, 600


def _gaussian_image(box: int, pixel: float) -> np.ndarray:
    """A smooth blob sampled at ``pixel`` over a field of ``box`` pixels, shape (1, box, box)."""
    c = (np.arange(box) - box // 2) * pixel
    x, y = np.meshgrid(c, c, indexing="xy")
    return np.exp(-((x - 4.0) ** 2 + (y + 6.0) ** 2) / (2 * 9.0**2))[None].astype(np.float32)


@pytest.mark.parametrize(("size", "box"), [(24, 36), (24, 37), (23, 36), (36, 24), (37, 24)])
def test_resampling_keeps_the_field_of_view_and_the_pixel_values(size, box):
    field = 96.0  # Å
    resampled = fourier_resample_images(_gaussian_image(size, field / size), box)
    assert resampled.shape == (1, box, box)
    np.testing.assert_allclose(resampled, _gaussian_image(box, field / box), atol=2e-3)
    constant = fourier_resample_images(np.full((2, size, size), 1.5, np.float32), box)
    np.testing.assert_allclose(constant, 1.5, atol=1e-5)


def test_a_padded_image_crops_back_to_itself_without_its_nyquist():
    images = np.random.default_rng(0).normal(size=(3, 24, 24)).astype(np.float32)
    spectra = np.fft.fft2(np.fft.ifftshift(images, axes=(-2, -1)))
    spectra[:, 12, :] = spectra[:, :, 12] = 0  # an even box's Nyquist row and column
    band_limited = np.fft.fftshift(np.fft.ifft2(spectra).real, axes=(-2, -1))
    back = fourier_resample_images(fourier_resample_images(images, 31), 24)
    np.testing.assert_allclose(back, band_limited, atol=1e-5)
    with pytest.raises(ValueError, match="even below 24, got 15"):
        fourier_resample_images(images, 15)


class _Stack:
    def __init__(self, box: int, path: str = "s.mrcs") -> None:
        self.box, self.path, self.n_images, self.pixel_size_angstrom = box, path, 10, 1.0


def _group(name: str, box: int = 0, pixel: float = 1.0) -> OpticsGroup:
    return OpticsGroup(name, pixel, box, 300.0, 2.7, 0.1)


def test_the_most_common_box_is_read_and_a_group_of_two_sizes_is_split(tmp_path):
    stacks = [_Stack(40), _Stack(50), _Stack(30)]
    stack_index = np.array([0, 0, 1, 1, 1, 2])
    group_of = np.array([0, 0, 0, 0, 0, 1])
    groups = [_group("a"), _group("b", 30, 2.0)]
    read = one_box(stacks, stack_index, group_of, groups, tmp_path)
    assert read.box == 50
    assert [g.name for g in read.optics] == ["a (box 40)", "a (box 50)", "b"]
    assert [g.stored and g.stored.box for g in read.optics] == [40, None, 30]
    # a (box 40): its 40 Å field inside the map's 50 Å, Fourier-padded to 50 (0.8 Å, holding
    # its 19 frequencies); b: 60 Å at 2 Å, padded to 60 px (1 Å, 14 × 50/60 frequencies over
    # the 50 Å it is read over) and cropped to 50
    np.testing.assert_allclose([g.pixel_size_angstrom for g in read.optics], [0.8, 1.0, 1.0])
    assert read.optics[0].stored.band_limit_px == 19
    assert read.optics[2].stored.band_limit_px == pytest.approx(14 * 50 / 60)
    np.testing.assert_array_equal(read.optics_group, [0, 0, 1, 1, 1, 2])
    np.testing.assert_allclose(read.pixel_factors(), [0.8, 0.8, 1, 1, 1, 0.5])
    assert isinstance(read.stacks[0], ResampledStack) and read.stacks[1] is stacks[1]
    assert (read.stacks[0].resample_box, read.stacks[2].resample_box) == (50, 60)
    assert "(1 of box 30, 2 of box 40, 3 of box 50); each is read at box 50" in read.notes[0]
    assert "a (box 40) Fourier-padded 40 → 50 px (0.8 Å), its field kept" in read.notes[0]
    assert "b Fourier-resampled 30 → 60 px, then cropped 60 → 50 px" in read.notes[0]
    assert "(60 Å against 50 Å) left out" in read.notes[0]
    tie = one_box(stacks[:2], np.array([0, 1]), np.array([0, 1]), [_group("a"), _group("b")], "f")
    assert tie.box == 50 and "b Fourier-padded" not in tie.notes[0]
    same = one_box(stacks[:1], np.array([0, 0]), np.array([0, 0]), [_group("a")], "f")
    assert same.box == 40 and same.notes == [] and same.optics[0].stored is None
    with pytest.raises(InputError, match=r"says 30 for b but 1 of its 1 images are 40x40"):
        one_box(stacks[:1], np.array([0]), np.array([0]), [_group("b", 30)], "f", "says")


def test_a_larger_box_at_the_maps_pixel_is_cropped_in_real_space():
    images = np.random.default_rng(1).normal(size=(2, 30, 30)).astype(np.float32)

    class _Held(_Stack):
        def read(self, indices):
            return images[np.asarray(indices)]

    read = one_box(
        [_Held(24), _Held(24), _Held(30)],
        np.array([0, 1, 2]),
        np.array([0, 0, 1]),
        [_group("a", 24, 3.0), _group("b", 30, 3.0)],
        "f",
    )
    assert read.box == 24 and read.optics[1].pixel_size_angstrom == 3.0
    assert read.optics[1].stored.band_limit_px is None
    np.testing.assert_array_equal(read.stacks[2].read([0, 1]), images[:, 3:27, 3:27])


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """(the set at one box, the same particles stored at boxes 24, 12 (6 Å) and 30)."""
    folder = tmp_path_factory.mktemp("mixed_boxes")
    # near focus: the CTF spreads little signal beyond the molecule, so a crop of a larger
    # field (the box-30 set) holds what an image of the map's field holds
    truth, rotations, shifts, ctf = truth_and_metadata((1000, 4000), N)
    images = _project(truth, rotations, shifts, ctf, BOX)
    third = np.array([0, 1, 2, 0])[np.arange(N) % 4]  # half at box 24, a quarter each else
    parts = {
        24: images[third == 0].numpy(),
        12: _fourier_crop(images[third == 1], 12),
        30: _project(
            truth, rotations[third == 2], shifts[third == 2], ctf.subset(third == 2), 30
        ).numpy(),
    }
    pixel = {24: PIXEL, 12: 2 * PIXEL, 30: PIXEL}
    names = np.empty(N, dtype=object)
    for g, size in enumerate(parts):
        write_stack(folder / f"box{size}.mrcs", parts[size], pixel[size])
        rows = np.flatnonzero(third == g)
        names[rows] = [f"{i + 1}@box{size}.mrcs" for i in range(rows.size)]
    write_stack(folder / "one.mrcs", images.numpy(), PIXEL)
    angles = matrix_to_euler_relion(rotations)
    eulers = {
        "rlnAngleRot": angles[:, 0],
        "rlnAngleTilt": angles[:, 1],
        "rlnAnglePsi": angles[:, 2],
    }
    common = {
        **eulers,
        "rlnDefocusU": ctf.defocus_u_angstrom,
        "rlnDefocusV": ctf.defocus_v_angstrom,
        "rlnDefocusAngle": ctf.defocus_angle_degrees,
        "rlnOriginXAngst": shifts[:, 0],
        "rlnOriginYAngst": shifts[:, 1],
    }
    optics = {
        "rlnVoltage": [300.0] * 3,
        "rlnSphericalAberration": [2.7] * 3,
        "rlnAmplitudeContrast": [0.1] * 3,
    }
    one = {"rlnOpticsGroup": [1], **{k: v[:1] for k, v in optics.items()}}
    one |= {"rlnImagePixelSize": [PIXEL], "rlnImageSize": [BOX]}
    single = {"rlnImageName": [f"{i + 1}@one.mrcs" for i in range(N)], "rlnOpticsGroup": [1] * N}
    write_star(folder / "one.star", {"optics": one, "particles": {**single, **common}})
    mixed = {"rlnImageName": list(names), "rlnOpticsGroup": list(third + 1)}
    three = {"rlnOpticsGroup": [1, 2, 3], "rlnImagePixelSize": [PIXEL, 2 * PIXEL, PIXEL]}
    three |= {"rlnImageSize": [24, 12, 30], **optics}
    write_star(folder / "mixed.star", {"optics": three, "particles": {**mixed, **common}})
    return read_particles(folder / "one.star"), read_particles(folder / "mixed.star")


def _wiener(particles) -> np.ndarray:
    return accumulate(particles).reconstruct_wiener(regularization=1e-4).numpy()


def test_a_star_of_three_boxes_is_read_at_the_most_common(sets):
    single, mixed = sets
    assert mixed.box == BOX and mixed.pixel_size_angstrom == PIXEL
    assert [g.stored and g.stored.box for g in mixed.optics] == [None, 12, 30]
    np.testing.assert_allclose([g.pixel_size_angstrom for g in mixed.optics], 3.0)
    assert mixed.optics[1].stored.band_limit_px == 5  # the binned set's own frequencies
    assert any("each is read at box 24" in n for n in mixed.notes)
    np.testing.assert_allclose(mixed.shifts_angstrom, single.shifts_angstrom, atol=1e-4)
    rows = np.flatnonzero(np.arange(N) % 4 == 1)[:4]
    # the binned images come back band-limited to their own Nyquist (12 Å)
    blurred = fourier_resample_images(fourier_resample_images(single.read_images(rows), 12), 24)
    np.testing.assert_allclose(mixed.read_images(rows), blurred, atol=1e-4)
    again = mixed.with_pixel_size(2.0)
    # --angpix: every image's pixel as stored (the binned group's 6 Å too)
    np.testing.assert_allclose([g.pixel_size_angstrom for g in again.optics], [2.0, 1.0, 2.0])
    assert again.optics[1].stored.pixel_size_angstrom == 2.0
    ratio = np.array([2 / 3, 1 / 3, 2 / 3])[mixed.optics_group][:, None]
    np.testing.assert_allclose(again.shifts_angstrom, mixed.shifts_angstrom * ratio, atol=1e-6)


@pytest.mark.slow
def test_images_of_three_boxes_make_the_map_of_one(sets):
    single, mixed = sets
    reference = _wiener(single)
    # Shells 1 .. D/2 - 1: the binned group holds shells up to 5.
    curve = fsc(reference, _wiener(mixed))[1 : BOX // 2]
    assert curve.min() >= 0.99, np.round(curve, 4)


def test_the_per_image_engine_fits_a_padded_image_within_its_own_band(sets, tmp_path):
    """The binned group's images (read Fourier-padded, nothing past their shell 5) are fitted by
    ``--engine splat`` within that band: its zeros beyond add nothing to the loss, whatever the
    model predicts there; the other images are fitted to the engine's band as before."""
    single, mixed = sets
    for particles in (single, mixed):
        check_engine_particles(particles, "grid")
        check_engine_particles(particles, "splat")
    models = initial_models(mixed, ReconstructConfig(seed=0), 40, torch.device("cpu"))
    halves = (np.arange(0, N, 2), np.arange(1, N, 2))
    config = SplatEngineConfig(epochs=1, band_start_fraction=1.0)  # every shell from the start
    engine = SplatEngine(mixed, halves, models, config, tmp_path / "s.pt", "cpu", seed=0)
    rows = np.arange(8)  # rows 1 and 5 are binned (i % 4 == 1)
    losses = engine._image_losses(engine.halves[0], rows).detach()
    batch = image_batch(mixed, rows, "cpu", 1.0, engine.halves[0].background)
    np.testing.assert_allclose(batch.band_limits.numpy()[[0, 1, 2]], [np.inf, 5, np.inf])
    with torch.no_grad():
        pred = predict(models[0], batch.rotations, batch.shifts, batch.ctf, "auto")
    shells = radial_index_2d(BOX)
    squared = (pred - batch.data).abs().pow(2)
    within = shells <= engine.band_shell()
    for row in range(8):
        held = within & (shells <= batch.band_limits[row])
        expected = float(squared[row][held].sum())
        assert float(losses[row]) == pytest.approx(expected, rel=1e-5)
        if row % 4 == 1:  # past its band the image is zeros the model is not asked to match
            assert float(squared[row][within & ~held].sum()) > 0.05 * expected


def test_a_cryosparc_table_of_two_shapes_is_read_at_the_most_common(tmp_path):
    write_stack(tmp_path / "small.mrcs", np.zeros((2, 16, 16), np.float32), 2.0)
    write_stack(tmp_path / "big.mrcs", np.ones((3, 20, 20), np.float32), 2.0)
    cs = tmp_path / "P1_J2_particles.cs"
    table = _write_cs(cs, ["small.mrcs"] * 2 + ["big.mrcs"] * 3, [0, 1, 0, 1, 2])
    table["blob/shape"][2:] = 20
    with open(cs, "wb") as fh:
        np.save(fh, table)
    particles = read_cryosparc(cs)
    assert particles.box == 20 and particles.pixel_size_angstrom == 2.0
    assert [g.stored and g.stored.box for g in particles.optics] == [16, None]
    assert particles.read_images([0, 4]).shape == (2, 20, 20)
    table["blob/shape"][2:] = 24
    with open(cs, "wb") as fh:
        np.save(fh, table)
    with pytest.raises(InputError, match=r"blob/shape says 24 for group2 but 3 of its 3 images"):
        read_cryosparc(cs)


def test_info_says_how_each_group_is_stored(sets, capsys):
    from cryosplat.cli.main import main

    assert main(["info", str(sets[1].source)]) == 0
    out = capsys.readouterr().out
    assert "opticsGroup2: 3.0000 Å" in out
    assert "(read at box 24; stored at box 12, 6.0000 Å; nothing finer than 12.00 Å in them)" in out
    assert "(read at box 24; stored at box 30, 3.0000 Å)" in out
    assert "note: image sizes: the particles' images differ" in out


def test_a_run_reconstructs_the_three_boxes_as_the_one(sets, tmp_path):
    """End to end: the same particles from the one-box and the three-box STAR make maps that
    agree (noise-free images; the binned quarter holds shells up to 5 of 11)."""
    from cryosplat.cli.main import main

    maps = []
    for particles, name in zip(sets, ("one", "three"), strict=True):
        out = tmp_path / name
        steps = ["--stage-fractions", "0.5,1.0", "--stage-steps", "20,20", "--no-progress"]
        assert main(["reconstruct", str(particles.source), "-o", str(out), *steps]) == 0
        maps.append(read_map(out / "map.mrc")[0])
    assert read_map(tmp_path / "three" / "map.mrc")[1] == pytest.approx(PIXEL)
    curve = fsc(*maps)[1 : BOX // 2]
    assert curve.min() > 0.95, np.round(curve, 3)  # measured 0.998 at the last shell
