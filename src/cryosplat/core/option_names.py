"""A check's name of a reading as the command-line word that asks for it (``cryosplat amend``),
so that a warning's words are what to type."""

from __future__ import annotations

import re

__all__ = ["option_name"]


def option_name(reading: str) -> str:
    """``shifts' x and y swapped`` is ``shifts-x-and-y-swapped``, ``the angle negated and U and V
    swapped`` is ``angle-negated-and-u-and-v-swapped``: lower case, the word "the" and the
    apostrophes dropped, every other run of signs a hyphen."""
    words = re.sub(r"\bthe\b", " ", reading.lower().replace("'", ""))
    return re.sub(r"[^a-z0-9]+", "-", words).strip("-")
