"""Pseudo-atom export of Gaussian models (PDB and mmCIF through gemmi)."""

from __future__ import annotations

import math

import gemmi
import numpy as np
import pytest
import torch

from cryosplat.core.errors import InputError
from cryosplat.model.export import PDB_MAX_ATOMS, export_model
from cryosplat.model.gaussians import GaussianModel


@pytest.mark.parametrize("suffix", [".pdb", ".cif"])
def test_round_trip_positions_bfactors_occupancies(tmp_path, suffix):
    box, pixel = 40, 1.25
    model = GaussianModel.random(50, box, pixel, seed=2, dtype=torch.float64)
    with torch.no_grad():
        model.raw_amplitudes += torch.linspace(-1, 1, 50, dtype=torch.float64)
    path = export_model(model, tmp_path / f"model{suffix}")
    structure = gemmi.read_structure(str(path))
    atoms = [cra.atom for cra in structure[0].all()]
    assert len(atoms) == 50
    arrays = model.state_arrays()
    pos = np.array([a.pos.tolist() for a in atoms])
    assert np.allclose(pos, arrays["means_angstrom"] + (box // 2) * pixel, atol=2e-3)
    b = np.array([a.b_iso for a in atoms])
    expected_b = 8 * math.pi**2 * (arrays["scales_angstrom"] ** 2).mean(1)
    assert np.allclose(b, expected_b, rtol=1e-3, atol=0.01)
    occ = np.array([a.occ for a in atoms])
    expected_occ = arrays["amplitudes"] / arrays["amplitudes"].max()
    assert np.allclose(occ, expected_occ, atol=6e-3)


def test_many_gaussians_span_chains_and_pdb_limit(tmp_path):
    n = 12_000
    model = GaussianModel.random(n, 64, 1.0, seed=3)
    path = export_model(model, tmp_path / "many.cif")
    structure = gemmi.read_structure(str(path))
    assert structure[0].count_atom_sites() == n
    assert len(structure[0]) == 2
    # One non-polymer entity and one label_asym_id per chain (as waters), not one per Gaussian.
    block = gemmi.cif.read(str(path)).sole_block()
    assert list(block.find_values("_struct_asym.id")) == ["A", "B"]
    assert len(set(block.find_values("_atom_site.label_asym_id"))) == 2
    (entity,) = structure.entities
    assert entity.entity_type == gemmi.EntityType.NonPolymer
    assert list(entity.subchains) == ["A", "B"]
    big = GaussianModel.random(PDB_MAX_ATOMS + 1, 64, 1.0, seed=4)
    with pytest.raises(InputError, match="PDB"):
        export_model(big, tmp_path / "big.pdb")
    with pytest.raises(InputError, match=".xyz"):
        export_model(model, tmp_path / "model.xyz")
