"""Which mask the cross-validated resolution is read in: the soft sphere, the automatic mask, or
the user's.

The estimate (:mod:`cryosplat.validation.crossval`) is read in the soft sphere first. Where the
data's own FSC stops early there with the estimate still high
(:data:`~cryosplat.validation.crossval.TIGHTER_MASK_ESTIMATE` at the cut), the solvent's noise may
hide what the data hold: it is read again within the automatic mask (times the sphere), on the
sphere's scale (:func:`~cryosplat.validation.crossval.mask_gain`), with that mask's own FSC noise
(:func:`~cryosplat.validation.crossval.tighter_mask_noise_scale`) and the lower bound past that
mask's cut; the finer of the two is kept (module docstring of
:mod:`~cryosplat.validation.crossval`, *A tighter mask*). A mask the user gives
(:mod:`cryosplat.validation.user_mask`) is always read, within it times the sphere, with its own
FSC noise and the lower bound past its own cut, and kept: on its own scale (the map's FSC with the
truth within that mask), not the sphere's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from cryosplat.validation.crossval import (
    TIGHTER_MASK_ESTIMATE,
    CrossValidatedFSC,
    DataSpectra,
    cross_validate,
    tighter_mask_noise_scale,
)

__all__ = [
    "SPHERE_TEXT",
    "AUTOMATIC_TEXT",
    "DataUnderMasks",
    "MaskedReading",
    "read_in_masks",
    "user_mask_text",
]

SPHERE_TEXT = "soft spherical mask"
AUTOMATIC_TEXT = "automatic mask (the data stopped early in the sphere)"


def user_mask_text(name: str) -> str:
    return f"the given mask {name} (times the soft sphere)"


class DataUnderMasks:
    """The data half maps' spectra under the sphere and under the sphere times the automatic
    mask, each made when first asked for and kept for the next pair of halves.

    Parameters
    ----------
    data : [D_A, D_B], (D, D, D) tensors
        The half sets' direct inversions.
    sphere, automatic : (D, D, D) tensors
        The soft spherical mask and the automatic mask, on the data's device.
    sampled_share : array (D//2 + 1,), optional
        Per shell, the share of its frequencies the data sample
        (:class:`~cryosplat.validation.shell_terms.DataSpectra`).
    user : (D, D, D) tensor, optional
        A mask the user gave (:mod:`cryosplat.validation.user_mask`), on the data's device: read
        as ``"user"``, times the sphere.
    user_name : str
        Where that mask came from, for the reading's description.
    """

    def __init__(
        self,
        data: list[torch.Tensor],
        sphere: torch.Tensor,
        automatic: torch.Tensor,
        sampled_share: np.ndarray | None = None,
        user: torch.Tensor | None = None,
        user_name: str = "",
    ) -> None:
        self._data, self._masks = data, {"sphere": sphere, "tight": sphere * automatic}
        if user is not None:
            self._masks["user"] = sphere * user
        self.user_name = user_name
        self._sampled_share = sampled_share
        self._made: dict[str, DataSpectra] = {}
        self._noise: dict[str, float] = {}

    @property
    def has_user_mask(self) -> bool:
        return "user" in self._masks

    def noise_scale(self, name: str) -> float:
        """How much more a shell's FSC spreads under the mask ``name`` (``"tight"``, ``"user"``)
        than under the sphere; made once."""
        if name not in self._noise:
            masks = self._masks
            self._noise[name] = tighter_mask_noise_scale(masks["sphere"].cpu(), masks[name].cpu())
        return self._noise[name]

    def __getitem__(self, name: str) -> DataSpectra:
        if name not in self._made:
            self._made[name] = DataSpectra(
                *self._data, self._masks[name], sampled_share=self._sampled_share
            )
        return self._made[name]


@dataclass
class MaskedReading:
    """The cross-validated FSC kept (``chosen``, read in ``mask``), the sphere's, and the
    automatic mask's where it was read (None otherwise); a user's mask's reading is ``chosen``."""

    chosen: CrossValidatedFSC
    mask: str
    sphere: CrossValidatedFSC
    tight: CrossValidatedFSC | None = None
    noise_scale: float = 1.0

    @property
    def in_automatic_mask(self) -> bool:
        return self.chosen is self.tight

    @property
    def beyond_sphere(self) -> bool:
        """The reading kept is not the sphere's (the automatic mask's or the user's)."""
        return self.chosen is not self.sphere


def read_in_masks(
    halves: Sequence[torch.Tensor],
    data: DataUnderMasks,
    pixel_size_angstrom: float,
    n_bootstrap: int = 0,
) -> MaskedReading:
    """The cross-validated FSC of two halves (tensors on the data's device) in the soft sphere,
    or within the automatic mask where the data stop early in the sphere with the estimate still
    high and it is finer there, or within the user's mask where ``data`` holds one (module
    docstring)."""
    sphere = cross_validate(data["sphere"], *halves, pixel_size_angstrom, n_bootstrap)
    if data.has_user_mask:
        user, noise = _read_within("user", halves, data, pixel_size_angstrom, n_bootstrap)
        return MaskedReading(user, user_mask_text(data.user_name), sphere, None, noise)
    cut = sphere.estimate_at_cut
    if cut is None or cut < TIGHTER_MASK_ESTIMATE:
        return MaskedReading(sphere, SPHERE_TEXT, sphere)
    tight, noise = _read_within("tight", halves, data, pixel_size_angstrom, n_bootstrap, sphere)
    if tight.resolution_angstrom >= sphere.resolution_angstrom:
        return MaskedReading(sphere, SPHERE_TEXT, sphere, tight, noise)
    return MaskedReading(tight, AUTOMATIC_TEXT, sphere, tight, noise)


def _read_within(
    name: str,
    halves: Sequence[torch.Tensor],
    data: DataUnderMasks,
    pixel_size_angstrom: float,
    n_bootstrap: int,
    reference: CrossValidatedFSC | None = None,
) -> tuple[CrossValidatedFSC, float]:
    """The cross-validated FSC within a mask tighter than the sphere (``"tight"``, ``"user"``):
    with that mask's own FSC noise and the lower bound past its own cut (no wider pool), carried
    to ``reference``'s scale where one is given (the automatic mask's gain over the sphere's);
    and that noise scale."""
    noise = data.noise_scale(name)
    fsc = cross_validate(
        data[name],
        *halves,
        pixel_size_angstrom,
        n_bootstrap,
        reference=reference,
        noise_scale=noise,
        pool_past_cut=False,
    )
    return fsc, noise
