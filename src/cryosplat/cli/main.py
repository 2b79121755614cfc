"""Entry point of the ``cryosplat`` command: dispatches to one module per command.

Each command module in :mod:`cryosplat.cli` defines ``add_arguments(parser)`` and ``run(args) -> int``
and a one-line ``HELP``. Errors of the user's input (:class:`cryosplat.core.errors.CryosplatError`) are
printed as one line and exit with status 2; an interrupt exits with 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from cryosplat import __version__
from cryosplat.core.errors import CryosplatError

COMMANDS = ("info", "project", "simulate", "reconstruct", "demo")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryosplat",
        description="Cryo-EM reconstruction with orthogonal-projection Gaussian splatting.",
    )
    parser.add_argument("--version", action="version", version=f"cryosplat {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug-level log messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"cryosplat.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"cryosplat.cli.{name}":
                continue
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        return int(args._run(args) or 0)
    except CryosplatError as exc:
        if not getattr(exc, "reported_elsewhere", False):  # another rank of the job printed it
            print(f"cryosplat {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        sys.stderr.close()
        return 1
    except KeyboardInterrupt:
        print(f"cryosplat {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
