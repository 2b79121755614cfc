"""Writing an MRC particle stack batch by batch, so memory does not grow with the image count."""

from __future__ import annotations

import math
import os
from pathlib import Path

import mrcfile
import numpy as np

from cryosplat.io.mrc import creator_label

__all__ = ["StreamingStackWriter"]


class StreamingStackWriter:
    """Writes one float32 MRC stack of a known number of images, batch by batch.

    The file is created at full size (sparse) with its header, each batch is written at its offset
    and dropped, and the header statistics are filled from running sums on :meth:`close`. The file
    appears under its final name only when complete.

    Parameters
    ----------
    path : Path
    n_images, box : int
    pixel_size_angstrom : float
    """

    def __init__(self, path: Path, n_images: int, box: int, pixel_size_angstrom: float) -> None:
        self.path = Path(path)
        self.n_images, self.box = int(n_images), int(box)
        self._tmp = self.path.with_name(f".{self.path.name}.part")
        with mrcfile.new_mmap(
            self._tmp, shape=(self.n_images, box, box), mrc_mode=2, overwrite=True
        ) as m:
            m.set_image_stack()
            m.voxel_size = float(pixel_size_angstrom)
            self._offset = int(m.header.nbytes) + int(m.header.nsymbt)
        self._fh = open(self._tmp, "r+b")  # closed by close() or abort()
        self.written = 0
        self._min, self._max, self._sum, self._sumsq = math.inf, -math.inf, 0.0, 0.0

    def write(self, images: np.ndarray) -> None:
        """Append images (B, D, D) after those already written."""
        data = np.ascontiguousarray(images, dtype="<f4")
        if data.ndim != 3 or data.shape[1:] != (self.box, self.box):
            raise ValueError(
                f"images must have shape (B, {self.box}, {self.box}), got {data.shape}"
            )
        if self.written + len(data) > self.n_images:
            raise ValueError(f"{self.path}: more than {self.n_images} images written")
        self._fh.seek(self._offset + self.written * self.box * self.box * 4)
        self._fh.write(memoryview(data.reshape(-1)))
        self.written += len(data)
        if data.size:
            self._min = min(self._min, float(data.min()))
            self._max = max(self._max, float(data.max()))
            self._sum += float(data.sum(dtype=np.float64))
            self._sumsq += float(np.square(data, dtype=np.float64).sum())

    def abort(self) -> None:
        """Close and delete the unfinished file."""
        self._fh.close()
        if self._tmp.exists():
            os.unlink(self._tmp)

    def close(self) -> None:
        """Check the count, write the header statistics and move the file into place."""
        self._fh.close()
        if self.written != self.n_images:
            os.unlink(self._tmp)
            raise ValueError(f"{self.path}: {self.written} of {self.n_images} images written")
        count = self.n_images * self.box * self.box
        mean = self._sum / count
        with mrcfile.mmap(self._tmp, mode="r+") as m:
            m.header.dmin, m.header.dmax, m.header.dmean = self._min, self._max, mean
            m.header.rms = math.sqrt(max(self._sumsq / count - mean * mean, 0.0))
            m.header.label[0] = creator_label()
        os.replace(self._tmp, self.path)
