"""Bad input gives exit code 2 and one message naming the file, column or row; never a traceback."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys

import mrcfile
import numpy as np
import pytest

from cryosplat.cli.main import main
from cryosplat.core.rotations import random_rotations
from cryosplat.io.mrc import write_stack
from cryosplat.io.star import write_star


def _run_info(capsys, *args):
    code = main(["info", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.err


def _star(path, **columns):
    write_star(
        path,
        {
            "optics": {
                "rlnOpticsGroup": [1],
                "rlnImagePixelSize": [2.0],
                "rlnImageSize": [16],
                "rlnVoltage": [300.0],
                "rlnSphericalAberration": [2.7],
                "rlnAmplitudeContrast": [0.1],
            },
            "particles": columns,
        },
    )
    return path


def test_missing_stack(tmp_path, capsys):
    p = _star(tmp_path / "p.star", rlnImageName=["1@nothere.mrcs"])
    code, err = _run_info(capsys, p)
    assert code == 2
    assert (
        "stack 'nothere.mrcs' not found; tried: " in err and str(tmp_path / "nothere.mrcs") in err
    )


def test_truncated_stack(tmp_path, capsys, small_stack):
    stack, _ = small_stack
    data = stack.read_bytes()
    stack.write_bytes(data[: len(data) - 16 * 16 * 4 - 10])
    p = _star(tmp_path / "p.star", rlnImageName=["1@stack.mrcs"])
    code, err = _run_info(capsys, p)
    assert code == 2 and "stack.mrcs: truncated: header says 6 images" in err
    assert "(4 whole images)" in err


def test_index_beyond_stack(tmp_path, capsys, small_stack):
    p = _star(tmp_path / "p.star", rlnImageName=["1@stack.mrcs", "9@stack.mrcs"])
    code, err = _run_info(capsys, p)
    assert code == 2 and "row 2 refers to image 9 of" in err and "holds only 6 images" in err


def test_missing_image_name_column(tmp_path, capsys):
    p = _star(tmp_path / "p.star", rlnDefocusU=[1e4])
    code, err = _run_info(capsys, p)
    assert code == 2 and "required column _rlnImageName is missing" in err


def test_missing_defocus_u_with_other_ctf_columns(tmp_path, capsys, small_stack):
    p = _star(
        tmp_path / "p.star", rlnImageName=["1@stack.mrcs"], rlnDefocusV=[1e4], rlnDefocusAngle=[0.0]
    )
    code, err = _run_info(capsys, p)
    assert code == 2
    assert "required column _rlnDefocusU is missing (the file has CTF columns rlnDefocusV" in err


def test_poses_length_vs_stack(tmp_path, capsys, small_stack):
    stack, _ = small_stack
    poses = tmp_path / "poses.pkl"
    with open(poses, "wb") as fh:
        pickle.dump((random_rotations(4, 0), np.zeros((4, 2))), fh)
    code, err = _run_info(capsys, stack, "--poses", poses)
    assert code == 2 and "poses.pkl: 4 poses but the stack" in err and "has 6 images" in err


def test_non_square_images(tmp_path, capsys):
    path = tmp_path / "rect.mrcs"
    with mrcfile.new(path) as m:
        m.set_data(np.zeros((2, 8, 10), dtype=np.float32))
        m.set_image_stack()
        m.voxel_size = 2.0
    p = _star(tmp_path / "p.star", rlnImageName=["1@rect.mrcs"])
    code, err = _run_info(capsys, p)
    assert code == 2 and "images are 10x8; cryosplat needs square images" in err


def test_images_of_another_size_than_their_group_declares_are_counted(
    tmp_path, capsys, small_stack
):
    write_stack(tmp_path / "big.mrcs", np.zeros((3, 24, 24), dtype=np.float32), 2.0)
    names = ["1@stack.mrcs", "2@stack.mrcs", "1@big.mrcs", "2@big.mrcs", "3@big.mrcs"]
    p = _star(tmp_path / "p.star", rlnImageName=names)
    code, err = _run_info(capsys, p)
    assert code == 2 and "rlnImageSize 16 for opticsGroup1 but 3 of its 5 images" in err
    assert "are 24x24 (e.g." in err and "big.mrcs" in err and "a group of their own" in err


def test_subtomograms_are_named_not_read_as_images(tmp_path, capsys):
    """RELION 4's subtomograms (3-D images) would be read as their first section: refused."""
    with mrcfile.new(tmp_path / "sub.mrc") as m:
        m.set_data(np.zeros((16, 16, 16), dtype=np.float32))
        m.voxel_size = 2.0
    p = _star(tmp_path / "p.star", rlnImageName=["sub.mrc"])
    code, err = _run_info(capsys, p)
    assert code == 2 and "row 1: 'sub.mrc' has no image number, so it is the whole file" in err
    assert "holds 16 sections: a 3-D volume" in err
    write_star(
        tmp_path / "d.star",
        {
            "optics": {
                "rlnOpticsGroup": [1],
                "rlnImagePixelSize": [2.0],
                "rlnImageSize": [16],
                "rlnImageDimensionality": [3],
                "rlnVoltage": [300.0],
                "rlnSphericalAberration": [2.7],
                "rlnAmplitudeContrast": [0.1],
            },
            "particles": {"rlnImageName": ["sub.mrc"]},
        },
    )
    code, err = _run_info(capsys, tmp_path / "d.star")
    assert code == 2 and "column rlnImageDimensionality, row 1: 3-D images" in err


