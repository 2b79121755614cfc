"""The package's architecture as a contract: one layer per folder, imports only downwards, no cycle.

Every ``import`` of a cryosplat module counts, at module level or inside a function (a lazy import is
still a dependency). A module may import its own layer and the layers below it, never above.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "src" / "cryosplat"

# Bottom to top. A module in LAYERS[k] may import from LAYERS[0..k].
LAYERS = (
    "core",  # errors, conventions, rotations, Fourier helpers, CTF, symmetry: no I/O
    "io",  # file formats: MRC, STAR, atomic writes, stack references
    "particles",  # ParticleSet, the readers, half sets, summaries
    "model",  # the Gaussian mixture, atoms, export
    "render",  # splatting backends, image formation
    "validation",  # FSC, masks, cross-validated resolution
    "reconstruct",  # orchestration, run folder, checkpoints, engines
    "simulate",  # simulation, projection of models, the demo
    "cli",  # the command line
)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """The cryosplat modules that ``path`` imports (resolving ``from pkg import module``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        for name in names:
            if name.split(".")[0] != "cryosplat":
                continue
            while name not in modules:  # an attribute of a module, not a module
                name = name.rpartition(".")[0]
            found.add(name)
    return found


def _layer(module: str) -> int:
    parts = module.split(".")
    if len(parts) == 1:  # cryosplat/__init__.py: the version only
        return 0
    return LAYERS.index(parts[1])


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(p, modules) - {m} for m, p in modules.items()}


def test_every_module_lives_in_a_layer():
    flat = [m for m in _modules() if m.count(".") == 1 and m.split(".")[1] not in LAYERS]
    assert flat == [], f"modules outside the layer folders: {flat}"


def test_layers_import_only_downwards():
    upward = [
        f"{src} ({LAYERS[_layer(src)]}) imports {dst} ({LAYERS[_layer(dst)]})"
        for src, targets in _graph().items()
        for dst in targets
        if _layer(dst) > _layer(src)
    ]
    assert upward == [], "\n".join(upward)


def test_no_import_cycle():
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    assert cycles == [], "\n".join(" -> ".join(c) for c in cycles)


# One concept per module: a module past this many lines holds two and is split.
MAX_MODULE_LINES = 500


def test_modules_stay_small():
    long = {
        m: n
        for m, p in _modules().items()
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    }
    assert long == {}, f"modules over {MAX_MODULE_LINES} lines: {long}"


@pytest.mark.parametrize("bad", ["upward", "cycle", "long"])
def test_the_checks_catch_violations(bad, tmp_path, monkeypatch):
    """The contract is not vacuous: a planted upward import, cycle or long module is reported."""
    fake = tmp_path / "cryosplat"
    for folder in ("core", "cli"):
        (fake / folder).mkdir(parents=True)
        (fake / folder / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    if bad == "upward":
        (fake / "core" / "a.py").write_text("from cryosplat.cli.b import f\n")
        (fake / "cli" / "b.py").write_text("def f(): pass\n")
        check = test_layers_import_only_downwards
    elif bad == "long":
        (fake / "core" / "a.py").write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
        check = test_modules_stay_small
    else:
        (fake / "core" / "a.py").write_text("def g():\n    from cryosplat.core.b import f\n")
        (fake / "core" / "b.py").write_text("from cryosplat.core.a import g\n")
        check = test_no_import_cycle
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    with pytest.raises(AssertionError):
        check()
