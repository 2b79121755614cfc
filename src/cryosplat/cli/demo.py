"""``cryosplat demo``: a real result in a few minutes on a laptop, with no data."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from cryosplat.core.errors import InputError

HELP = (
    "simulate particles of PDB 8ZPM (shipped), reconstruct them and report the resolution "
    "against the known truth"
)


def add_arguments(p: argparse.ArgumentParser) -> None:
    # Defaults are DemoConfig's, filled in by run() (building the parser imports no torch).
    p.add_argument("-o", "--output", help="output folder (default: a new temporary folder)")
    p.add_argument("-n", "--n-particles", type=int, help="default 5000")
    p.add_argument("--box", type=int, help="default 96")
    p.add_argument("--pixel-size", type=float, help="Å (default 1.5)")
    p.add_argument("--snr", type=float, help="default 0.005")
    p.add_argument("--seed", type=int, help="default 0")
    p.add_argument("--device", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument(
        "--threads", type=int, help="CPU threads for PyTorch (default: PyTorch's, one per core)"
    )


def run(args: argparse.Namespace) -> int:
    import torch

    from cryosplat.simulate.demo import DemoConfig, run_demo

    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads must be at least 1, got {args.threads}")
        torch.set_num_threads(args.threads)
    given = {
        "n_particles": args.n_particles,
        "box": args.box,
        "pixel_size_angstrom": args.pixel_size,
        "snr": args.snr,
        "seed": args.seed,
        "device": args.device,
    }
    config = DemoConfig(**{k: v for k, v in given.items() if v is not None})
    out = Path(args.output) if args.output else Path(tempfile.mkdtemp(prefix="cryosplat-demo-"))
    r = run_demo(out, config, show_progress=not args.no_progress)
    print(
        f"demo: {config.n_particles} simulated particles of 8ZPM, box {config.box}, "
        f"{config.pixel_size_angstrom} Å/px, SNR {config.snr}"
    )
    print(f"  map vs truth, FSC 0.5:           {r.resolution_vs_truth_05_angstrom:6.2f} Å")
    print(f"  map vs truth, FSC 0.143:         {r.resolution_vs_truth_0143_angstrom:6.2f} Å")
    print(
        f"  reported resolution (gold std):  {r.half_map_resolution_angstrom:6.2f} Å "
        "(the map's FSC with the truth at 0.5, estimated from the other half's data)"
    )
    print(f"  time: simulate {r.seconds_simulate:.0f} s, reconstruct {r.seconds_reconstruct:.0f} s")
    print(f"  outputs: {out}")
    return 0
