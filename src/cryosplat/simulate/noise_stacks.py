"""Blob-and-noise particle sets in many stacks, for input/output, memory and speed checks at scale.

Each image holds the projection of one centred spherical Gaussian blob (s.d. D/10 pixels; its
projection is the same 2D Gaussian in every view, moved by minus the particle's origin, without a
CTF) in white Gaussian noise of s.d. 1 (SNR ~0.1 over the blob): enough for a reconstruction to run
end to end, too little structure to measure resolution. What these sets measure is reading, the
statistics pass, memory and time. Metadata (views, shifts, CTF, half labels) are drawn
by :func:`cryosplat.simulate.simulation.draw_metadata`, so the CTF and pose arrays are realistic. The
stacks are written directly (no projection; every stack of the same length gets the header of the
first, with its density statistics), so a set of 10⁵ particles in thousands of stacks takes seconds
to make. With ``ice_sd`` each image also holds white noise seen through its own CTF, as real images
hold the ice (and carbon) imaged through it: its Thon rings, astigmatic where the metadata are
(``astigmatism_max_angstrom``), for the checks that read them
(:mod:`cryosplat.particles.thon_rings`, :mod:`cryosplat.particles.astigmatism_check`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from cryosplat.core.ctf import CTFParams, compute_ctf
from cryosplat.io.mrc import STACK_MODES, write_stack
from cryosplat.io.star import write_relion31_particles
from cryosplat.simulate.simulation import SimulationConfig, draw_metadata

__all__ = ["NoiseStacksConfig", "write_noise_particles"]


@dataclass
class NoiseStacksConfig:
    """A blob-and-noise particle set.

    Attributes
    ----------
    n_particles : int
    box : int
        Image size D (pixels).
    pixel_size_angstrom : float
    per_stack : int
        Images per ``.mrcs`` file (RELION writes one stack per micrograph: ~10–500).
    mode : str
        Stack data type (:data:`cryosplat.io.mrc.STACK_MODES`); ``int16`` images are scaled ×100.
    seed : int
    ice_sd : float
        S.d. of the white noise seen through each particle's CTF before it is added (its
        variance after the CTF about half of this squared); 0: none (no rings).
    astigmatism_max_angstrom : float
        The metadata's ``|U − V|``, uniform in ``[0, this]`` Å at a uniform random angle.
    """

    n_particles: int
    box: int
    pixel_size_angstrom: float = 2.0
    per_stack: int = 100
    mode: str = "float32"
    seed: int = 0
    ice_sd: float = 0.0
    astigmatism_max_angstrom: float = 0.0

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first bad setting."""
        for name in ("n_particles", "box", "per_stack"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if not self.pixel_size_angstrom > 0:
            raise ValueError(f"pixel_size_angstrom must be positive: {self.pixel_size_angstrom}")
        for name in ("ice_sd", "astigmatism_max_angstrom"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)}")
        if self.mode not in STACK_MODES:
            raise ValueError(f"mode must be one of {', '.join(STACK_MODES)}, got '{self.mode}'")


def write_noise_particles(folder: str | Path, config: NoiseStacksConfig) -> Path:
    """Write ``folder/particles.star`` naming ``ceil(N / per_stack)`` noise stacks ``stacks/s_*.mrcs``.

    Returns
    -------
    Path of the STAR file (RELION 3.1 layout, image names relative to its folder).
    """
    config.validate()
    folder = Path(folder)
    (folder / "stacks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(config.seed)
    sim = SimulationConfig(
        n_particles=config.n_particles,
        box=config.box,
        pixel_size_angstrom=config.pixel_size_angstrom,
        shift_sd_angstrom=2.0,
        seed=config.seed,
        astigmatism_max_angstrom=config.astigmatism_max_angstrom,
    )
    meta = draw_metadata(sim, rng)
    gain = 100.0 if config.mode == "int16" else 1.0
    d = config.box
    grid = np.arange(d, dtype=np.float32) - d // 2
    sigma = d / 10.0
    names: list[str] = []
    headers: dict[int, bytes] = {}  # header of stacks of this many images
    dtype_code = np.dtype(STACK_MODES[config.mode][0]).str[1:]
    for s, start in enumerate(range(0, config.n_particles, config.per_stack)):
        count = min(config.per_stack, config.n_particles - start)
        origin = meta.shifts_angstrom[start : start + count] / config.pixel_size_angstrom
        dx = grid[None, None, :] + origin[:, 0, None, None].astype(np.float32)
        dy = grid[None, :, None] + origin[:, 1, None, None].astype(np.float32)
        blob = np.exp(-(dx**2 + dy**2) / (2.0 * sigma**2))
        noise = rng.standard_normal((count, d, d), dtype=np.float32)
        images = gain * (blob + noise)
        if config.ice_sd > 0:
            rows = slice(start, start + count)
            images += gain * config.ice_sd * _through_ctf(rng, meta.ctf, rows, config)
        name = f"stacks/s_{s:06d}.mrcs"
        if count not in headers:
            write_stack(folder / name, images, config.pixel_size_angstrom, mode=config.mode)
            headers[count] = (folder / name).read_bytes()[:1024]
        else:
            # Same shape: the first such stack's header (its min/max/mean statistics) and the data.
            values = np.rint(images) if config.mode == "int16" else images
            data = values.astype(STACK_MODES[config.mode][0]).astype("<" + dtype_code)
            (folder / name).write_bytes(headers[count] + data.tobytes())
        names += [f"{k + 1:06d}@{name}" for k in range(count)]
    star = folder / "particles.star"
    write_relion31_particles(
        star,
        image_names=names,
        rotations=meta.rotations,
        shifts_angstrom=meta.shifts_angstrom,
        ctf=meta.ctf,
        pixel_size_angstrom=config.pixel_size_angstrom,
        box=config.box,
        random_subset=meta.random_subset,
    )
    return star


def _through_ctf(
    rng: np.random.Generator, ctf: CTFParams, rows: slice, config: NoiseStacksConfig
) -> np.ndarray:
    """White noise of s.d. 1 seen through the CTF of the particles ``rows``: (count, D, D)."""
    given = ctf.as_tensors(dtype=torch.float64)
    names = ("defocus_u_angstrom", "defocus_v_angstrom", "defocus_angle_degrees")
    names += ("voltage_kv", "cs_mm", "amplitude_contrast")
    curve = compute_ctf(config.box, config.pixel_size_angstrom, *(given[n][rows] for n in names))
    count = curve.shape[0]
    white = rng.standard_normal((count, config.box, config.box))
    seen = np.fft.fftshift(np.fft.fft2(white), axes=(1, 2)) * curve.numpy()
    return np.fft.ifft2(np.fft.ifftshift(seen, axes=(1, 2))).real.astype(np.float32)
