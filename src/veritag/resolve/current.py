"""The one owner of a project's derived truth: which stored run is current, how stale it is, and
when to fit again.

Every reader of resolved labels asks ``current_truth``; what it may do is the caller's to say:

* ``refit="never"``: read the newest stored run and say how stale it is. What a GET does: it
  never runs EM and never appends a row, and before the first run there is nothing to read.
* ``refit="due"``: fit again once the claims since the run pass ``max(REFIT_CLAIMS,
  REFIT_SHARE x items)``, or a gold label or a retraction came (a request that can fold the few
  new claims in by itself, as routing does, uses this).
* ``refit="stale"``: fit again on any new claim or gold label (a command that exports or shows
  labels and must cover every claim).

One fit at a time per project: a caller that finds a fit running goes on with the stale run,
and waits only when there is none yet (``refit_lock``). On PostgreSQL the lock is an advisory
lock held by a connection of its own while the fit runs, so it holds across every server process
and host on the database. On SQLite it is a lock of this process: ``serve`` processes on one
SQLite file queue on its writer lock instead, and two of them may fit the same claims twice,
which stores one more run and is otherwise harmless.

Staleness compares the project's claims version (``Project.claims_version``, counted by the one
claims writer) and gold count with the run's, not claim ids: a claim whose transaction took a
lower id and committed after the fit read the claims still makes the run stale.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa

from ..errors import Conflict
from ..store.engine import Store
from ..store.models import Claim, Project
from ..store.queries import Watermark, claims_watermark, latest_truth_run, project_schema
from .core import DEFAULT_METHOD, Resolution, effective_method
from .runs import load_resolution, resolve_and_store

__all__ = [
    "REFIT_CLAIMS",
    "REFIT_SHARE",
    "CurrentTruth",
    "NotResolved",
    "Refit",
    "current_resolution",
    "current_truth",
    "load_truth",
    "refit_lock",
]

#: Claims since the stored run that a ``refit="due"`` reader folds in before it fits again.
REFIT_CLAIMS = 25
REFIT_SHARE = 0.05

Refit = Literal["never", "due", "stale"]


class NotResolved(Conflict):
    """A reader that may not fit found no stored run: someone must resolve the project first."""


@dataclass(frozen=True)
class CurrentTruth:
    """The newest stored run (a ``truth_runs`` row, None before the first) and what came since."""

    run: Any
    mark: Watermark
    new_claims: int
    retractions: int
    refitted: bool
    #: The resolution this call fitted and stored as ``run``, kept so a reader does not load back
    #: what it just wrote (None when the run was read, not fitted here).
    fitted: Resolution | None = field(default=None, repr=False, compare=False)

    @property
    def stale(self) -> bool:
        """Whether claims or gold labels came after the run (or there is no run)."""
        return (
            self.run is None or self.new_claims > 0 or self.run.gold_count != self.mark.gold_count
        )

    def due(self, n_items: int) -> bool:
        """Whether a ``refit="due"`` reader fits again (see the module docstring)."""
        if self.run is None or self.run.gold_count != self.mark.gold_count or self.retractions:
            return True  # a gold label or a retraction cannot be folded into a posterior
        return self.new_claims > max(REFIT_CLAIMS, REFIT_SHARE * n_items)

    def to_json(self) -> dict[str, Any]:
        """What a GET reports about the labels it shows."""
        return {
            "run": None if self.run is None else int(self.run.id),
            "stale": self.stale,
            "claims_since": self.new_claims,
            "refitted": self.refitted,
        }


#: SQLite's refit locks, per database and project (PostgreSQL's live in the database).
_REFIT_LOCKS: dict[tuple[str, int, str], threading.Lock] = {}
_LOCKS_LOCK = threading.Lock()
#: The first key of veritag's two-key PostgreSQL advisory locks, per lock ("vrtg", "vrtq"); the
#: second is the project id.
_LOCK_NAMESPACES = {"fit": 0x76727467, "queue": 0x76727471}
_TRY_LOCK = sa.text("SELECT pg_try_advisory_lock(:ns, CAST(:project AS integer))")
#: How often a caller waiting for a project's first fit tries the lock again.
_LOCK_POLL_SECONDS = 0.05
_UNLOCK = sa.text("SELECT pg_advisory_unlock(:ns, CAST(:project AS integer))")


@contextmanager
def refit_lock(store: Store, project: Project, *, wait: bool, key: str = "fit") -> Iterator[bool]:
    """Hold the project's refit lock for the block, if it can be had; yields whether it was.

    ``wait`` blocks until the holder is done (a first fit: there is no run to serve meanwhile).
    PostgreSQL's advisory lock belongs to the session of one connection, kept out of any
    transaction (autocommit) so that a long fit holds no snapshot; it is released at the end,
    or by the server when that connection dies with its process. A waiter polls with a try-lock
    and holds no connection between tries: dozens of requests waiting for a project's first
    fit must not take the whole connection pool from the one fitting, which needs more.
    ``key`` names the lock among a project's (``fit``: fitting the truth; ``queue``: building
    the routing queue, ``routing.queue``).
    """
    if store.engine.dialect.name == "postgresql":
        keys = {"ns": _LOCK_NAMESPACES[key], "project": project.id}
        while True:
            with store.engine.connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                if conn.scalar(_TRY_LOCK, keys):
                    try:
                        yield True
                    finally:
                        conn.execute(_UNLOCK, keys)
                    return
            if not wait:
                yield False
                return
            time.sleep(_LOCK_POLL_SECONDS)
    with _LOCKS_LOCK:
        lock = _REFIT_LOCKS.setdefault((str(store.engine.url), project.id, key), threading.Lock())
    got = lock.acquire(blocking=wait)
    try:
        yield got
    finally:
        if got:
            lock.release()


def _read(store: Store, project: Project, method: str | None) -> CurrentTruth:
    """The newest run and what came since: the claims version counts every claim committed
    since the run, whatever its id; the claims above the run's newest id are counted too (a
    claim written past ``store.claims``, as tests do, moves no version) and say how many of
    them are retractions."""
    with store.engine.connect() as conn:
        mark = claims_watermark(conn, project_id=project.id)
        run = latest_truth_run(conn, project_id=project.id, method=method)
        since = retracts = 0
        if run is not None and run.max_claim_id < mark.max_claim_id:
            since, retracts = conn.execute(
                sa.select(sa.func.count(), sa.func.count(Claim.retracts))
                .select_from(Claim)
                .where(Claim.project_id == project.id, Claim.id > run.max_claim_id)
            ).one()
        if run is not None:
            since = max(int(since or 0), mark.claims_version - int(run.claims_version))
    return CurrentTruth(run, mark, int(since or 0), int(retracts or 0), False)


def current_truth(
    store: Store,
    project: Project,
    *,
    method: str | None = None,
    refit: Refit = "never",
    n_items: int | None = None,
) -> CurrentTruth:
    """The project's current stored run (of ``method``, if given), fitting again as ``refit``
    allows (see the module docstring); ``n_items`` sizes the ``due`` threshold (default: the
    run's item count)."""
    wanted = None if method is None else effective_method(project_schema(project), method)
    truth = _read(store, project, wanted)
    size = (
        n_items if n_items is not None else int(truth.run.n_items) if truth.run is not None else 0
    )
    if refit == "never" or not (truth.stale if refit == "stale" else truth.due(size)):
        return truth
    with refit_lock(store, project, wait=truth.run is None) as got:
        if not got:
            return truth  # another caller is fitting: the stale run will do meanwhile
        truth = _read(store, project, wanted)  # someone may have fitted while this one waited
        if not (truth.stale if refit == "stale" else truth.due(size)):
            return truth
        made = resolve_and_store(store, project, wanted or DEFAULT_METHOD)
        fitted = _read(store, project, wanted)
        mine = made.run is not None and fitted.run is not None and made.run.run_id == fitted.run.id
        return CurrentTruth(
            fitted.run,
            fitted.mark,
            fitted.new_claims,
            fitted.retractions,
            True,
            made if mine else None,
        )


def load_truth(
    store: Store, truth: CurrentTruth, *, with_probs: bool = False, with_sources: bool = False
) -> Resolution:
    """The run of ``truth`` as a ``Resolution``; ``NotResolved`` before the first run. A run this
    process just fitted is returned as fitted (it holds the probabilities and sources already)."""
    if truth.fitted is not None:
        return truth.fitted
    if truth.run is None:
        raise NotResolved(
            "the project has no resolved labels yet: run `veritag resolve --project NAME` "
            "or POST /api/v1/projects/{name}/resolve first"
        )
    with store.engine.connect() as conn:
        return load_resolution(conn, truth.run, with_probs=with_probs, with_sources=with_sources)


def current_resolution(
    store: Store, project: Project, method: str | None = None
) -> tuple[Resolution, bool]:
    """For a command that must cover every claim: the current run as a ``Resolution``, fitted
    again (and stored) first if any claim or gold label came since; and whether it was."""
    truth = current_truth(store, project, method=method, refit="stale")
    return load_truth(store, truth), truth.refitted
