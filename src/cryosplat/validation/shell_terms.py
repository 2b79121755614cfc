"""Sums over each shell's Fourier samples of masked maps' spectrum products, in random groups.

The raw material of the cross-validated FSC (:mod:`cryosplat.validation.crossval`): for the two
data half maps ``D_A``, ``D_B`` and two half models ``M_A``, ``M_B`` under one mask, the sums per
shell of ``Re(x · conj y)`` for the four pairs it compares and of ``|x|²`` for each map. The real
FFT's half grid holds each Friedel pair once; a multiplicity (2, or 1 on the ``kx = 0`` and
Nyquist planes) makes its sums those of the full grid, so the curves equal
:func:`cryosplat.validation.fsc.fsc`. For a bootstrap the samples of each shell are dealt at
random into ``blocks`` groups whose sums are kept: a resample draws Poisson weights for the
groups, so it costs ``O(shells × blocks)`` instead of a pass over the map.

The data half maps do not change while a fit goes on, so their spectra and their three sums are
made once (:class:`DataSpectra`) and each pair of half models adds its own
(:meth:`DataSpectra.shell_terms`): the check after every stage and the report's estimates in one
mask transform two maps, not four (box 256: 2.5 → 1.3 s a check; ``benchmarks/RESULTS.md``,
round 2, session 24).
"""

from __future__ import annotations

import numpy as np
import torch

from cryosplat.validation.fsc import cross_power, half_grid_shells, power

__all__ = ["DataSpectra", "ShellTerms", "pool_shells", "BOOTSTRAP_BLOCKS"]

BOOTSTRAP_BLOCKS = 64  # random groups of Fourier samples per shell, resampled by the bootstrap


def pool_shells(values: np.ndarray, pool: int) -> np.ndarray:
    """Sums of ``values`` (shells,) over each shell's ``±pool`` neighbours (shell 0 kept alone)."""
    out = values.astype(np.float64).copy()
    n = values.shape[0]
    if pool <= 0 or n < 2:
        return out
    cumulative = np.concatenate([[0.0], np.cumsum(out[1:])])  # sums of shells 1..k
    k = np.arange(1, n)
    out[1:] = cumulative[np.minimum(n - 1, k + pool)] - cumulative[np.maximum(1, k - pool) - 1]
    return out


def _masked_spectrum(volume, mask) -> np.ndarray:
    """Flat real FFT of ``volume · mask``, computed where ``volume`` lives (CPU or GPU)."""
    volume = torch.as_tensor(volume)
    mask = torch.as_tensor(mask, device=volume.device, dtype=volume.dtype)
    return torch.fft.rfftn(volume * mask).reshape(-1).cpu().numpy()


class ShellTerms:
    """The eight sums per shell and group of :data:`NAMES` (``sums[name]``: (shells, blocks)).

    ``data``, ``a``, ``b``, ``models``: ``Re(x · conj y)`` of ``(D_A, D_B)``, ``(M_A, D_B)``,
    ``(M_B, D_A)``, ``(M_A, M_B)``; ``da``, ``db``, ``ma``, ``mb``: each map's power.
    """

    NAMES = ("data", "a", "b", "models", "da", "db", "ma", "mb")

    def __init__(self, sums: dict[str, np.ndarray]) -> None:
        self.sums = sums
        self.n_shells, self.blocks = sums["data"].shape

    # Each curve's cross sum and the two powers it is normalised by.
    PAIRS = (
        ("data", ("da", "db")),
        ("a", ("ma", "db")),
        ("b", ("mb", "da")),
        ("models", ("ma", "mb")),
    )

    def curves(
        self, weights: np.ndarray | None = None, pool: int = 0, count: int = 4
    ) -> list[np.ndarray]:
        """``FSC(D_A, D_B)``, ``FSC(M_A, D_B)``, ``FSC(M_B, D_A)``, ``FSC(M_A, M_B)`` (the first
        ``count`` of them); ``weights`` (shells, blocks); ``pool``: sums over ``±pool`` shells
        (shell 0 alone)."""
        pairs = self.PAIRS[:count]
        names = {name for cross, (p, q) in pairs for name in (cross, p, q)}
        if weights is None:
            total = {k: self.sums[k].sum(axis=1) for k in names}
        else:
            total = {k: (self.sums[k] * weights).sum(axis=1) for k in names}
        if pool:
            total = {k: pool_shells(v, pool) for k, v in total.items()}
        out = []
        for cross, (p, q) in pairs:
            denom = np.sqrt(total[p] * total[q])
            out.append(np.where(denom > 0, total[cross] / np.maximum(denom, 1e-300), 0.0))
        return out