def test_nan_in_metadata(tmp_path, capsys, small_stack):
    p = _star(
        tmp_path / "p.star",
        rlnImageName=["1@stack.mrcs", "2@stack.mrcs"],
        rlnAngleRot=[0.0, 1.0],
        rlnAngleTilt=["10.0", "nan"],
        rlnAnglePsi=[0.0, 0.0],
    )
    code, err = _run_info(capsys, p)
    assert code == 2 and "column rlnAngleTilt, row 2: value 'nan' is NaN or infinite" in err


def test_inconsistent_pixel_sizes_reported(tmp_path, capsys):
    write_stack(tmp_path / "s.mrcs", np.zeros((2, 16, 16)), 2.5)
    p = _star(tmp_path / "p.star", rlnImageName=["1@s.mrcs", "2@s.mrcs"])
    assert main(["info", str(p)]) == 0
    out = capsys.readouterr().out
    assert "note: pixel size: the header of" in out
    assert "says 2.5 Å but the metadata says 2 Å; using the metadata's 2 Å" in out


def test_not_a_star_file(tmp_path, capsys):
    p = tmp_path / "p.star"
    p.write_text("hello world\n")
    code, err = _run_info(capsys, p)
    assert code == 2 and "line 1: 'hello' before any data_ block" in err


def test_console_script_prints_no_traceback(tmp_path):
    p = _star(tmp_path / "p.star", rlnImageName=["1@nothere.mrcs"])
    exe = shutil.which("cryosplat")
    cmd = [exe] if exe else [sys.executable, "-m", "cryosplat.cli.main"]
    res = subprocess.run([*cmd, "info", str(p)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr and res.stderr.count("\n") == 1
    assert res.stderr.startswith("cryosplat info: error: ") and "nothere.mrcs" in res.stderr


@pytest.mark.parametrize("bad", ["abc", "1e400"])
def test_bad_number_in_optics(tmp_path, capsys, bad):
    write_star(
        tmp_path / "p.star",
        {
            "optics": {"rlnOpticsGroup": [1], "rlnImagePixelSize": [bad]},
            "particles": {"rlnImageName": ["1@s.mrcs"]},
        },
    )
    code, err = _run_info(capsys, tmp_path / "p.star")
    assert code == 2 and "data_optics: column rlnImagePixelSize, row 1:" in err


def test_a_file_that_is_no_map_is_named_without_reading_what_its_header_claims(
    tmp_path, capsys, monkeypatch
):
    """A Gaussian model given where a map is asked: one line naming it, and mrcfile is not asked
    to read it (it read the extended header the bytes claimed, 1.9 GB, in one request, which
    Python allocated before the file ran out)."""
    import mrcfile as reader

    def refuse(*args, **kwargs):
        raise AssertionError("mrcfile asked to read a file that is no MRC file")

    monkeypatch.setattr(reader, "open", refuse)
    not_a_map = tmp_path / "model.npz"
    np.savez(not_a_map, means=np.ones((200, 3)))  # longer than an MRC header
    short, zeros = tmp_path / "short.mrc", tmp_path / "zeros.mrc"
    short.write_bytes(bytes(10))
    zeros.write_bytes(bytes(2000))  # a header of zeros: no size, no mode of a map
    for path, says in (
        (not_a_map, "model.npz: not an MRC file (its header's mode 625606689, size 67324752"),
        (short, "short.mrc: not an MRC file (10 bytes, under an MRC header's 1,024)"),
        (zeros, "zeros.mrc: not an MRC file (its header's mode 0, size 0 x 0 x 0"),
    ):
        assert main(["fsc", str(path), str(path)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and says in err, err
