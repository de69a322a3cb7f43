"""Lazy re-exports: a package's surface, imported on first use, declared once.

Host Factory starts a new process for every call, so what a call imports
is what it costs: a script that only sends its call to the daemon must not
load trio, the server or the command-line framework. Yet each package is
entered through its `__init__`, which names its surface. So a package
declares its surface as imports under `if TYPE_CHECKING:` (what mypy and
readers see), and `attach` reads that block back from the file to import
each name when it is first asked for (PEP 562). The block is the one list;
nothing is written twice.
"""

from __future__ import annotations

import ast
import importlib
import pathlib
from collections.abc import Callable


def attach(package: str, init_file: str) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, from its `if TYPE_CHECKING:` imports."""
    exports: dict[str, tuple[str, str]] = {}
    for node in ast.parse(pathlib.Path(init_file).read_text()).body:
        if isinstance(node, ast.If) and ast.unparse(node.test) == "TYPE_CHECKING":
            for statement in node.body:
                if isinstance(statement, ast.ImportFrom) and statement.module:
                    for alias in statement.names:
                        exports[alias.asname or alias.name] = (statement.module, alias.name)

    def __getattr__(name: str) -> object:
        where = exports.get(name)
        if where is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[0]), where[1])
        importlib.import_module(package).__dict__[name] = value  # once found, found
        return value

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