class DataSpectra:
    """The two data half maps under one mask: their spectra and sums, made once.

    Parameters
    ----------
    data_a, data_b : (D, D, D) arrays or tensors
        Direct Fourier inversions of the two half sets (tensors: transformed on their device).
    mask : (D, D, D)
        Soft mask applied to these and to every pair of half models compared with them.
    blocks : int
        Random groups of each shell's samples, for the bootstrap.
    seed : int
        Seed of the groups.
    sampled_share : array (D//2 + 1,), optional
        Per shell, the share of its frequencies the data sample at all
        (:mod:`cryosplat.validation.sampling`); the estimates made with these data are scaled by
        its square root (:func:`cryosplat.validation.crossval.cross_validate`). None: all.
    """

    def __init__(
        self,
        data_a,
        data_b,
        mask,
        blocks: int = BOOTSTRAP_BLOCKS,
        seed: int = 0,
        sampled_share: np.ndarray | None = None,
    ):
        if blocks < 1:
            raise ValueError(f"blocks must be positive, got {blocks}")
        box = data_a.shape[0]
        self.box, self.mask, self.blocks, self.seed = box, mask, blocks, seed
        self.n_shells = box // 2 + 1
        if sampled_share is not None:
            sampled_share = np.asarray(sampled_share, dtype=np.float64)
            if (
                sampled_share.shape != (self.n_shells,)
                or not ((sampled_share >= 0) & (sampled_share <= 1)).all()
            ):
                raise ValueError(
                    f"sampled_share must hold {self.n_shells} shares in [0, 1] (box {box}), got "
                    f"shape {sampled_share.shape}"
                )
        self.sampled_share = sampled_share
        shell_grid, multiplicity_grid = half_grid_shells(box)
        shells = shell_grid.numpy().reshape(-1)
        self._keep = shells <= box // 2
        shells = shells[self._keep]
        # 1 or 2: exact in single precision (the sums are made in double).
        self._multiplicity = multiplicity_grid.numpy().reshape(-1)[self._keep].astype(np.float32)
        group = np.random.default_rng(seed).integers(0, blocks, shells.size)
        self._index = shells * blocks + group
        self._a, self._b = (_masked_spectrum(d, mask)[self._keep] for d in (data_a, data_b))
        self._data_sums = {
            "data": self._sums(cross_power(self._a, self._b)),
            "da": self._sums(power(self._a)),
            "db": self._sums(power(self._b)),
        }

    def _sums(self, values: np.ndarray) -> np.ndarray:
        size = self.n_shells * self.blocks
        sums = np.bincount(self._index, weights=values * self._multiplicity, minlength=size)
        return sums.reshape(self.n_shells, self.blocks)

    def shell_terms(
        self, model_a: np.ndarray | torch.Tensor, model_b: np.ndarray | torch.Tensor
    ) -> ShellTerms:
        """The sums of two half models ``(D, D, D)`` (on the data's device) with these data."""
        if model_a.shape[0] != self.box or model_b.shape[0] != self.box:
            raise ValueError(
                f"half models of box {model_a.shape[0]} and {model_b.shape[0]}, data of box "
                f"{self.box}"
            )
        ma, mb = (_masked_spectrum(m, self.mask)[self._keep] for m in (model_a, model_b))
        model_sums = {
            "a": self._sums(cross_power(ma, self._b)),
            "b": self._sums(cross_power(mb, self._a)),
            "models": self._sums(cross_power(ma, mb)),
            "ma": self._sums(power(ma)),
            "mb": self._sums(power(mb)),
        }
        sums = {**self._data_sums, **model_sums}
        return ShellTerms({name: sums[name] for name in ShellTerms.NAMES})
