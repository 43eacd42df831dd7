"""Lazy re-exports for the concept packages' ``__init__`` (PEP 562).

``from kafkalake.lake import replace_hours`` imports ``kafkalake.lake.rewrite`` on first use, not
when ``kafkalake.lake`` is imported. Packages then never import one another at import time
through their ``__init__`` (no cycles), and DAG files that import a package stay cheap.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``exports`` maps a name to its submodule."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        setattr(sys.modules[package], name, value)  # the next lookup is a plain attribute
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
