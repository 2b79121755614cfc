"""``cryosplat simulate``: noise level, shift sign, streaming output, STAR, reproducibility, errors."""

from __future__ import annotations

import json
import pickle
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch

import cryosplat.simulate.simulation as simulate_module
from cryosplat.cli.main import main
from cryosplat.core.ctf import ctf_from_params
from cryosplat.core.errors import InputError
from cryosplat.core.fourier import fft2_centered, ifft2_centered
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import MRCStack, read_map, write_map
from cryosplat.io.stack_writer import StreamingStackWriter
from cryosplat.io.star import write_relion31_particles
from cryosplat.model.gaussians import GaussianModel
from cryosplat.particles.read import read_particles
from cryosplat.simulate.simulation import SimulationConfig, draw_metadata, simulate

BOX, PIXEL = 32, 2.0


def _blob_model(n: int = 40, seed: int = 3) -> GaussianModel:
    return GaussianModel.random(
        n, BOX, PIXEL, seed=seed, radius_fraction=0.2, scale_angstrom=3.0, total_amplitude=1000.0
    )


@pytest.fixture(scope="module")
def blob_map(tmp_path_factory) -> Path:
    """A small seeded map (box 32, 2 Å/px) of 40 random Gaussians."""
    path = tmp_path_factory.mktemp("map") / "blob.mrc"
    with torch.no_grad():
        write_map(path, _blob_model().voxelize().numpy(), PIXEL)
    return path


def _config(**changes) -> SimulationConfig:
    values = dict(
        n_particles=40,
        snr=0.5,
        seed=11,
        shift_sd_angstrom=3.0,
        batch_size=16,
        astigmatism_max_angstrom=500.0,
    )
    values.update(changes)
    return SimulationConfig(**values)


def _images(result) -> np.ndarray:
    return np.concatenate(
        [MRCStack(p).read(np.arange(MRCStack(p).n_images)) for p in result.stack_paths]
    )


def test_noise_matches_requested_snr(blob_map, tmp_path):
    noisy = simulate(blob_map, tmp_path / "noisy", _config(n_particles=300, snr=0.2))
    clean = simulate(blob_map, tmp_path / "clean", _config(n_particles=300, snr=float("inf")))
    noise = _images(noisy) - _images(clean)
    signal = _images(clean).var(axis=(1, 2)).mean()
    assert noisy.signal_variance == pytest.approx(clean.signal_variance)
    assert noise.var() == pytest.approx(noisy.signal_variance / 0.2, rel=0.02)
    assert noise.var() == pytest.approx(signal / 0.2, rel=0.1)  # first-batch estimate vs all
    assert abs(noise.mean()) < 0.01 * noise.std()
    record = json.loads((tmp_path / "noisy" / "simulation.json").read_text())
    assert record["noise_sd"] == pytest.approx(noisy.noise_sd)
    assert record["signal_variance_images"] == 16


