"""Package attributes imported on first use (PEP 562), so a light command pays for no heavy import.

``veritag resolve labels.csv`` needs neither the store nor SQLAlchemy, yet ``veritag.io`` and
``veritag.resolve`` name things that do; each package lists where its public names live and
hands this module's two functions to Python as its ``__getattr__`` and ``__dir__``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from importlib import import_module
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(
    package: str, homes: dict[str, str], public: list[str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``: ``homes`` maps a name to its (relative)
    module; a name is imported on first access and then kept in the package's namespace."""

    def __getattr__(name: str) -> Any:
        home = homes.get(name)
        if home is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(home, package), name)
        setattr(sys.modules[package], name, value)
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *public})

    return __getattr__, __dir__
