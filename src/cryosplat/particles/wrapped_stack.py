"""A stack made from another: the part of the stack interface a wrapper passes through.

Stacks are read through the interface of :class:`cryosplat.io.mrc.MRCStack` (``path``, ``box``,
``n_images``, ``pixel_size_angstrom``, ``len()``, ``read(indices)``, ``release()``). A stack that
reads another one's images differently (Fourier-cropped,
:class:`~cryosplat.particles.downsample.ResampledStack`; held in memory,
:class:`~cryosplat.particles.preloaded.PreloadedStack`) keeps that stack's file and count.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["WrappedStack"]


class WrappedStack:
    """Base of a stack that reads ``self.stack``'s images: its ``path`` and count are that
    stack's; :meth:`release` releases it. Subclasses set ``stack``, ``box``, ``n_images`` and
    ``pixel_size_angstrom`` and define ``read``."""

    stack: object
    n_images: int

    @property
    def path(self) -> Path:
        return self.stack.path

    def __len__(self) -> int:
        return self.n_images

    def release(self) -> None:
        """Release the wrapped stack's memory map (its pages are read again when next needed)."""
        self.stack.release()