def test_shift_moves_particle_centre_to_minus_origin(tmp_path):
    one = GaussianModel(
        torch.zeros(1, 3),
        torch.full((1, 3), 3.0),
        torch.tensor([[1.0, 0, 0, 0]]),
        torch.tensor([100.0]),
        BOX,
        PIXEL,
    )
    path = tmp_path / "dot.mrc"
    with torch.no_grad():
        write_map(path, one.voxelize().numpy(), PIXEL)
    result = simulate(
        path, tmp_path / "out", _config(snr=float("inf"), apply_ctf=False, shift_sd_angstrom=5.0)
    )
    particles = read_particles(result.star_path)
    images = particles.read_images(np.arange(len(particles)))
    y, x = np.meshgrid(*(2 * [(np.arange(BOX) - BOX // 2) * PIXEL]), indexing="ij")
    centre = []
    for image in images:  # centroid within 12 Å of the brightest pixel
        peak = np.unravel_index(np.argmax(image), image.shape)
        w = image * (np.hypot(x - x[peak], y - y[peak]) < 12.0)
        centre.append([(w * x).sum() / w.sum(), (w * y).sum() / w.sum()])
    assert np.abs(particles.shifts_angstrom).max() > 4.0
    np.testing.assert_allclose(centre, -particles.shifts_angstrom, atol=0.05)


def test_star_is_read_back_by_particleset(blob_map, tmp_path):
    result = simulate(blob_map, tmp_path, _config(n_particles=25, images_per_stack=10))
    assert [p.name for p in result.stack_paths] == [f"particles_00{k}.mrcs" for k in range(3)]
    assert [MRCStack(p).n_images for p in result.stack_paths] == [10, 10, 5]
    particles = read_particles(result.star_path)
    meta = result.metadata
    assert (len(particles), particles.box, particles.pixel_size_angstrom) == (25, BOX, PIXEL)
    np.testing.assert_allclose(particles.rotations, meta.rotations, atol=1e-5)
    np.testing.assert_allclose(particles.shifts_angstrom, meta.shifts_angstrom, atol=1e-5)
    np.testing.assert_allclose(
        particles.ctf.defocus_u_angstrom, meta.ctf.defocus_u_angstrom, atol=1e-5
    )
    np.testing.assert_allclose(
        particles.ctf.defocus_angle_degrees, meta.ctf.defocus_angle_degrees, atol=1e-5
    )
    np.testing.assert_array_equal(particles.random_subset, meta.random_subset)
    assert sorted(np.bincount(meta.random_subset)[1:].tolist()) == [12, 13]
    np.testing.assert_array_equal(particles.read_images(np.arange(25)), _images(result))
    truth, voxel = read_map(result.truth_path)
    assert voxel == pytest.approx(PIXEL)
    np.testing.assert_array_equal(truth, read_map(blob_map)[0])


def test_streaming_writer_holds_one_batch(blob_map, tmp_path, monkeypatch):
    sizes, held = [], []
    original = StreamingStackWriter.write

    def spy(self, images):
        sizes.append(len(images))
        held.append(tracemalloc.get_traced_memory()[0])
        original(self, images)

    monkeypatch.setattr(StreamingStackWriter, "write", spy)
    n, batch = 1200, 40
    batch_bytes = batch * BOX * BOX * 4
    tracemalloc.start()
    try:
        simulate(blob_map, tmp_path, _config(n_particles=n, batch_size=batch, images_per_stack=500))
    finally:
        tracemalloc.stop()
    assert sum(sizes) == n and max(sizes) == batch
    # Memory held while images are produced does not grow with the images written so far
    # (1200 images are 30 batches; at most a few batches' worth is ever held).
    assert max(held) - held[0] < batch_bytes, held
    assert max(held) < 6 * batch_bytes + n * 200, held


def test_stream_writer_header_and_count(tmp_path):
    images = np.random.default_rng(0).normal(size=(7, 8, 8)).astype(np.float32)
    writer = StreamingStackWriter(tmp_path / "s.mrcs", 7, 8, 1.25)
    writer.write(images[:3])
    assert not (tmp_path / "s.mrcs").exists()
    writer.write(images[3:])
    writer.close()
    stack = MRCStack(tmp_path / "s.mrcs")
    np.testing.assert_array_equal(stack.read(np.arange(7)), images)
    assert stack.pixel_size_angstrom == pytest.approx(1.25)
    import mrcfile

    with mrcfile.open(tmp_path / "s.mrcs") as m:
        assert m.is_image_stack()
        assert float(m.header.dmax) == pytest.approx(images.max())
        assert float(m.header.rms) == pytest.approx(images.std(), rel=1e-5)
        assert m.header.label[0].decode().startswith("Created by cryosplat ")
    write_map(tmp_path / "map.mrc", images[:4, :4, :4], 1.25)
    with mrcfile.open(tmp_path / "map.mrc") as m:  # as RELION writes "Relion <date>"
        assert m.header.nlabl == 1
        assert m.header.label[0].decode().startswith("Created by cryosplat ")
    short = StreamingStackWriter(tmp_path / "t.mrcs", 3, 8, 1.0)
    short.write(images[:2])
    with pytest.raises(ValueError, match="2 of 3 images"):
        short.close()
    assert sorted(tmp_path.iterdir()) == [tmp_path / "map.mrc", tmp_path / "s.mrcs"]


def test_reproducible_with_seed(blob_map, tmp_path):
    a = simulate(blob_map, tmp_path / "a", _config())
    b = simulate(blob_map, tmp_path / "b", _config())
    c = simulate(blob_map, tmp_path / "c", _config(seed=12))
    assert a.star_path.read_bytes() == b.star_path.read_bytes()
    # The image data are identical (the MRC header's label holds a timestamp).
    assert a.stack_paths[0].read_bytes()[1024:] == b.stack_paths[0].read_bytes()[1024:]
    assert a.star_path.read_bytes() != c.star_path.read_bytes()
    assert not np.allclose(_images(a), _images(c))


def test_views_from_file_and_ctf_table(blob_map, tmp_path):
    rotations = random_rotations(5, seed=4)
    views = tmp_path / "views.star"
    write_relion31_particles(
        views, image_names=None, rotations=rotations, pixel_size_angstrom=3.0, box=64
    )
    table = np.zeros((4, 9))
    table[:, 0], table[:, 1] = 360, 1.34
    table[:, 2:5] = [[12000, 11000, 10], [15000, 14500, 20], [20000, 19000, 30], [9000, 8800, 40]]
    table[:, 5:9] = [300, 2.0, 0.1, 0]
    ctf_pkl = tmp_path / "ctf.pkl"
    with open(ctf_pkl, "wb") as fh:
        pickle.dump(table.astype(np.float32), fh)
    result = simulate(
        blob_map, tmp_path / "out", _config(n_particles=30, views=views, ctf_table=ctf_pkl)
    )
    meta = result.metadata
    match = (
        np.abs(meta.rotations[:, None] - rotations[None]).max(axis=(2, 3)) < 1e-4
    )  # STAR angles: 6 decimals
    assert match.any(axis=1).all() and match.any(axis=0).sum() >= 4
    rows = {tuple(r) for r in table[:, 2:5].astype(np.float32).astype(np.float64)}
    drawn = zip(
        meta.ctf.defocus_u_angstrom,
        meta.ctf.defocus_v_angstrom,
        meta.ctf.defocus_angle_degrees,
        strict=True,
    )
    assert all(tuple(r) in rows for r in drawn)
    assert np.all(meta.ctf.cs_mm == 2.7)  # optics from the config, not from the table


def test_defocus_range_and_astigmatism():
    config = _config(
        n_particles=2000, defocus_min_um=1.0, defocus_max_um=2.0, astigmatism_max_angstrom=400.0
    )
    ctf = draw_metadata(config, np.random.default_rng(0)).ctf
    mean = (ctf.defocus_u_angstrom + ctf.defocus_v_angstrom) / 2
    astig = ctf.defocus_u_angstrom - ctf.defocus_v_angstrom
    assert 10000 <= mean.min() < 10100 and 19900 < mean.max() <= 20000
    assert 0 <= astig.min() < 5 and 395 < astig.max() <= 400
    assert ctf.defocus_angle_degrees.min() >= 0 and ctf.defocus_angle_degrees.max() < 180


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(n_particles=0), "number of particles must be at least 1"),
        (dict(snr=0.0), "SNR must be positive"),
        (dict(snr=-1.0), "SNR must be positive"),
        (dict(defocus_min_um=3.0, defocus_max_um=2.0), "defocus range"),
        # µm given to the command line's Å options: 1.5 to 2.5 "Å"
        (dict(defocus_min_um=1.5e-4, defocus_max_um=2.5e-4), "µm written as Å"),
        (dict(shift_sd_angstrom=-1.0), "shift spread"),
        (dict(amplitude_contrast=1.0), "amplitude contrast"),
        (dict(batch_size=0), "batch size"),
        (dict(box=32, pixel_size_angstrom=-2.0), "pixel size must be positive"),
        (dict(box=48), "the map's box is 32, not 48"),
        (dict(astigmatism_max_angstrom=30000.0), "V would be negative"),
    ],
)
def test_bad_options_raise_input_error(blob_map, tmp_path, changes, message):
    with pytest.raises(InputError, match=message):
        simulate(blob_map, tmp_path, _config(**changes))


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError])
def test_an_interrupted_simulation_leaves_no_files_and_runs_again(
    blob_map, tmp_path, monkeypatch, stop
):
    """Ctrl-C, SIGTERM or a full disk mid-way: the truth and the stacks written so far are
    removed, so the same command runs again without --overwrite."""
    import cryosplat.simulate.simulation as simulation

    real = simulation._write_stacks

    def failing(*args, **kwargs):
        raise stop()

    monkeypatch.setattr(simulation, "_write_stacks", failing)
    out = tmp_path / "sim"
    with pytest.raises(stop):
        simulate(blob_map, out, _config(images_per_stack=16))
    assert out.is_dir() and list(out.iterdir()) == []
    monkeypatch.setattr(simulation, "_write_stacks", real)
    result = simulate(blob_map, out, _config(images_per_stack=16))
    assert result.n_particles == 40 and (out / "simulation.json").is_file()


