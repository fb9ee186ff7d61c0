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

With ``items_parquet`` the items come from Parquet files instead (the layout ``veritag export
--format parquet-dataset`` writes: the external ``id``, ``text`` and each field its own column),
read by ``ray.data.read_parquet`` on the cluster, so no item's text passes through the driver or
the database. The driver sends the actors the external ids to leave alone (the training items,
and those claimed under the fit's key already), maps the ids of each labeled batch to the
project's items, and writes the claims as above. Rows whose id is no item of the project are
counted, not written.

Actors keep their vectors only for the batch at hand, not in the store. The store lives with the
driver, and a cluster's worth of vectors would make a large table. A GPU cluster runs the same
code, with ``actor_gpus`` set.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa
from numpy.typing import NDArray

from ..errors import VeritagError
from ..io.exporter import column_name
from ..io.readers import dataset_files
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
#: What a Parquet actor did with each row: labeled it, or left it alone as an item claimed under
#: the fit's key already, a training item, or a row without text.
_LABELED, _CLAIMED, _TRAINING, _EMPTY = 0, 1, 2, 3


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

    def label(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """The probabilities of ``texts``; their vectors are dropped once they are labeled."""
        probs = self.predict(self.model, texts, self.classes)
        self.cache.vectors.clear()
        return probs

    def __call__(self, batch: dict[str, NDArray[Any]]) -> dict[str, NDArray[Any]]:
        return {"id": batch["id"], "probs": self.label(batch["text"].tolist())}


def _member(values: NDArray[Any], sorted_set: NDArray[Any]) -> NDArray[np.bool_]:
    """Which of ``values`` are in ``sorted_set`` (sorted, unique), without re-sorting it."""
    at = np.searchsorted(sorted_set, values)
    found = np.zeros(len(values), dtype=bool)
    inside = at < len(sorted_set)
    found[inside] = sorted_set[at[inside]] == values[inside]
    return found


class _ParquetLabeling(_Labeling):
    """A Ray Data actor for Parquet rows: labels those that are neither training items nor
    claimed under the fit's key already (``skip``: the driver's two sorted external id arrays,
    in the object store), and says for each row what it did (``_LABELED`` ...)."""

    def __init__(
        self,
        labeler: str | Callable[[], Labeler],
        fitted: Any,
        classes: list[str],
        predict: Callable[[Labeler, Sequence[str], Sequence[str]], NDArray[np.float64]],
        fields: Sequence[str],
        columns: dict[str, str],
        skip: list[Any],
    ) -> None:
        super().__init__(labeler, fitted, classes, predict)
        self.fields = fields
        self.columns = columns
        self.training, self.claimed = _ray().get(skip[0])  # a list, so Ray passes the ref as is

    def __call__(self, batch: pa.Table) -> dict[str, NDArray[Any]]:  # type: ignore[override]
        from ..automation.autolabel import labeler_text

        ids = np.array(["" if v is None else str(v) for v in batch["id"].to_pylist()], dtype=str)
        data = {f: batch[c].to_pylist() for f, c in self.columns.items()}
        texts = [
            labeler_text(text, {f: data[f][i] for f in self.fields}, self.fields)
            for i, text in enumerate(batch["text"].to_pylist())
        ]
        state = np.full(len(ids), _LABELED, dtype=np.int8)
        state[np.array([not t for t in texts], dtype=bool)] = _EMPTY
        state[_member(ids, self.claimed)] = _CLAIMED
        state[_member(ids, self.training)] = _TRAINING
        todo = np.flatnonzero(state == _LABELED)
        probs = np.zeros((len(ids), len(self.classes)))
        if todo.size:
            probs[todo] = self.label([texts[i] for i in todo])
        return {"id": ids, "state": state, "probs": probs}


def _training_rows(
    conn: sa.Connection, project: Project, item_ids: NDArray[np.int64]
) -> list[sa.Row[Any]]:
    """The ``(id, text, data, external_id)`` rows of ``item_ids`` (sorted), in id order."""
    rows: list[sa.Row[Any]] = []
    for start in range(0, item_ids.size, _IN_CHUNK):
        chunk = item_ids[start : start + _IN_CHUNK].tolist()
        rows += conn.execute(
            sa.select(Item.id, Item.text, Item.data, Item.external_id)
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


def _item_ids(store: Store, project: Project, external: Sequence[str]) -> dict[str, int]:
    """The project's item id of each of ``external`` that names one of its items."""
    found: dict[str, int] = {}
    with store.engine.connect() as conn:
        for start in range(0, len(external), _IN_CHUNK):
            chunk = list(external[start : start + _IN_CHUNK])
            found.update(
                conn.execute(
                    sa.select(Item.external_id, Item.id).where(
                        Item.project_id == project.id, Item.external_id.in_(chunk)
                    )
                ).all()
            )
    return found


def _parquet_columns(
    path: Path, fields: Sequence[str]
) -> tuple[list[dict[str, Any]], dict[str, str], int]:
    """The row groups of the Parquet files at ``path`` (a file, folder or glob), the column of
    each of ``fields`` (named as the exporter names an item's fields), and their rows, read from
    the files' footers. A file without the id, the text or a field's column is refused, named."""
    files = dataset_files(path) or [path]
    columns = {f: column_name(f, "field.", {}) for f in fields}
    groups: list[dict[str, Any]] = []
    rows = 0
    for file in files:
        try:
            meta = pq.ParquetFile(file).metadata
        except (OSError, pa.ArrowException) as exc:
            raise VeritagError(f"{file}: not a readable Parquet file: {exc}") from None
        names = set(meta.schema.to_arrow_schema().names)
        missing = next((c for c in ("id", "text", *columns.values()) if c not in names), None)
        if missing is not None:
            raise VeritagError(
                f"{file}: no column {missing!r}; --items-parquet reads the item's external id "
                "(id), its text (text) and each --field, as `veritag export --format "
                "parquet-dataset` writes them"
            )
        rows += meta.num_rows
        groups += [{"file": str(file), "group": g} for g in range(meta.num_row_groups)]
    return groups, columns, rows


def _read_groups(batch: dict[str, NDArray[Any]], columns: list[str]) -> pa.Table:
    """A Ray Data task: the ``columns`` of the row groups in ``batch``, read where it runs.

    Not ``ray.data.read_parquet``: its threaded path listing fails on a race where fsspec is
    installed without aiohttp (``cannot import name 'HTTPFileSystem'``)."""
    return pa.concat_tables(
        pq.ParquetFile(file).read_row_group(int(group), columns=columns)
        for file, group in zip(batch["file"].tolist(), batch["group"].tolist())
    )


def _known(
    store: Store, project: Project, batch: dict[str, NDArray[Any]], probs: NDArray[np.float64]
) -> tuple[list[int], NDArray[np.float64], int, list[str]]:
    """A Parquet batch's labeled rows of the project's items: their item ids and probabilities,
    with how many of its rows are such items to predict (labeled now or before), and the
    external ids of its rows that name no item of the project."""
    external, state = batch["id"].tolist(), batch["state"]
    asked = np.flatnonzero((state == _LABELED) | (state == _EMPTY))
    items = _item_ids(store, project, [external[i] for i in asked])
    missing = [external[i] for i in asked if external[i] not in items]
    labeled = [i for i in asked if state[i] == _LABELED and external[i] in items]
    counted = len(labeled) + int((state == _CLAIMED).sum())
    return [items[external[i]] for i in labeled], probs[labeled], counted, missing


def _sorted_ids(values: Iterator[str] | Sequence[str]) -> NDArray[np.str_]:
    """``values`` as ``_member`` takes them: sorted and unique."""
    return np.unique(np.array(list(values), dtype=str))


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
    items_parquet: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    unknown: Callable[[list[str]], None] | None = None,
) -> AutolabelResult:
    """``autolabel_project`` with the items other than the training ones labeled on ``ray`` (see
    the module docstring); the same arguments, checks, claims and result.

    ``ray`` comes from ``ray_session``. A ``labeler`` factory goes to the actors, so it must
    pickle (with cloudpickle). ``actors`` defaults to the cluster's CPUs; each actor takes one
    CPU and ``actor_gpus`` GPUs. ``batch_size`` items go to an actor at a time and come back to
    be written in one transaction. ``progress(done, total)`` hears of each written batch.

    With ``items_parquet`` the items to label are read from those Parquet files (the cluster
    must see the path); ``predicted`` then counts their rows of the project's items, and
    ``unknown`` hears each batch's external ids that name no item of the project.
    """
    # Same floor as ``automation``: a late edge, taken only when the Ray engine is asked for.
    from ..automation import autolabel as local

    if batch_size < 1 or page < 1 or (actors is not None and actors < 1):
        raise VeritagError("--actors, the batch size and the page size must be at least 1")
    classes = local.autolabel_classes(project, labeler, folds)
    parquet = None if items_parquet is None else _parquet_columns(items_parquet, fields)
    make = local.store_labeler(store, labeler)
    with store.engine.connect() as conn:
        humans = human_labels(conn, project)
        training = _training_rows(conn, project, humans.item_ids)
    ids, texts = local.items_with_text(training, fields)
    codes = humans.lookup(ids)[0]
    probe = make()
    key = local.autolabel_key(
        str(probe.version), ids, np.array(classes, dtype=object)[codes], fields
    )
    source = sa.select(Source.id).where(
        Source.project_id == project.id, Source.kind == "model", Source.name == probe.name
    )
    claimed = sa.exists().where(
        Claim.item_id == Item.id,
        Claim.source_id == source.scalar_subquery(),
        Claim.dedup_key == key,
    )
    refs: list[Any] = []  # the store's pages, batch by batch
    skip: list[Any] = []  # or the external ids that Parquet actors leave alone
    if parquet is None:
        predicted, total = 0, 0
        with store.engine.connect() as conn:
            for rows in _pages(conn, project, claimed, page):
                rest_ids, rest_texts = local.items_with_text(rows, fields)
                rest = humans.lookup(rest_ids)[0] < 0
                todo = rest & ~np.isin(rest_ids, [r[0] for r in rows if r[3]])
                predicted, total = predicted + int(rest.sum()), total + int(todo.sum())
                frame = pd.DataFrame({"id": rest_ids, "text": rest_texts})[todo]
                # a block per batch: Ray Data hands blocks, not rows, to idle actors
                refs += [
                    ray.put(frame[a : a + batch_size]) for a in range(0, len(frame), batch_size)
                ]
    else:
        with store.engine.connect() as conn:
            done_before = conn.scalars(
                sa.select(Item.external_id).where(Item.project_id == project.id, claimed)
            ).all()
        skip = [ray.put((_sorted_ids(r[3] for r in training), _sorted_ids(done_before)))]
        predicted, total = 0, parquet[2]
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
        actor = {
            "labeler": labeler,
            "fitted": _fitted_state(fit.model),
            "classes": classes,
            "predict": local.predict_rows,
        }
        pool = {
            "batch_size": batch_size,
            "compute": ray.data.ActorPoolStrategy(
                size=actors or max(int(ray.cluster_resources().get("CPU", 1)), 1)
            ),
            "num_cpus": 1,
            "num_gpus": actor_gpus,
        }
        if parquet is None:
            labeling = ray.data.from_pandas_refs(refs).map_batches(
                _Labeling, fn_constructor_kwargs=actor, batch_format="numpy", **pool
            )
        else:
            groups, columns, _ = parquet
            read = {"columns": ["id", "text", *dict.fromkeys(columns.values())]}
            labeling = (
                ray.data.from_items(groups, override_num_blocks=len(groups))
                .map_batches(_read_groups, fn_kwargs=read, batch_size=1, batch_format="numpy")
                .map_batches(
                    _ParquetLabeling,
                    fn_constructor_kwargs={
                        **actor,
                        "fields": fields,
                        "columns": columns,
                        "skip": skip,
                    },
                    batch_format="pyarrow",
                    **pool,
                )
            )
        for batch in labeling.iter_batches(batch_size=batch_size, batch_format="numpy"):
            ids_done, probs = batch["id"].tolist(), np.asarray(batch["probs"])
            if parquet is not None:
                ids_done, probs, counted, missing = _known(store, project, batch, probs)
                predicted += counted
                if missing and unknown is not None:
                    unknown(missing)
            added += local.write_model_claims(store, project, fit.model, fit.key, ids_done, probs)
            done += len(batch["id"])
            if progress is not None:
                progress(done, total)
    return local.AutolabelResult(
        trained=int(ids.size),
        predicted=predicted,
        claims_added=added,
        source=f"{fit.model.name}@{fit.model.version}",
        accuracy=fit.accuracy,
    )
