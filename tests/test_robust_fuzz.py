"""Seeded fuzzing of the STAR and cryoSPARC readers over the real files of ``../shared/data``.

Random truncation, random bytes, deleted columns (fields) and corrupted values: every case must end
in a particle set or an :class:`InputError` (through the CLI: exit 0 or 2, one line on stderr, no
traceback), never another exception and never a hang.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import numpy.lib.recfunctions as rfn
import pytest

from cryosplat.core.errors import InputError
from cryosplat.particles.read import read_particles
from cryosplat.particles.validate import check_particles

BAD_VALUES = ["nan", "inf", "-inf", "-1", "0", "1e30", "-1e30", "abc", "1e-30", "300000", "@", "1@"]
N_STAR_CASES = 1400
N_CS_CASES = 700
N_CLI_CASES = 24


def _star_files(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "particles").glob("*/*.star"))


def _cs_files(shared_data: Path) -> list[Path]:
    return sorted((shared_data / "particles").glob("*/*.cs")) + sorted(
        (shared_data / "metadata").glob("*.cs")
    )


def _delete_star_column(text: str, rng: np.random.Generator) -> str:
    """Remove one loop column: its ``_rln`` header line and its value in every row of the loop."""
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if line.strip().startswith("_")]
    if not headers:
        return text
    target = int(rng.choice(headers))
    first = target
    while first > 0 and lines[first - 1].strip().startswith("_"):
        first -= 1
    column = target - first
    last = target
    while last + 1 < len(lines) and lines[last + 1].strip().startswith("_"):
        last += 1
    out = lines[:target] + lines[target + 1 : last + 1]
    for line in lines[last + 1 :]:
        tokens = line.split()
        if line.startswith("data_") or line.strip() == "loop_":
            out.append(line)
            column = 10**9  # the next block keeps its columns
        elif len(tokens) > column:
            out.append(" ".join(tokens[:column] + tokens[column + 1 :]))
        else:
            out.append(line)
    return "\n".join(out) + "\n"


def _corrupt_star_value(text: str, rng: np.random.Generator) -> str:
    lines = text.splitlines()
    rows = [
        i
        for i, line in enumerate(lines)
        if line.split() and not line.lstrip().startswith(("_", "#", "data_", "loop_"))
    ]
    if not rows:
        return text
    i = int(rng.choice(rows))
    tokens = lines[i].split()
    tokens[int(rng.integers(len(tokens)))] = str(rng.choice(BAD_VALUES))
    lines[i] = " ".join(tokens)
    return "\n".join(lines) + "\n"


def _random_bytes(data: bytes, rng: np.random.Generator) -> bytes:
    buf = bytearray(data)
    for _ in range(int(rng.integers(1, 8))):
        buf[int(rng.integers(len(buf)))] = int(rng.integers(256))
    return bytes(buf)


def mutate_star(data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    kind = ("truncate", "bytes", "delete column", "corrupt value")[int(rng.integers(4))]
    if kind == "truncate":
        return kind, data[: int(rng.integers(len(data)))]
    if kind == "bytes":
        return kind, _random_bytes(data, rng)
    text = data.decode(errors="replace")
    mutate = _delete_star_column if kind == "delete column" else _corrupt_star_value
    return kind, mutate(text, rng).encode()


def mutate_cs(table: np.ndarray, data: bytes, rng: np.random.Generator) -> tuple[str, bytes]:
    kind = ("truncate", "bytes", "delete field", "corrupt value")[int(rng.integers(4))]
    if kind == "truncate":
        return kind, data[: int(rng.integers(len(data)))]
    if kind == "bytes":
        return kind, _random_bytes(data, rng)
    names = list(table.dtype.names)
    if kind == "delete field":
        table = rfn.drop_fields(table, str(rng.choice(names)), usemask=False)
    else:
        table = table.copy()
        numeric = [n for n in names if table.dtype[n].kind in "fiu"]
        name = str(rng.choice(numeric))
        row = int(rng.integers(len(table)))
        value = rng.choice([np.nan, np.inf, -1.0, 0.0, 1e30, -1e30, 3e5])
        column = table[name]
        flat = column.reshape(len(table), -1)
        with np.errstate(invalid="ignore", over="ignore"):
            if column.dtype.kind == "f":
                flat[row, int(rng.integers(flat.shape[1]))] = value
            else:
                integer = -1 if not np.isfinite(value) else int(np.clip(value, -(2**31), 2**31))
                flat[row, int(rng.integers(flat.shape[1]))] = np.array(integer).astype(column.dtype)
        table[name] = flat.reshape(column.shape)
    buf = io.BytesIO()
    np.save(buf, table)
    return kind, buf.getvalue()


def _read(path: Path, datadir: Path) -> None:
    particles = read_particles(path, datadir=datadir)
    check_particles(particles)


def _cases(shared_data: Path, n_star: int, n_cs: int, seed: int):
    """Yield ``(description, file name, bytes, datadir)`` for the seeded cases."""
    rng = np.random.default_rng(seed)
    stars = [(p, p.read_bytes()) for p in _star_files(shared_data)]
    css = [(p, np.load(p), p.read_bytes()) for p in _cs_files(shared_data)]
    for k in range(n_star):
        path, data = stars[k % len(stars)]
        kind, mutated = mutate_star(data, rng)
        yield f"star case {k} ({path.name}, {kind})", path.name, mutated, path.parent
    for k in range(n_cs):
        path, table, data = css[k % len(css)]
        kind, mutated = mutate_cs(table, data, rng)
        yield f"cs case {k} ({path.name}, {kind})", path.name, mutated, path.parent


def test_fuzz_readers_in_process_end_in_a_set_or_an_input_error(shared_data, tmp_path):
    outcomes = {"ok": 0, "InputError": 0}
    start = time.perf_counter()
    for what, name, data, datadir in _cases(shared_data, N_STAR_CASES, N_CS_CASES, seed=16):
        path = tmp_path / name
        path.write_bytes(data)
        try:
            _read(path, datadir)
            outcomes["ok"] += 1
        except InputError as exc:
            assert "\n" not in str(exc).strip(), f"{what}: a message of several lines"
            outcomes["InputError"] += 1
        except Exception as exc:  # noqa: BLE001 - the point: anything else is a bug
            raise AssertionError(f"{what}: {type(exc).__name__}: {exc}") from exc
    elapsed = time.perf_counter() - start
    assert sum(outcomes.values()) == N_STAR_CASES + N_CS_CASES
    assert outcomes["ok"] > 0 and outcomes["InputError"] > 0, outcomes
    print(f"fuzz: {outcomes} in {elapsed:.1f} s")


@pytest.mark.slow
def test_fuzz_cli_exits_0_or_2_with_one_line_and_no_traceback(shared_data, tmp_path):
    cases = list(_cases(shared_data, N_CLI_CASES * 2 // 3, N_CLI_CASES // 3, seed=61))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    running = []
    for k, (what, name, data, datadir) in enumerate(cases):
        folder = tmp_path / f"case{k}"
        folder.mkdir()
        (folder / name).write_bytes(data)
        command = [sys.executable, "-m", "cryosplat.cli.main", "info", str(folder / name)]
        command += ["--datadir", str(datadir)]
        running.append(
            (
                what,
                subprocess.Popen(
                    command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
                ),
            )
        )
        if len(running) == 6 or k == len(cases) - 1:
            for what_k, proc in running:
                try:
                    _, err = proc.communicate(timeout=180)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    raise AssertionError(f"{what_k}: no answer within 180 s") from None
                assert proc.returncode in (0, 2), f"{what_k}: exit {proc.returncode}: {err[-2000:]}"
                assert "Traceback" not in err, f"{what_k}: {err[-2000:]}"
                if proc.returncode == 2:
                    assert len(err.strip().splitlines()) == 1, f"{what_k}: {err}"
                    assert err.startswith("cryosplat info: error: "), f"{what_k}: {err}"
            running = []
