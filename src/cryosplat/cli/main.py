"""Entry point of the ``cryosplat`` command: dispatches to one module per command.

Each command module in :mod:`cryosplat.cli` (its name the command's, ``_`` for ``-``) defines ``add_arguments(parser)`` and ``run(args) -> int``
and a one-line ``HELP``. Errors of the user's input (:class:`cryosplat.core.errors.CryosplatError`) are
printed as one line and exit with status 2; resource errors (a full or read-only disk, too many open
files, out of memory) as one line saying what to do, with status 1; an interrupt exits with 130,
SIGTERM (a batch scheduler's time limit) with 143 after the same orderly stop
(:class:`cryosplat.core.errors.Terminated`).
"""

from __future__ import annotations

import argparse
import errno
import gc
import importlib
import logging
import os
import signal
import sys
import threading

from cryosplat import __version__
from cryosplat.core.errors import CryosplatError, Terminated

COMMANDS = (
    "info",
    "project",
    "simulate",
    "reconstruct",
    "score",
    "refine-defocus",
    "refine-poses",
    "amend",
    "sharpen",
    "fsc",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cryosplat",
        description="Cryo-EM reconstruction with orthogonal-projection Gaussian splatting.",
    )
    parser.add_argument("--version", action="version", version=f"cryosplat {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug-level log messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module_name = f"cryosplat.cli.{name.replace('-', '_')}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name == module_name:
                continue
            raise
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


_ERRNO_ADVICE = {
    errno.ENOSPC: "no space left on the device; free some space or choose an output folder on "
    "another disk (reconstruct: --resume then continues the run)",
    errno.EDQUOT: "disk quota exceeded; free some space or choose an output folder on another disk",
    errno.EROFS: "the file system is read-only; choose a writable output folder",
    errno.EACCES: "permission denied; choose a folder you can write to (or fix the permissions)",
    errno.EPERM: "operation not permitted; choose a folder you can write to",
    errno.EMFILE: "too many open files; raise the limit (e.g. ulimit -n 65536) and run again",
    errno.ENFILE: "too many open files on the system; close other programs and run again",
}


def resource_message(exc: BaseException) -> str | None:
    """A one-line message saying what to do for a resource error (disk, memory, files), or None."""
    if isinstance(exc, MemoryError) or (
        isinstance(exc, RuntimeError)
        and any(t in str(exc).lower() for t in ("out of memory", "not enough memory"))
    ):
        return (
            "out of memory; use fewer Gaussians (--n-gaussians), a coarser limit "
            "(--max-resolution), a smaller --batch-size or --pad, or a machine with more memory"
        )
    if isinstance(exc, OSError) and exc.errno in _ERRNO_ADVICE:
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{_ERRNO_ADVICE[exc.errno]}{where}"
    return None


def import_torch() -> None:
    """Import PyTorch with the cyclic garbage collector paused, then freeze what exists.

    The import makes a quarter of a million objects that live as long as the process.
    Collections during the import walk them again and again (~0.1 s), and so do the
    interpreter's last collections at exit (~0.3 s): together a quarter of
    ``relion_reconstruct``'s whole time on a small set. Frozen (:func:`gc.freeze`), they are left
    alone; what a command makes afterwards is collected as usual. Nothing is done where PyTorch
    is already imported (``main`` called in a running program).
    """
    if "torch" in sys.modules:
        return
    gc.disable()
    try:
        import torch  # noqa: F401
    finally:
        gc.enable()
    gc.freeze()


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
    previous = _terminate_as_interrupt()
    try:
        import_torch()  # every command computes with it
        return int(args._run(args) or 0)
    except CryosplatError as exc:
        if not getattr(exc, "reported_elsewhere", False):  # another rank of the job printed it
            print(f"cryosplat {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        sys.stderr.close()
        return 1
    except (OSError, MemoryError, RuntimeError) as exc:
        message = resource_message(exc)
        if message is None:
            raise
        print(f"cryosplat {args.command}: error: {message}", file=sys.stderr)
        return 1
    except Terminated:
        print(f"cryosplat {args.command}: terminated (SIGTERM)", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print(f"cryosplat {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def _terminate_as_interrupt():
    """Turn SIGTERM into :class:`Terminated` for this command (the previous handler, to put back;
    None where signals cannot be set: not the main thread)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def run_command() -> None:
    """The ``cryosplat`` program: :func:`main`'s status as the process's. A command stopped by
    SIGTERM or Ctrl-C leaves at once once its logs are flushed: its halves' threads were stopped
    mid-fit, and the interpreter's and PyTorch's teardown could then abort the process ("terminate
    called without an active exception", status 134 for 143: seen once in about forty stopped
    runs under load), as gloo's could after a distributed run
    (:mod:`cryosplat.reconstruct.distributed`). The run folder is marked stopped before."""
    status = main()
    if status in (128 + signal.SIGTERM, 128 + signal.SIGINT):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


if __name__ == "__main__":
    run_command()
