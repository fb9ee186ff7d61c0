"""``veritag autolabel --engine ray``: the auto-labeler's per-item work on a Ray cluster.

The claims are the local run's (``veritag.automation.autolabel``), from the same functions. The
driver trains as the local run does: it cross-fits the labeler on the human labels, fits one on
all of them, and stores the out-of-fold rows of the training items. Human labels are few next to
the items a model labels, and the driver's store caches the training vectors.

Every other item with text then goes through Ray Data. The store is read in id-ordered pages.
Each page goes to Ray's object store as it is read, so the driver holds one page at a time.
``map_batches`` sends the pages to a pool of actors. Each actor builds the labeler once (it loads
the embedding model, or opens the LLM client), takes the driver's fitted classifier, and returns
each item's probabilities. The driver writes them back as they arrive, one ``Store.begin_write``
transaction per batch, under the fit's dedup key (``autolabel:<version>:<digest>``). So a run cut
short keeps what it wrote, and a second run on the same labels adds nothing. Items that already
hold a claim under that key are not sent at all, so that second run also embeds nothing new.

Actors keep their vectors only for the batch at hand, not in the store. The store lives with the
driver, and a cluster's worth of vectors would make a large table. A GPU cluster runs the same
code, with ``actor_gpus`` set.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from numpy.typing import NDArray

from ..errors import VeritagError
from ..labelers import Labeler, MemoryCache
from ..labelers.base import ScikitLabeler
from ..labelers.registry import DEFAULT_LABELER, labeler_factory
from ..resolve import human_labels
from ..store.engine import Store
from ..store.models import Claim, Item, Project, Source
from .ray_resolve import _ray

if TYPE_CHECKING:
    from ..automation.autolabel import AutolabelResult

__all__ = ["autolabel_on_ray", "ray_session"]

#: Item ids per ``IN (...)`` query, below every driver's parameter limit.
_IN_CHUNK = 5_000


def _reachable(address: str) -> None:
    """Refuse an address where nothing listens, at once: Ray itself retries for minutes."""
    if address == "auto":
        return  # Ray looks for the cluster `ray start` runs here, and says so if there is none
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise VeritagError(
            f"bad Ray address {address!r}; use HOST:PORT (e.g. 127.0.0.1:6379), "
            "ray://HOST:PORT or auto"
        )
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise VeritagError(
            f"no Ray cluster answers at {address} ({exc.strerror or exc}); start one with "
            "`ray start --head`, or check the address"
        ) from None


@contextmanager
def ray_session(address: str | None = None) -> Iterator[ModuleType]:
    """Ray, joined to the cluster at ``address`` (``auto``: the one ``ray start`` runs here), or
    to one started on this machine when it is None and none is running yet.

    A cluster this started is shut down at the end; one it joined is left running.
    """
    ray = _ray()
    if address is not None:
        _reachable(address)
    started = not ray.is_initialized()
    if started:
        try:
            ray.init(
                address=address,
                include_dashboard=False,
                log_to_driver=False,
                logging_level=logging.WARNING,
            )
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise VeritagError(f"could not join the Ray cluster at {address}: {exc}") from exc
    try:
        yield ray
    finally:
        if started:
            ray.shutdown()


def _fitted_state(model: Labeler) -> Any:
    """What actors take from the driver's fitted labeler. For a scikit labeler, that is its
    classifier and classes; its encoder and the store's vector cache stay behind. Any other
    labeler goes whole (it must pickle)."""
    if isinstance(model, ScikitLabeler):
        return {"classes_": model.classes_, "model_": model.model_}
    return model


class _Labeling:
    """A Ray Data actor: builds the labeler once, fitted as the driver's, then labels batches."""

    def __init__(
        self,
        labeler: str | Callable[[], Labeler],
        fitted: Any,
        classes: list[str],
        predict: Callable[[Labeler, Sequence[str], Sequence[str]], NDArray[np.float64]],
    ) -> None:
        self.cache = MemoryCache()
        if isinstance(fitted, Labeler):
            self.model = fitted
        else:
            make = (
                labeler_factory(labeler, cache=self.cache) if isinstance(labeler, str) else labeler
            )
            self.model = make()
            for name, value in fitted.items():
                setattr(self.model, name, value)
        self.classes = classes
        self.predict = predict

    def __call__(self, batch: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        probs = self.predict(self.model, batch["text"].tolist(), self.classes)
        self.cache.vectors.clear()  # a batch's vectors are done with once it is labeled
        return {"id": batch["id"], "probs": probs}


def _training_rows(
    conn: sa.Connection, project: Project, item_ids: NDArray[np.int64]
) -> list[sa.Row[Any]]:
    """The ``(id, text, data)`` rows of ``item_ids`` (sorted), in id order."""
    rows: list[sa.Row[Any]] = []
    for start in range(0, item_ids.size, _IN_CHUNK):
        chunk = item_ids[start : start + _IN_CHUNK].tolist()
        rows += conn.execute(
            sa.select(Item.id, Item.text, Item.data)
            .where(Item.project_id == project.id, Item.id.in_(chunk))
            .order_by(Item.id)
        ).all()
    return rows


def _pages(
    conn: sa.Connection, project: Project, claimed: sa.ColumnElement[bool], page: int
) -> Iterator[list[sa.Row[Any]]]:
    """The project's ``(id, text, data, claimed)`` rows in id-ordered pages of ``page``."""
    after = None
    while True:
        query = sa.select(Item.id, Item.text, Item.data, claimed).where(
            Item.project_id == project.id
        )
        if after is not None:
            query = query.where(Item.id > after)
        rows = conn.execute(query.order_by(Item.id).limit(page)).all()
        if not rows:
            return
        yield rows
        after = rows[-1][0]


def autolabel_on_ray(
    store: Store,
    project: Project,
    ray: ModuleType,
    *,
    labeler: str | Callable[[], Labeler] = DEFAULT_LABELER,
    fields: Sequence[str] = (),
    folds: int = 5,
    seed: int = 0,
    actors: int | None = None,
    actor_gpus: float = 0.0,
    batch_size: int = 256,
    page: int = 10_000,
    progress: Callable[[int, int], None] | None = None,
) -> AutolabelResult:
    """``autolabel_project`` with the items other than the training ones labeled on ``ray`` (see
    the module docstring); the same arguments, checks, claims and result.

    ``ray`` comes from ``ray_session``. A ``labeler`` factory goes to the actors, so it must
    pickle (with cloudpickle). ``actors`` defaults to the cluster's CPUs; each actor takes one
    CPU and ``actor_gpus`` GPUs. ``batch_size`` items go to an actor at a time and come back to
    be written in one transaction. ``progress(done, total)`` hears of each written batch.
    """
    # Same floor as ``automation``: a late edge, taken only when the Ray engine is asked for.
    from ..automation import autolabel as local

    if batch_size < 1 or page < 1 or (actors is not None and actors < 1):
        raise VeritagError("--actors, the batch size and the page size must be at least 1")
    classes = local.autolabel_classes(project, labeler, folds)
    make = local.store_labeler(store, labeler)
    with store.engine.connect() as conn:
        humans = human_labels(conn, project)
        ids, texts = local.items_with_text(_training_rows(conn, project, humans.item_ids), fields)
    codes = humans.lookup(ids)[0]
    probe = make()
    key = local.autolabel_key(
        str(probe.version), ids, np.array(classes, dtype=object)[codes], fields
    )
    with store.engine.connect() as conn:
        source = sa.select(Source.id).where(
            Source.project_id == project.id, Source.kind == "model", Source.name == probe.name
        )
        claimed = sa.exists().where(
            Claim.item_id == Item.id,
            Claim.source_id == source.scalar_subquery(),
            Claim.dedup_key == key,
        )
        predicted, total, refs = 0, 0, []
        for rows in _pages(conn, project, claimed, page):
            rest_ids, rest_texts = local.items_with_text(rows, fields)
            rest = humans.lookup(rest_ids)[0] < 0
            todo = rest & ~np.isin(rest_ids, [r[0] for r in rows if r[3]])
            predicted, total = predicted + int(rest.sum()), total + int(todo.sum())
            frame = pd.DataFrame({"id": rest_ids, "text": rest_texts})[todo]
            # a block per batch: Ray Data hands blocks, not rows, to idle actors
            refs += [ray.put(frame[a : a + batch_size]) for a in range(0, len(frame), batch_size)]
    fit = local.fit_autolabeler(
        project,
        make,
        ids,
        texts,
        codes,
        classes,
        fields=fields,
        folds=folds,
        seed=seed,
        full=total > 0,
    )
    added = local.write_model_claims(store, project, fit.model, fit.key, ids.tolist(), fit.oof)
    done = 0
    if progress is not None:
        progress(done, total)
    if total:
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False  # the caller shows one, of claims written
        context.print_on_execution_start = False
        labeling = ray.data.from_pandas_refs(refs).map_batches(
            _Labeling,
            fn_constructor_kwargs={
                "labeler": labeler,
                "fitted": _fitted_state(fit.model),
                "classes": classes,
                "predict": local.predict_rows,
            },
            batch_size=batch_size,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(
                size=actors or max(int(ray.cluster_resources().get("CPU", 1)), 1)
            ),
            num_cpus=1,
            num_gpus=actor_gpus,
        )
        for batch in labeling.iter_batches(batch_size=batch_size, batch_format="numpy"):
            ids_done = batch["id"].tolist()
            added += local.write_model_claims(
                store, project, fit.model, fit.key, ids_done, np.asarray(batch["probs"])
            )
            done += len(ids_done)
            if progress is not None:
                progress(done, total)
    return local.AutolabelResult(
        trained=int(ids.size),
        predicted=predicted,
        claims_added=added,
        source=f"{fit.model.name}@{fit.model.version}",
        accuracy=fit.accuracy,
    )
