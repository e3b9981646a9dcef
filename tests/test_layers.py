"""The package's layers only import downwards:
core <- numerics <- files <- runtime, datasets <- training | inference <- evaluation <- qc
<- demo <- cli. Training and inference are peers that never import each other, and no module
imports one that imports it back (no cycles)."""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hipseg"
LAYERS = {
    "core": 0,
    "preprocess": 1, "views": 1, "fusion": 1, "metrics": 1, "models": 1, "phantom": 1,
    "postprocess": 1, "collisions": 1, "mesh": 1, "weights": 1, "augment": 1, "crop": 1,
    "losses": 1, "distances": 1, "labelmap": 1, "cartilage": 1, "tetmesh": 1,
    "io": 2,
    "runtime": 3, "datasets": 3,
    "training": 4, "inference": 4,
    "evaluation": 5, "fe": 5,
    "qc": 6,
    "demo": 7,
    "cli": 8, "__main__": 8,
}
#: Packages of one layer that must not import each other.
PEERS = {("training", "inference"), ("inference", "training")}
NUMERICS = {name for name, layer in LAYERS.items() if layer == 1}


def _top(module: str) -> str:
    return module.split(".")[1]


def _layer(module: str) -> int:
    return LAYERS[_top(module)]


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    parts = parts[:-1] if parts[-1] == "__init__" else parts
    return "hipseg." + ".".join(parts)


@cache
def _imports(path: Path) -> tuple[str, ...]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return tuple(names)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    own = _name(path)
    own_layer = _layer(own)
    for name in _imports(path):
        if name.startswith("hipseg.") and name != "hipseg":
            assert _layer(name) <= own_layer, f"{own} (layer {own_layer}) imports {name}"
            assert (_top(own), _top(name)) not in PEERS, f"{own} imports its peer stage {name}"


@pytest.mark.parametrize("path", [p for p in _modules() if _top(_name(p)) in NUMERICS],
                         ids=lambda p: str(p.relative_to(PACKAGE)))
def test_numerics_know_nothing_of_files_or_the_command_line(path):
    for name in _imports(path):
        assert name.split(".")[0] not in ("nibabel", "SimpleITK", "argparse", "tqdm"), name
        if name.startswith("hipseg."):
            assert _layer(name) <= 1, f"{_name(path)} imports {name}"


def test_no_import_cycles():
    modules = {_name(p): p for p in _modules()}
    graph = {name: {i for i in _imports(path) if i in modules and i != name}
             for name, path in modules.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [])
