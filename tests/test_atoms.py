"""Atomic models as Gaussian mixtures: Peng form factors, B-factors, centring, filtering."""

from __future__ import annotations

import math
from pathlib import Path

import gemmi
import numpy as np
import pytest
import torch

from cryosplat.core.errors import InputError
from cryosplat.core.fourier import fftn_centered
from cryosplat.model.atoms import electron_form_factor_gaussians, model_from_atoms

DATA = Path(__file__).parents[1].parent / "shared" / "data"


def _write_pdb(path, atoms):
    """atoms: list of (residue name, atom name, element, (x, y, z), B, occupancy)."""
    structure = gemmi.Structure()
    model = gemmi.Model("1")
    chain = gemmi.Chain("A")
    for i, (resname, name, element, pos, b, occ) in enumerate(atoms):
        residue = gemmi.Residue()
        residue.name = resname
        residue.seqid = gemmi.SeqId(i + 1, " ")
        atom = gemmi.Atom()
        atom.name, atom.element = name, gemmi.Element(element)
        atom.pos, atom.b_iso, atom.occ = gemmi.Position(*pos), b, occ
        residue.add_atom(atom)
        chain.add_residue(residue)
    model.add_chain(chain)
    structure.add_model(model)
    structure.setup_entities()
    structure.write_pdb(str(path))
    return path


@pytest.fixture()
def small_pdb(tmp_path):
    return _write_pdb(
        tmp_path / "small.pdb",
        [
            ("ALA", "CA", "C", (10.0, 12.0, 14.0), 20.0, 1.0),
            ("ALA", "N", "N", (11.5, 12.0, 14.0), 25.0, 1.0),
            ("ALA", "O", "O", (10.0, 13.5, 14.5), 30.0, 0.5),
            ("ALA", "H", "H", (9.0, 12.0, 14.0), 20.0, 1.0),
            ("HOH", "O", "O", (20.0, 20.0, 20.0), 40.0, 1.0),
            ("CYS", "SG", "S", (12.0, 10.0, 13.0), 35.0, 1.0),
        ],
    )


def test_amplitudes_are_form_factors_at_zero_and_centre_of_mass_at_origin(small_pdb):
    model = model_from_atoms(small_pdb, 32, 1.0, dtype=torch.float64)
    assert len(model) == 5 * 4  # hydrogen and water skipped
    expected = sum(
        occ * electron_form_factor_gaussians(el)[0].sum()
        for el, occ in (("C", 1.0), ("N", 1.0), ("O", 0.5), ("S", 1.0))
    )
    assert abs(model.amplitudes.sum().item() - expected) < 1e-9
    masses = {"C": 12.011, "N": 14.007, "O": 15.999 * 0.5, "S": 32.06}
    pos = np.array([[10.0, 12.0, 14.0], [11.5, 12.0, 14.0], [10.0, 13.5, 14.5], [12.0, 10.0, 13.0]])
    w = np.array(list(masses.values()))
    com = (pos * w[:, None]).sum(0) / w.sum()
    means = model.means.detach().numpy()[::5]
    assert np.allclose(means, pos - com, atol=1e-2)
    assert np.allclose((means * w[:, None]).sum(0) / w.sum(), 0.0, atol=1e-2)


def test_hydrogens_waters_and_kept_coordinates(small_pdb):
    with_all = model_from_atoms(small_pdb, 32, 1.0, include_hydrogens=True, include_waters=True)
    assert len(with_all) == 5 * 6
    kept = model_from_atoms(small_pdb, 32, 1.5, keep_coordinates=True, dtype=torch.float64)
    assert np.allclose(kept.means.detach().numpy()[0], np.array([10.0, 12.0, 14.0]) - 16 * 1.5)
    centred = model_from_atoms(small_pdb, 32, 1.0, center_of_mass=(10.0, 12.0, 14.0))
    assert np.allclose(centred.means.detach().numpy()[0], 0.0, atol=1e-5)


def test_widths_follow_form_factor_and_bfactor(small_pdb):
    model = model_from_atoms(small_pdb, 32, 1.0, bfactor_extra=10.0, dtype=torch.float64)
    a, b = electron_form_factor_gaussians("C")
    sigma = np.sqrt((b + 20.0 + 10.0) / (8 * math.pi**2))
    assert np.allclose(model.scales.detach().numpy()[:5], sigma[:, None], rtol=1e-9)
    assert np.allclose(model.amplitudes.detach().numpy()[:5], a, rtol=1e-9)


def test_voxelised_atom_has_the_peng_transform(tmp_path):
    """The 3D transform of one voxelised atom is f(s)·exp(-B s²) with s = |k|/2."""
    bfactor, box, pixel = 60.0, 48, 0.5
    path = _write_pdb(tmp_path / "c.pdb", [("GLY", "CA", "C", (0.0, 0.0, 0.0), bfactor, 1.0)])
    model = model_from_atoms(path, box, pixel, dtype=torch.float64)
    with torch.no_grad():
        vol = model.voxelize(n_sigma=6.0)
    ft = fftn_centered(vol).real * pixel**3
    a, b = electron_form_factor_gaussians("C")
    c = box // 2
    for n in range(0, 12, 2):
        k = n / (box * pixel)
        s = k / 2
        expected = float((a * np.exp(-b * s * s)).sum() * math.exp(-bfactor * s * s))
        assert abs(ft[c, c, c + n].item() - expected) < 1e-6 * a.sum()


def test_bad_inputs(tmp_path, small_pdb):
    with pytest.raises(InputError, match="not found"):
        model_from_atoms(tmp_path / "missing.pdb", 32, 1.0)
    with pytest.raises(InputError, match="B-factor"):
        model_from_atoms(small_pdb, 32, 1.0, bfactor_extra=-100.0)
    with pytest.raises(InputError):
        electron_form_factor_gaussians("Xx")
    garbage = tmp_path / "garbage.cif"
    garbage.write_text("this is not a structure\n")
    with pytest.raises(InputError):
        model_from_atoms(garbage, 32, 1.0)


def test_real_model_8zpm():
    path = DATA / "models" / "8zpm.cif"
    if not path.is_file():
        pytest.skip("shared data not present")
    model = model_from_atoms(path, 96, 1.5)
    st = gemmi.read_structure(str(path))
    heavy = sum(
        1 for r in st[0].all() if not r.atom.element.is_hydrogen and not r.residue.is_water()
    )
    assert len(model) == 5 * heavy
    assert model.means.detach().abs().max() < 48 * 1.5
