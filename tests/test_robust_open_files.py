"""Issue 16, case 7: the per-image engine keeps open files bounded with one-image stacks.

RELION extraction writes one stack per micrograph; with thousands of them and the usual
``ulimit -n 1024`` an engine that keeps every stack's memory map open dies with "Too many open
files". Here 300 one-image stacks run under a limit of 128 open files (set in a subprocess).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

ONE_IMAGE_STACKS = textwrap.dedent(
    """
    import resource, sys
    from pathlib import Path
    import numpy as np, torch
    from cryosplat.core.ctf import CTFParams
    from cryosplat.core.rotations import random_rotations
    from cryosplat.io.mrc import write_stack
    from cryosplat.io.star import write_relion31_particles
    from cryosplat.particles.read import read_particles
    from cryosplat.reconstruct.run import ReconstructConfig
    from cryosplat.reconstruct.splat.runner import initial_models
    from cryosplat.reconstruct.splat.engine import SplatEngine, SplatEngineConfig

    d, n = Path(sys.argv[1]), 300
    rng = np.random.default_rng(0)
    for i in range(n):
        write_stack(d / f"mic{i:04d}.mrcs", rng.normal(size=(1, 16, 16)).astype(np.float32), 3.0)
    write_relion31_particles(
        d / "p.star", image_names=[f"1@mic{i:04d}.mrcs" for i in range(n)],
        rotations=random_rotations(n, seed=1), shifts_angstrom=np.zeros((n, 2)),
        ctf=CTFParams.create(n, defocus_u_angstrom=rng.uniform(1e4, 2e4, n),
                             defocus_v_angstrom=1.5e4),
        pixel_size_angstrom=3.0, box=16)
    particles = read_particles(d / "p.star")
    resource.setrlimit(resource.RLIMIT_NOFILE, (128, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    models = initial_models(particles, ReconstructConfig(), 10, torch.device("cpu"))
    halves = (np.arange(0, n, 2), np.arange(1, n, 2))
    cfg = SplatEngineConfig(epochs=1, batch_size=50, checkpoint_interval_s=1e9)
    SplatEngine(particles, halves, models, cfg, d / "s.pt", "cpu").run()
    print("ok", len(particles.stacks))
    """
)


@pytest.mark.slow
def test_7_per_image_engine_keeps_open_files_bounded(tmp_path):
    result = subprocess.run(
        [sys.executable, "-c", ONE_IMAGE_STACKS, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["ok", "300"]
