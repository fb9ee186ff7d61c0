"""Batch work on a Ray cluster (the ``scale`` extra: ``pip install 'veritag[scale]'``).

Ray is imported only when a Ray engine is asked for, so the rest of veritag never needs it. The
auto-labeler's engine (which reads the store) is imported on first use, so ``resolve`` on files
pays for no database import.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..lazy import lazy_exports
from .ray_resolve import RAY_METHODS, RayRun, parse_engine, ray_partitions

if TYPE_CHECKING:
    from .ray_autolabel import autolabel_on_ray, ray_session

__all__ = [
    "RAY_METHODS",
    "RayRun",
    "autolabel_on_ray",
    "parse_engine",
    "ray_partitions",
    "ray_session",
]

_HOMES = {"autolabel_on_ray": ".ray_autolabel", "ray_session": ".ray_autolabel"}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES, __all__)
