"""Dawid-Skene on a Ray cluster: crowd-kit's EM (``veritag.truth.faithful``) distributed by its
sufficient statistics.

The claims are cut by item into contiguous partitions, held by Ray actors (at most one per
CPU) that run ``faithful.Partition`` on each: its E-step, the expected counts per
``(source, answer)`` and true class (``A_part.T @ p_part``), the posterior mass behind the
class prior and its parts of the log-likelihood and lower bound. Every iteration the driver
sends the errors and the prior (a few kilobytes), gathers those statistics, adds them in
partition order and runs the local engine's M-step and stopping rule. Only the statistics
cross the network, never the claims or the posteriors until the end, and the arithmetic is the
local engine's: the same labels, and posteriors equal up to the order of the partial sums
(well within 1e-6).

``ray_partitions`` installs this as ``fit_faithful``'s partitioner for a ``with`` block, so
every caller of the local engine (file mode, project mode) runs on the cluster unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from ..errors import VeritagError
from ..truth.faithful import PARTITIONS, Call, Partition, _row_view

__all__ = ["RAY_METHODS", "RayRun", "parse_engine", "ray_partitions"]

#: Methods the Ray engine fits: crowd-kit's Dawid-Skene models on hard claims.
RAY_METHODS = ("ds", "onecoin")


@dataclass
class RayRun:
    """What a ``ray_partitions`` block ran on the cluster: callers tell a fit that went to Ray
    from one the engine kept local (``ds`` with model probabilities is not crowd-kit's)."""

    fits: int = 0
    partitions: int = 0


def _ray() -> ModuleType:
    """Ray, or a message saying which extra brings it."""
    try:
        import ray
    except ImportError as exc:
        raise VeritagError(
            "the Ray engine needs Ray: install veritag[scale] (pip install 'veritag[scale]')"
        ) from exc
    return ray


def parse_engine(engine: str) -> tuple[str, str | None]:
    """``local``, ``ray`` or ``ray:ADDRESS`` as ``(kind, address)``; ``ray`` alone starts a
    cluster on this machine (or joins the one ``RAY_ADDRESS`` names, as Ray does)."""
    kind, _, address = engine.partition(":")
    if kind not in ("local", "ray") or (kind == "local" and address):
        raise VeritagError(f"unknown engine {engine!r}; use local, ray or ray:ADDRESS")
    if kind == "ray" and engine.endswith(":") and not address:
        raise VeritagError("ray:ADDRESS needs an address, e.g. ray:127.0.0.1:6379 or ray:auto")
    return kind, address or None


def _cuts(A: sp.csr_matrix, n_parts: int) -> list[tuple[int, int]]:
    """Item ranges of about equal claim counts (a partition's work is its claims)."""
    n = A.shape[0]
    n_parts = max(1, min(n_parts, n))
    wanted = np.linspace(0, A.indptr[-1], n_parts + 1)[1:-1]
    inner = np.searchsorted(A.indptr, wanted, side="left").clip(0, n)
    edges = np.unique(np.concatenate([[0], inner, [n]]))
    return list(zip(edges[:-1].tolist(), edges[1:].tolist()))


class _Holder:
    """One Ray actor's partitions (contiguous, in order): each call runs on every one of them.

    A cluster gets at most one actor per CPU: a worker process costs seconds to start (Python,
    numpy, scipy), and partitions beyond the CPUs only make the pieces smaller.
    """

    def __init__(
        self, parts: list[tuple[sp.csr_matrix, NDArray[np.int64], NDArray[np.int64]]], k: int
    ) -> None:
        self.parts = [Partition(A, gi, gl, k) for A, gi, gl in parts]

    def call(self, name: str, *args: Any) -> list[Any]:
        return [getattr(part, name)(*args) for part in self.parts]


@contextmanager
def _on_ray(
    ray: ModuleType,
    run: RayRun,
    n_parts: int | None,
    A: sp.csr_matrix,
    gold_items: NDArray[np.int64],
    gold_labels: NDArray[np.int64],
    k: int,
) -> Iterator[Call]:
    """Actors holding the partitions of ``A``, spread over the cluster's nodes; ended with the
    fit."""
    cpus = max(int(ray.cluster_resources().get("CPU", 1)), 1)
    cuts = _cuts(A, 2 * cpus if n_parts is None else n_parts)
    run.fits, run.partitions = run.fits + 1, len(cuts)
    parts = []
    for a, b in cuts:
        gold = (gold_items >= a) & (gold_items < b)
        # the row view's arrays are views of A's: only these rows are sent
        parts.append((_row_view(A, a, b), gold_items[gold] - a, gold_labels[gold]))
    holder = ray.remote(_Holder).options(scheduling_strategy="SPREAD")
    groups = np.array_split(np.arange(len(parts)), min(cpus, len(parts)))
    actors = [holder.remote([parts[i] for i in group], k) for group in groups]

    def call(name: str, *args: Any) -> list[Any]:
        refs = [ray.put(arg) if isinstance(arg, np.ndarray) else arg for arg in args]
        answers = ray.get([each.call.remote(name, *refs) for each in actors])
        return [answer for group in answers for answer in group]  # in partition order

    try:
        yield call
    finally:
        for each in actors:
            ray.kill(each)


@contextmanager
def ray_partitions(address: str | None = None, partitions: int | None = None) -> Iterator[RayRun]:
    """Within the block, crowd-kit's Dawid-Skene (``fit_faithful``) runs on Ray.

    Connects to the cluster at ``address`` (``auto``: the one ``ray start`` runs here), or starts
    one on this machine when it is None and none is running; a cluster this function started is
    shut down at the end, one it joined is left running. ``partitions`` defaults to twice the
    cluster's CPUs.
    """
    if partitions is not None and partitions < 1:
        raise VeritagError("--partitions must be at least 1")
    ray = _ray()
    started = not ray.is_initialized()
    if started:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            logging_level=logging.WARNING,
        )
    run = RayRun()
    token = PARTITIONS.set(lambda A, gi, gl, k: _on_ray(ray, run, partitions, A, gi, gl, k))
    try:
        yield run
    finally:
        PARTITIONS.reset(token)
        if started:
            ray.shutdown()
