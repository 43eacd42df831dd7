"""The package layout holds: imports flow one way, modules and functions stay readable sizes.

docs/architecture.md, "Import direction", draws the order; this test is that drawing, enforced.
Imports under ``if TYPE_CHECKING:`` are annotations only and do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "kafkalake"

#: a module may import (at run time) only what has a lower rank than its own, or its own package
RANKS = {
    "_exports": 0, "_files": 0, "config": 0, "errors": 0, "testing.faults": 0,
    "schema": 1, "kafka": 1, "catalog": 1,
    "wire": 2, "spark": 2,
    "produce": 3, "stream": 3,
    "lake": 4,
    "compaction": 5, "backfill": 5, "migration": 5,
    "airflow": 6, "platform": 6, "testing.lakegen": 6,
    "ui": 6, "registry_api": 6,
    "cli": 7,
}
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 90


def _unit(module: str) -> str:
    """``kafkalake.stream.job`` -> ``stream``; the testing package's two halves rank apart."""
    parts = module.split(".")[1:]
    if parts[0] == "testing" and len(parts) > 1:
        return f"testing.{parts[1]}"
    return parts[0]


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def _runtime_imports(tree: ast.Module) -> list[tuple[int, str]]:
    type_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for child in node.body:
                type_only.update(id(n) for n in ast.walk(child))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and id(node) not in type_only:
            if node.module == "kafkalake":
                found += [(node.lineno, f"kafkalake.{alias.name}") for alias in node.names]
            elif node.module.startswith("kafkalake."):
                found.append((node.lineno, node.module))
    return found


def test_every_unit_has_a_rank() -> None:
    units = {_unit("kafkalake." + ".".join(p.relative_to(PACKAGE).with_suffix("").parts)) for p in _modules()}
    assert units - set(RANKS) == set(), "give each new package a rank in RANKS (and in docs/architecture.md)"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path: Path) -> None:
    own = _unit("kafkalake." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts))
    wrong = []
    for line, module in _runtime_imports(ast.parse(path.read_text())):
        other = _unit(module)
        if other != own and own.split(".")[0] != other.split(".")[0] and RANKS[other] >= RANKS[own]:
            wrong.append(f"line {line}: {module} ({other}, rank {RANKS[other]} >= {own}'s {RANKS[own]})")
    assert wrong == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_and_functions_stay_readable(path: Path) -> None:
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, "split the module along its concepts"
    long = [
        f"{node.name} (line {node.lineno}): {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_airflow_is_imported_only_by_its_adapters() -> None:
    importers = []
    for path in _modules():
        if path.is_relative_to(PACKAGE / "airflow"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            names += [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            if any(name == "airflow" or name.startswith("airflow.") for name in names):
                importers.append(str(path.relative_to(PACKAGE)))
    assert importers == []


PACKAGES = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py") if p.parent.name not in ("airflow", "cli"))


@pytest.mark.parametrize("name", PACKAGES)
def test_each_package_re_exports_what_it_lists(name: str) -> None:
    import importlib

    package = importlib.import_module(f"kafkalake.{name}")
    assert package.__all__ == sorted(package._EXPORTS)
    missing = [attr for attr in package.__all__ if getattr(package, attr, None) is None]
    assert missing == []
    with pytest.raises(AttributeError, match="no attribute"):
        package.not_a_public_name  # noqa: B018 (the attribute access is the test)