def test_bad_model_files(tmp_path, blob_map):
    with pytest.raises(InputError, match="model file not found"):
        simulate(tmp_path / "missing.mrc", tmp_path, _config())
    (tmp_path / "model.xyz").write_text("nothing")
    with pytest.raises(InputError, match="unknown model type '.xyz'"):
        simulate(tmp_path / "model.xyz", tmp_path, _config())
    (tmp_path / "atoms.pdb").write_text("END\n")
    with pytest.raises(InputError, match="needs --box and --pixel-size"):
        simulate(tmp_path / "atoms.pdb", tmp_path, _config())
    write_map(tmp_path / "empty.mrc", np.zeros((BOX,) * 3), PIXEL)
    with pytest.raises(InputError, match="blank images"):
        simulate(tmp_path / "empty.mrc", tmp_path / "e", _config())


def test_an_odd_map_projects_as_the_even_map_it_was_cut_from(blob_map, tmp_path):
    """The blob map (box 32, centre voxel 16) without its first plane on each axis is a map of
    box 31 about the same centre (voxel 15): its clean images are the box-32 images without their
    first row and column (up to the shifts' wrap-around at the edge), and with the CTF those
    images times the CTF of box 31."""
    even, _ = read_map(blob_map)
    write_map(tmp_path / "odd.mrc", even[1:, 1:, 1:], PIXEL)
    clean = _config(box=None, snr=float("inf"), apply_ctf=False)
    odd_images = _images(simulate(tmp_path / "odd.mrc", tmp_path / "o", clean))
    even_images = _images(simulate(blob_map, tmp_path / "e", clean))[:, 1:, 1:]
    assert odd_images.shape == (40, BOX - 1, BOX - 1)
    error = np.linalg.norm(odd_images - even_images) / np.linalg.norm(even_images)
    assert error < 0.01, error  # a voxel's misplacement gives > 0.3
    truth, voxel = read_map(tmp_path / "o" / "truth.mrc")
    assert truth.shape == (BOX - 1,) * 3 and voxel == pytest.approx(PIXEL)

    with_ctf = _config(box=None, snr=float("inf"))
    odd_ctf = _images(simulate(tmp_path / "odd.mrc", tmp_path / "oc", with_ctf))
    ctf = ctf_from_params(read_particles(tmp_path / "oc" / "particles.star").ctf, BOX - 1, PIXEL)
    expected = ifft2_centered(fft2_centered(torch.as_tensor(even_images)) * ctf).real.numpy()
    error = np.linalg.norm(odd_ctf - expected) / np.linalg.norm(expected)
    assert error < 0.01, error


