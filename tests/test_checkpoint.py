"""Checkpoints hold tensors and plain types only, and are read with weights_only=True."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from cryosplat.core.errors import InputError
from cryosplat.reconstruct.checkpoint import load_checkpoint, save_checkpoint


def test_plain_state_round_trips(tmp_path):
    state = {"epoch": 2, "history": [{"loss": 1.5, "x": None}], "w": torch.arange(3.0)}
    save_checkpoint(tmp_path / "s.pt", state)
    back = load_checkpoint(tmp_path / "s.pt")
    assert back["epoch"] == 2 and back["history"] == state["history"]
    assert torch.equal(back["w"], state["w"])


def test_a_checkpoint_holding_objects_is_refused(tmp_path):
    torch.save({"path": Path("/x")}, tmp_path / "bad.pt")
    with pytest.raises(InputError, match="cannot read checkpoint"):
        load_checkpoint(tmp_path / "bad.pt")
