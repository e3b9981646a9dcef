"""The package's layers only import downwards: core <- numerics <- files <- workflows <- cli."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "hipseg"
LAYERS = {
    "core": 0,
    "preprocess": 1, "views": 1, "fusion": 1, "metrics": 1, "models": 1, "phantom": 1,
    "postprocess": 1, "collisions": 1, "mesh": 1, "weights": 1, "augment": 1, "crop": 1,
    "io": 2,
    "workflows": 3,
    "cli": 4, "__main__": 4,
}


def _layer(module: str) -> int:
    return LAYERS[module.split(".")[1]]


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down(path):
    own = "hipseg." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
    own_layer = _layer(own)
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name.startswith("hipseg.") and name != "hipseg":
                assert _layer(name) <= own_layer, f"{own} (layer {own_layer}) imports {name}"
