"""Point groups in RELION's conventions (:mod:`cryosplat.core.symmetry`), checked against RELION itself."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from cryosplat.core.conventions import euler_relion_to_matrix
from cryosplat.core.errors import InputError
from cryosplat.core.mixture import Mixture
from cryosplat.core.symmetry import (
    expand_gaussians,
    normalize_symmetry,
    rotate_volume,
    symmetry_operators,
    symmetry_order,
)
from cryosplat.model.gaussians import voxelize_gaussians

DATA = Path(__file__).parents[1].parent / "shared" / "data"
ORDERS = {"C1": 1, "C4": 4, "c7": 7, "D2": 4, "d5": 10, "T": 12, "O": 24, "I": 60}
ORDERS.update({f"I{k}": 60 for k in range(1, 5)})


def _same_set(a: np.ndarray, b: np.ndarray, tol: float = 1e-4) -> bool:
    return len(a) == len(b) and all(np.abs(b - x).max(axis=(1, 2)).min() < tol for x in a)


@pytest.mark.parametrize("name", sorted(ORDERS))
def test_group_order_closure_and_rotations(name):
    ops = symmetry_operators(name)
    assert ops.shape == (ORDERS[name], 3, 3) == (symmetry_order(name), 3, 3)
    np.testing.assert_allclose(ops[0], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(
        ops @ ops.transpose(0, 2, 1), np.broadcast_to(np.eye(3), ops.shape), atol=1e-9
    )
    np.testing.assert_allclose(np.linalg.det(ops), 1.0, atol=1e-9)
    products = (ops[:, None] @ ops[None, :]).reshape(-1, 3, 3)
    for p in products:  # closed under products (and so under inverses: a finite group)
        assert np.abs(ops - p).max(axis=(1, 2)).min() < 1e-9
    for i in range(1, len(ops)):  # distinct
        assert np.abs(ops[:i] - ops[i]).max(axis=(1, 2)).min() > 1e-3


def test_axis_choices():
    rz = symmetry_operators("C4")
    np.testing.assert_allclose(rz[1] @ [0, 0, 1], [0, 0, 1], atol=1e-12)
    # Dn: the 2-fold along x
    d3 = symmetry_operators("D3")
    assert any(np.allclose(m, np.diag([1.0, -1.0, -1.0])) for m in d3)
    assert _same_set(symmetry_operators("I"), symmetry_operators("i2"))
    assert not _same_set(symmetry_operators("I1"), symmetry_operators("I2"))
    # I1, I2: 2-folds on x, y, z; I3, I4: a 5-fold on z
    for name in ("I1", "I2"):
        assert any(np.allclose(m, np.diag([-1.0, -1.0, 1.0])) for m in symmetry_operators(name))
    c5 = symmetry_operators("C5")
    for name in ("I3", "I4"):
        ops = symmetry_operators(name)
        assert all(np.abs(ops - m).max(axis=(1, 2)).min() < 1e-9 for m in c5)


@pytest.mark.parametrize("bad", ["C0", "X3", "D", "I5", "", "C-2", "Cx"])
def test_bad_names_raise_input_error(bad):
    with pytest.raises(InputError, match="symmetry"):
        normalize_symmetry(bad)
    with pytest.raises(ValueError):
        symmetry_operators(bad)


def test_expanded_gaussians_voxelise_to_a_symmetric_map():
    gen = torch.Generator().manual_seed(0)
    n = 6
    means = torch.randn(n, 3, generator=gen, dtype=torch.float64) * 12
    scales = 2.0 + torch.rand(n, 3, generator=gen, dtype=torch.float64) * 2
    quats = torch.randn(n, 4, generator=gen, dtype=torch.float64)
    quats = quats / quats.norm(dim=-1, keepdim=True)
    amps = torch.rand(n, generator=gen, dtype=torch.float64) + 0.5
    ops = symmetry_operators("D2")
    expanded = expand_gaussians(Mixture(means, scales, quats, amps), ops)
    em, es, eq, ea = expanded
    assert em.shape == (4 * n, 3) and eq.shape == (4 * n, 4) and ea.shape == (4 * n,)
    torch.testing.assert_close(em[:n], means)
    vol = voxelize_gaussians(expanded, 32, 1.5, n_sigma=4.0)
    inner = (slice(1, None),) * 3  # voxel 0 (at −D/2) has no image +D/2 inside the box
    for op in ops:  # a 2-fold about an axis maps voxels onto voxels: exact
        rotated = rotate_volume(vol, op)
        assert torch.allclose(rotated[inner], vol[inner], atol=1e-6 * float(vol.abs().max()))
    # the copies' covariances are R Σ Rᵀ
    from cryosplat.core.rotations import quaternion_to_matrix

    cov = lambda s, q: quaternion_to_matrix(q) @ torch.diag_embed(s**2) @ quaternion_to_matrix(q).mT  # noqa: E731
    op = torch.as_tensor(ops[1])
    torch.testing.assert_close(cov(es[n : 2 * n], eq[n : 2 * n]), op @ cov(scales, quats) @ op.T)
    assert expand_gaussians(Mixture(means, scales, quats, amps), None).means is means


def test_rotate_volume_direction():
    vol = torch.zeros(16, 16, 16, dtype=torch.float64)
    vol[8, 8, 12] = 1.0  # a point at x = +4
    rz90 = symmetry_operators("C4")[1]  # +90° about z: x → y
    np.testing.assert_allclose(rz90 @ [4, 0, 0], [0, 4, 0], atol=1e-12)
    out = rotate_volume(vol, rz90)
    assert out[8, 12, 8] == pytest.approx(1.0)


# --- against RELION --------------------------------------------------------------------------


def _relion_expansion(folder: Path, name: str) -> np.ndarray:
    star = folder / "one.star"
    star.write_text(
        "\ndata_optics\n\nloop_\n_rlnOpticsGroup #1\n_rlnImagePixelSize #2\n_rlnImageSize #3\n"
        "_rlnImageDimensionality #4\n_rlnVoltage #5\n_rlnSphericalAberration #6\n"
        "_rlnAmplitudeContrast #7\n1 1.0 64 2 300 2.7 0.1\n\ndata_particles\n\nloop_\n"
        "_rlnImageName #1\n_rlnAngleRot #2\n_rlnAngleTilt #3\n_rlnAnglePsi #4\n"
        "_rlnOriginXAngst #5\n_rlnOriginYAngst #6\n_rlnOpticsGroup #7\n1@x.mrcs 0 0 0 0 0 1\n"
    )
    out = folder / f"expanded_{name}.star"
    subprocess.run(
        ["relion_particle_symmetry_expand", "--i", str(star), "--o", str(out), "--sym", name],
        check=True,
        capture_output=True,
    )
    rows = [line.split() for line in out.read_text().splitlines() if "x.mrcs" in line]
    angles = np.array([[float(v) for v in r[1:4]] for r in rows])
    return euler_relion_to_matrix(angles[:, 0], angles[:, 1], angles[:, 2])


@pytest.mark.relion
@pytest.mark.parametrize("name", ["C4", "C7", "D2", "D5", "T", "O", "I", "I1", "I2", "I3", "I4"])
def test_operators_equal_relion_symmetry_expansion(tmp_path, name):
    """RELION's pose expansion of a particle at (0, 0, 0) lists the group's matrices."""
    if shutil.which("relion_particle_symmetry_expand") is None:
        pytest.skip("relion_particle_symmetry_expand not on PATH")
    assert _same_set(_relion_expansion(tmp_path, name), symmetry_operators(name))


BOX, PIXEL, N_PARTICLES = 48, 3.0, 300


@pytest.fixture(scope="module")
def relion_projections(tmp_path_factory):
    """An asymmetric map (8ZPM, off-centre) projected by ``relion_project --ctf``."""
    if shutil.which("relion_project") is None or shutil.which("relion_reconstruct") is None:
        pytest.skip("RELION not on PATH")
    model_path = DATA / "models" / "8zpm.cif"
    if not model_path.is_file():
        pytest.skip("shared data not present")
    from cryosplat.core.ctf import CTFParams
    from cryosplat.io.mrc import write_map
    from cryosplat.io.star import write_relion31_particles
    from cryosplat.model.atoms import model_from_atoms

    folder = tmp_path_factory.mktemp("relion_symmetry")
    model = model_from_atoms(model_path, BOX, PIXEL, dtype=torch.float64)
    with torch.no_grad():
        model.means += torch.tensor([9.0, -6.0, 4.0], dtype=torch.float64)  # off the axes
        write_map(folder / "map.mrc", model.voxelize(n_sigma=4.0).numpy(), PIXEL)
    rng = np.random.default_rng(1)
    n = N_PARTICLES
    rot = euler_relion_to_matrix(
        rng.uniform(-180, 180, n),
        np.degrees(np.arccos(rng.uniform(-1, 1, n))),
        rng.uniform(-180, 180, n),
    )
    ctf = CTFParams.create(
        n,
        defocus_u_angstrom=rng.uniform(10000, 25000, n),
        defocus_v_angstrom=rng.uniform(10000, 25000, n),
        defocus_angle_degrees=rng.uniform(0, 180, n),
    )
    write_relion31_particles(
        folder / "in.star",
        image_names=None,
        rotations=rot,
        shifts_angstrom=np.zeros((n, 2)),
        ctf=ctf,
        pixel_size_angstrom=PIXEL,
        box=BOX,
    )
    subprocess.run(
        ["relion_project", "--i", "map.mrc", "--ang", "in.star", "--o", "proj", "--ctf"],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    return folder


def _relion_symmetric_map(folder: Path, name: str) -> torch.Tensor:
    from cryosplat.io.mrc import read_map

    out = folder / f"rec_{name}.mrc"
    subprocess.run(
        ["relion_reconstruct", "--i", "proj.star", "--o", out.name, "--ctf", "--sym", name],
        cwd=folder,
        check=True,
        capture_output=True,
    )
    return torch.from_numpy(read_map(out)[0].astype(np.float64))


def _self_correlation(vol: torch.Tensor, op) -> float:
    c = torch.arange(BOX, dtype=torch.float64) - BOX // 2
    z, y, x = torch.meshgrid(c, c, c, indexing="ij")
    inside = (x * x + y * y + z * z) <= (0.4 * BOX) ** 2
    a, b = vol[inside], rotate_volume(vol, op)[inside]
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / (a.norm() * b.norm()))


@pytest.mark.relion
@pytest.mark.parametrize("name,other", [("C4", "C3"), ("D2", "C4"), ("O", "I3"), ("I", "I1")])
def test_relion_symmetrised_map_is_invariant_under_our_operators(relion_projections, name, other):
    """``relion_reconstruct --sym G`` of an asymmetric map: invariant under each of our R_g.

    A negative control shows the test can fail: the operators of another group (``other``) that are
    not in G leave the map visibly changed (for I: the I1 setting, RELION's I is I2).
    """
    vol = _relion_symmetric_map(relion_projections, name)
    ops = symmetry_operators(name)
    scores = [_self_correlation(vol, op) for op in ops[1:]]
    assert min(scores) >= 0.99, (name, min(scores))
    foreign = [
        m for m in symmetry_operators(other) if np.abs(ops - m).max(axis=(1, 2)).min() > 1e-3
    ]
    assert foreign
    control = max(_self_correlation(vol, m) for m in foreign[:5])
    print(f"{name}: min self-correlation {min(scores):.4f}, foreign ({other}) {control:.4f}")
    assert control < min(scores) - 0.02
