"""Passes over the images saved part way (``cryosplat.reconstruct.grid.row_store``): an
interrupted ``refine-defocus`` or ``score`` goes on where it stopped and gives what an
uninterrupted one gives; a saved pass is read back only by the same pass."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.io.star import read_star, write_star
from cryosplat.particles.read import read_particles
from cryosplat.reconstruct.defocus_run import refine_defocus_run
from cryosplat.reconstruct.grid import ctf_likelihood, particle_scores
from cryosplat.reconstruct.grid.row_store import RowStore, digest
from tests.conftest import reconstruct_quickly


def _store(tmp_path, key="k", n=10, every_s=0.0):
    return RowStore(n, tmp_path / "pass.npz", key, every_s)


def test_a_pass_saved_part_way_is_read_back_by_the_same_pass(tmp_path):
    store = _store(tmp_path)
    store.column("v", (3,))
    rng = np.random.default_rng(0)
    values = rng.normal(size=(4, 3))
    store.put(np.array([7, 1, 4, 2]), v=values)  # every_s 0: saved at once
    again = _store(tmp_path)
    assert again.n_done == 4
    np.testing.assert_array_equal(again.todo(), [0, 3, 5, 6, 8, 9])
    np.testing.assert_array_equal(again.arrays["v"][[7, 1, 4, 2]], values)
    seen = []
    todo, rows, progress = again.pending(np.arange(100, 110), seen.append)
    np.testing.assert_array_equal(rows, 100 + todo)
    progress(2)  # two more read: counted on from the four done
    assert seen == [4, 6]
    with pytest.raises(RuntimeError, match="6 of 10 rows not done"):
        again.finish()
    again.put(todo, v=np.zeros((len(todo), 3)))
    assert again.finish()["v"].shape == (10, 3)


def test_another_pass_or_an_unreadable_file_starts_afresh(tmp_path, caplog):
    store = _store(tmp_path)
    store.put(np.array([0, 1]), v=np.ones(2))
    assert _store(tmp_path, key="other").n_done == 0
    assert _store(tmp_path, n=12).n_done == 0  # the same key, other rows: not trusted
    (tmp_path / "pass.npz").write_bytes(b"not a checkpoint")
    with caplog.at_level(logging.WARNING, logger="cryosplat"):
        assert _store(tmp_path).n_done == 0
    assert "unreadable" in caplog.text


def test_an_interrupted_pass_is_saved_whatever_the_time_since_the_last_save(tmp_path):
    store = _store(tmp_path, every_s=1e9)
    with pytest.raises(KeyboardInterrupt), store.saved_on_exit():
        store.put(np.array([3, 5]), v=np.array([1.0, 2.0]))
        assert not (tmp_path / "pass.npz").exists()  # not yet due
        raise KeyboardInterrupt
    again = _store(tmp_path)
    assert again.n_done == 2 and again.arrays["v"][5] == 2.0


def test_a_pass_that_cannot_be_saved_goes_on_unsaved(tmp_path, caplog):
    (tmp_path / "file").write_text("not a folder")
    store = RowStore(4, tmp_path / "file" / "pass.npz", "k", every_s=0.0)
    with caplog.at_level(logging.WARNING, logger="cryosplat"):
        store.put(np.arange(4), v=np.arange(4.0))
    assert "could not be saved" in caplog.text and store.path is None
    np.testing.assert_array_equal(store.finish()["v"], np.arange(4.0))
    # interrupted, it cannot be saved either: the interruption is what is raised
    late = RowStore(4, tmp_path / "file" / "late.npz", "k", every_s=1e9)
    with pytest.raises(KeyboardInterrupt), late.saved_on_exit():
        late.put(np.arange(2), v=np.ones(2))
        raise KeyboardInterrupt


@dataclass
class _Params:
    values: np.ndarray
    other: float


def test_the_key_sees_every_element_of_large_arrays_inside_dataclasses():
    a = np.arange(5000.0)
    b = a.copy()
    b[2500] += 1e-9  # repr would print both as the same "..." abridged array
    assert digest(_Params(a, 1.0)) != digest(_Params(b, 1.0))
    assert digest(_Params(a, 1.0)) == digest(_Params(a.copy(), 1.0))
    assert digest(_Params(a, 1.0)) != digest(_Params(a, 2.0))


_READ_SAMPLES = particle_scores.read_samples


class _Reads:
    """``read_samples`` wrapped: counts the images read, and raises KeyboardInterrupt once
    ``stop_after`` batches have been read (None: never)."""

    def __init__(self, monkeypatch, stop_after=None):
        self.images, self.batches, self.stop_after = 0, 0, stop_after
        original = _READ_SAMPLES

        def reading(*args, **kwargs):
            for samples in original(*args, **kwargs):
                if self.stop_after is not None and self.batches >= self.stop_after:
                    raise KeyboardInterrupt
                self.batches += 1
                self.images += len(samples.positions)
                yield samples

        monkeypatch.setattr(particle_scores, "read_samples", reading)
        monkeypatch.setattr(ctf_likelihood, "read_samples", reading)


@pytest.fixture(scope="module")
def named_run(tiny_set, tmp_path_factory):
    """The tiny set with its particles named on six micrographs (so that every pass of
    ``refine-defocus`` runs, the astigmatism's included), and a complete run of it."""
    folder = tmp_path_factory.mktemp("named")
    blocks = {name: dict(block.columns) for name, block in read_star(tiny_set).items()}
    n = len(blocks["particles"]["rlnImageName"])
    blocks["particles"]["rlnMicrographName"] = [f"mic{i % 6}.mrc" for i in range(n)]
    blocks["particles"]["rlnImageName"] = [
        f"{name.split('@')[0]}@{tiny_set.parent / name.split('@')[1]}"
        for name in blocks["particles"]["rlnImageName"]
    ]
    star = folder / "named.star"
    write_star(star, blocks)
    run = folder / "run"
    assert reconstruct_quickly(str(star), "-o", str(run)) == 0
    return star, run


def test_refine_defocus_interrupted_goes_on_where_it_stopped(named_run, tmp_path, monkeypatch):
    star, run = named_run
    particles = read_particles(star)
    options = {"batch_size": 16, "show_progress": False}
    whole_reads = _Reads(monkeypatch)
    whole = refine_defocus_run(particles, run, **options)
    assert whole.astigmatism is not None
    # stopped in the middle of the second half's defocus pass (4 batches a half a pass; a half's
    # passes: against its own map, the other's, its scores without its own share, its defocus)
    folder = tmp_path / "checkpoints"
    stopped_reads = _Reads(monkeypatch, stop_after=30)
    with pytest.raises(KeyboardInterrupt):
        refine_defocus_run(particles, run, checkpoints=folder, **options)
    assert sorted(p.name for p in folder.iterdir()) == [
        "defocus_0.npz",
        "defocus_1.npz",
        "other_0.npz",
        "other_1.npz",
        "own_0.npz",
        "own_1.npz",
        "scores_0.npz",
        "scores_1.npz",
    ]
    resumed_reads = _Reads(monkeypatch)
    resumed = refine_defocus_run(particles, run, checkpoints=folder, **options)
    assert resumed_reads.images == whole_reads.images - stopped_reads.images  # none read twice
    np.testing.assert_allclose(resumed.fit.offset_angstrom, whole.fit.offset_angstrom, atol=1e-6)
    np.testing.assert_allclose(
        resumed.astigmatism.offset_angstrom, whole.astigmatism.offset_angstrom, atol=1e-6
    )
    # a third call finds every pass done and reads no image
    again_reads = _Reads(monkeypatch)
    again = refine_defocus_run(particles, run, checkpoints=folder, **options)
    assert again_reads.images == 0
    np.testing.assert_array_equal(again.fit.offset_angstrom, resumed.fit.offset_angstrom)
    # another range searched: the scores' passes are the same and read back, the defocus passes
    # read again (the astigmatism's only where the defocus read moved: their key holds the CTF)
    fresh_reads = _Reads(monkeypatch)
    fresh = refine_defocus_run(particles, run, range_angstrom=900.0, **options)
    other_reads = _Reads(monkeypatch)
    other = refine_defocus_run(particles, run, checkpoints=folder, range_angstrom=900.0, **options)
    assert len(particles) <= other_reads.images <= fresh_reads.images - len(particles)
    np.testing.assert_allclose(other.fit.offset_angstrom, fresh.fit.offset_angstrom, atol=1e-6)


def test_score_interrupted_goes_on_and_writes_what_an_uninterrupted_one_does(
    named_run, tmp_path, monkeypatch, capsys
):
    star, run = named_run
    command = ["score", str(star), "--run", str(run), "--no-progress", "-o"]
    whole_reads = _Reads(monkeypatch)
    assert main([*command, str(tmp_path / "whole")]) == 0
    assert not (tmp_path / "whole" / "checkpoints").exists()
    stopped_reads = _Reads(monkeypatch, stop_after=1)  # the first half read, the second not
    assert main([*command, str(tmp_path / "part")]) == 130
    assert (tmp_path / "part" / "checkpoints" / "scores_0.npz").is_file()
    assert not (tmp_path / "part" / "particle_scores.csv").exists()
    capsys.readouterr()
    assert main(["info", str(tmp_path / "part")]) == 0
    said = capsys.readouterr().out
    assert (
        "an interrupted score, refine-defocus or refine-poses" in said and "scores_0 60/60" in said
    )
    reads = _Reads(monkeypatch)
    assert main([*command, str(tmp_path / "part")]) == 0
    assert 0 < reads.images == whole_reads.images - stopped_reads.images
    assert not (tmp_path / "part" / "checkpoints").exists()
    whole = np.genfromtxt(tmp_path / "whole" / "particle_scores.csv", delimiter=",", names=True)
    part = np.genfromtxt(tmp_path / "part" / "particle_scores.csv", delimiter=",", names=True)
    for name in whole.dtype.names:
        if name != "half":
            np.testing.assert_allclose(part[name], whole[name], rtol=1e-6, atol=1e-9)
