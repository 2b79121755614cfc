"""The options the one-pass commands (``score``, ``refine-defocus``, ``refine-poses``) share."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from cryosplat.cli.pass_options import check_metadata_written, range_type, reconstruct_again
from cryosplat.core.errors import InputError


def _args(particles: str, **given) -> argparse.Namespace:
    fields = {"poses": None, "ctf": None, "datadir": None, **given}
    return argparse.Namespace(particles=particles, **fields)


def test_a_search_range_is_a_finite_number_zero_only_where_it_keeps_the_values():
    keeps, searches = range_type("a number of Å", True), range_type("a number of Å", False)
    assert keeps("2.5") == 2.5 and keeps("0") == 0.0 and searches("300") == 300.0
    with pytest.raises(argparse.ArgumentTypeError, match="more than 0, got 0"):
        searches("0")
    for bad in ("-1", "inf", "nan"):
        with pytest.raises(argparse.ArgumentTypeError, match=f"0 or more, got {bad}"):
            keeps(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="expected a number of Å, got 'wide'"):
        keeps("wide")


def test_new_values_go_into_a_star_or_cs_file_or_the_cryodrgn_pickle_given():
    check_metadata_written(_args("p.star"), "ctf", "defocus values")
    check_metadata_written(_args("p.CS"), "poses", "poses")
    check_metadata_written(_args("p.mrcs", ctf="ctf.pkl"), "ctf", "defocus values")
    with pytest.raises(
        InputError, match=r"p.mrcs: the new poses .* cryoDRGN's poses.pkl \(--poses"
    ):
        check_metadata_written(_args("p.mrcs", ctf="ctf.pkl"), "poses", "poses")


def test_reconstructing_again_reads_the_new_metadata_or_the_new_pickle(tmp_path):
    star = str(tmp_path / "p.star")
    again = reconstruct_again(_args(star), tmp_path / "out" / "refined.star", "poses")
    assert (
        again == f"cryosplat reconstruct {tmp_path / 'out' / 'refined.star'} --datadir {tmp_path}"
    )
    given = _args(star, datadir="/data/project")
    assert reconstruct_again(given, Path("r.star"), "ctf").endswith("--datadir /data/project")
    pickles = _args("p.mrcs", poses="poses.pkl", ctf="ctf.pkl")
    assert (
        reconstruct_again(pickles, Path("new_ctf.pkl"), "ctf")
        == "cryosplat reconstruct p.mrcs --poses poses.pkl --ctf new_ctf.pkl"
    )
    assert (
        reconstruct_again(pickles, Path("new_poses.pkl"), "poses")
        == "cryosplat reconstruct p.mrcs --poses new_poses.pkl --ctf ctf.pkl"
    )
