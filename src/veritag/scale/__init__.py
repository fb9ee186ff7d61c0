"""Batch work on a Ray cluster (the ``scale`` extra: ``pip install 'veritag[scale]'``).

Ray is imported only when a Ray engine is asked for, so the rest of veritag never needs it.
"""

from __future__ import annotations

from .ray_resolve import RAY_METHODS, RayRun, parse_engine, ray_partitions

__all__ = ["RAY_METHODS", "RayRun", "parse_engine", "ray_partitions"]
