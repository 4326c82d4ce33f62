"""The package layout keeps its promises (docs/ARCHITECTURE.md): the tree shows the design.

- ``samo_serve/`` has a few top-level modules; the rest lives in subpackages by concern;
- no product module over 400 lines, no function over 80;
- the product never imports the harnesses in ``testkit/`` (the wheel leaves them out);
- Ray is imported only by ``deployments/`` and the modules named here;
- dependencies point one way: ``core`` imports no edge (http, ops), storage or observability module.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ROOT / "samo_serve"
PRODUCT_FILES = sorted(PRODUCT.rglob("*.py"))
# samo_serve/ modules that must import Ray: starting a local Ray (ops.launcher), Ray's metrics backend.
RAY_IMPORTERS = {"samo_serve/ops/launcher.py", "samo_serve/observability/ray_metrics.py"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _imports(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_few_top_level_modules() -> None:
    top = sorted(p.name for p in PRODUCT.glob("*.py"))
    assert len(top) <= 10, top


@pytest.mark.parametrize("path", PRODUCT_FILES, ids=_rel)
def test_module_and_function_size(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    assert source.count("\n") <= MAX_MODULE_LINES, f"{_rel(path)}: split it by concern"
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno is not None
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert not long, f"{_rel(path)}: {long}"


@pytest.mark.parametrize("path", PRODUCT_FILES, ids=_rel)
def test_product_imports(path: Path) -> None:
    imports = _imports(path)
    assert not {m for m in imports if m.split(".")[0] in {"testkit", "tests", "bench"}}, "harness in the product"
    if _rel(path) not in RAY_IMPORTERS:
        assert not {m for m in imports if m.split(".")[0] == "ray"}, "only deployments/ adapts to Ray"
    if path.is_relative_to(PRODUCT / "core"):
        outward = {m for m in imports if m.split(".")[:2][-1] in {"http", "ops", "storage", "observability"}}
        assert not {m for m in outward if m.startswith("samo_serve.")}, "core depends on nothing outside it"