def test_cli_writes_dataset_and_reports_errors(blob_map, tmp_path, capsys):
    code = main(
        [
            "simulate",
            str(blob_map),
            "-n",
            "12",
            "--snr",
            "0.1",
            "--shift-sd",
            "2",
            "--seed",
            "3",
            "-o",
            str(tmp_path / "cli"),
            "--quiet",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "wrote 12 particles" in out
    assert len(read_particles(tmp_path / "cli" / "particles.star")) == 12
    code = main(["simulate", str(blob_map), "-n", "12", "--snr", "0", "-o", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "SNR must be positive" in err and "Traceback" not in err
    assert "simulate [" not in err  # no progress bar before the inputs are read
    code = main(["simulate", str(tmp_path / "none.mrc"), "-n", "12", "-o", str(tmp_path / "y")])
    err = capsys.readouterr().err
    assert code == 2 and "none.mrc: " in err and "simulate [" not in err


def test_batches_never_straddle_stacks():
    spans = list(simulate_module._batches(25, 10, 4))
    assert spans[:4] == [(0, 0, 4), (0, 4, 8), (0, 8, 10), (1, 10, 14)]
    assert [b - a for _, a, b in spans] == [4, 4, 2, 4, 4, 2, 4, 1]


def test_gaussian_model_agrees_with_its_voxelised_map(tmp_path):
    """Splatting a saved model and Fourier-slicing its truth map give the same particles."""
    model = _blob_model(seed=8)
    model.save(tmp_path / "model.npz")
    config = _config(n_particles=12, snr=float("inf"))
    splat = simulate(tmp_path / "model.npz", tmp_path / "splat", config)
    sliced = simulate(splat.truth_path, tmp_path / "sliced", config)
    assert (splat.box, splat.pixel_size_angstrom) == (BOX, PIXEL)
    for a, b in zip(_images(splat), _images(sliced), strict=True):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.9995
        assert (a * b).sum() / (b * b).sum() == pytest.approx(1.0, rel=0.01)
    assert splat.signal_variance == pytest.approx(sliced.signal_variance, rel=0.01)


def test_atoms_give_bright_particles_and_their_truth_map(shared_data, tmp_path):
    """8ZPM atoms: no-CTF images integrate to the truth's mass; with the CTF protein stays bright."""
    common = dict(
        n_particles=3,
        box=48,
        pixel_size_angstrom=3.0,
        snr=float("inf"),
        shift_sd_angstrom=0.0,
        bfactor_extra_angstrom2=60.0,
        batch_size=6,
    )
    cif = shared_data / "models" / "8zpm.cif"
    plain = simulate(cif, tmp_path / "plain", _config(**common, apply_ctf=False))
    with_ctf = simulate(cif, tmp_path / "ctf", _config(**common))
    sliced = simulate(
        cif, tmp_path / "sliced", _config(**common, apply_ctf=False, projection="fourier")
    )
    truth, voxel = read_map(plain.truth_path)
    mass = truth.sum() * voxel**3
    images = _images(plain)
    assert mass > 0
    np.testing.assert_allclose(images.sum(axis=(1, 2)) * voxel**2, mass, rtol=0.01)
    for a, b, c in zip(images, _images(with_ctf), _images(sliced), strict=True):
        assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.5
        assert np.corrcoef(a.ravel(), c.ravel())[0, 1] > 0.98  # voxel point-sampling


def test_unknown_projection_is_rejected(blob_map, tmp_path):
    with pytest.raises(InputError, match="projection must be 'splat' or 'fourier'"):
        simulate(blob_map, tmp_path, _config(projection="raytrace"))
