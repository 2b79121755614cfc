"""``--helical-twist``, ``--helical-rise`` and ``--helical-asu``: helical symmetry on the command line."""

from __future__ import annotations

import argparse

from cryosplat.core.errors import InputError
from cryosplat.core.helical import HelicalSymmetry

NAMES = ("--helical-twist", "--helical-rise", "--helical-asu")


def add_helical_arguments(p: argparse.ArgumentParser) -> None:
    """The three options, given together (RELION's ``--helical_twist``, ``--helical_rise`` and
    ``--nr_helical_asu``)."""
    group = p.add_argument_group(
        "helical symmetry",
        "a helix along the map's z axis, imposed as relion_reconstruct imposes it: each half "
        "set's statistics summed over N asymmetric units (give all three, as RELION's "
        "--helical_twist, --helical_rise and --nr_helical_asu)",
    )
    group.add_argument(
        "--helical-twist",
        type=float,
        metavar="DEGREES",
        help="turn about z from one asymmetric unit to the next (positive: right-handed)",
    )
    group.add_argument(
        "--helical-rise",
        type=float,
        metavar="ANGSTROM",
        help="move along z from one asymmetric unit to the next, Å",
    )
    group.add_argument(
        "--helical-asu",
        type=int,
        metavar="N",
        help="asymmetric units summed (2 or more; a few that lie well within the box)",
    )


def helical_from_args(args: argparse.Namespace) -> HelicalSymmetry | None:
    """The helix the options give, or None where none is given; an :class:`InputError` where
    only some are, or a value is bad."""
    values = (args.helical_twist, args.helical_rise, args.helical_asu)
    if all(v is None for v in values):
        return None
    missing = [name for name, v in zip(NAMES, values, strict=True) if v is None]
    if missing:
        raise InputError(
            f"helical symmetry needs {', '.join(NAMES)} together; {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} missing"
        )
    helical = HelicalSymmetry(*values)
    helical.validate()
    return helical
