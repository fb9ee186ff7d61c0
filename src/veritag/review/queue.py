"""The reviewer's queue: which items deserve a second look, most suspicious first.

The queue asks the truth engine, on the newest stored truth run (a read never fits):

* ``uncertain``: the resolved label's posterior probability is below ``UNCERTAIN``;
* ``disagreement``: the tutors' standing claims on the item do not all say the same;
* ``majority_doubted``: ``truth.item_issues`` finds the tutors' majority label unlikely
  under the posterior (the engine trusts the minority more);
* ``suspect_claim``: ``truth.claim_issues`` finds a human claim unlikely once its own vote is
  taken out of the item's posterior.

An item is left out once a reviewer reviewed it after its newest claim (any later claim brings it
back). Items pinned by gold never come up.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa

from ..resolve import CurrentTruth, Resolution, current_truth, load_project_claims, load_truth
from ..resolve.core import BASES
from ..schema import BaseSchema, canonical_json
from ..store.engine import Store
from ..store.models import Claim, Gold, Item, Project, Review, Source
from ..store.queries import (
    Watermark,
    claims_watermark,
    project_schema,
    source_names,
    standing_claims,
    standing_human_labels,
)
from ..truth import claim_issues, item_issues, source_reliability

__all__ = ["SUSPECT", "UNCERTAIN", "QueueEntry", "review_queue"]

#: A resolved label less probable than this is ``uncertain``.
UNCERTAIN = 0.8
#: A claim or a majority label less probable than this (own vote left out) is suspect.
SUSPECT = 0.5
#: The basis code of an item pinned by a gold label (see ``resolve.core.BASES``).
_GOLD = BASES.index("gold")


@dataclass
class QueueEntry:
    """One item to review: what it is, what was resolved, who said what, and why it is here."""

    item_id: int
    external_id: str
    text: str | None
    data: Any
    label: Any
    probability: float | None
    basis: str | None
    score: float
    reasons: list[dict[str, str]] = field(default_factory=list)
    claims: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Signals:
    """Per-item evidence gathered before ranking (``score``: 0 sure .. 1 surely wrong)."""

    score: float = 0.0
    reasons: list[dict[str, str]] = field(default_factory=list)

    def add(self, code: str, message: str, score: float) -> None:
        self.reasons.append({"code": code, "message": message})
        self.score = max(self.score, score)


def _run_of(store: Store, project: Project) -> tuple[CurrentTruth, Any]:
    """The newest stored truth run and its posteriors (None before the first run): a GET reads
    what is stored and never fits (``resolve.current_truth``)."""
    truth = current_truth(store, project)
    return truth, load_truth(store, truth, with_probs=True) if truth.run is not None else None


def _human_votes(
    conn: sa.Connection, project: Project, schema: BaseSchema
) -> dict[int, dict[int, str]]:
    """Each item's standing human claims as ``{item: {source: vote key}}``; a source's newest claim
    counts."""
    rows = conn.execute(
        sa.select(Claim.item_id, Claim.source_id, Claim.value)
        .where(standing_human_labels(project.id))
        .order_by(Claim.id)
    )
    votes: dict[int, dict[int, str]] = {}
    for item, source, value in rows:
        votes.setdefault(item, {})[source] = canonical_json(schema.vote_key(value))
    return votes


def _shown(key: str) -> str:
    """A vote key (canonical JSON) as a reader would write it: text bare, anything else as JSON."""
    value = json.loads(key)
    return value if isinstance(value, str) else key


def _reviewed(conn: sa.Connection, project: Project) -> set[int]:
    """Items whose newest claim is a reviewer's (reviewed, and nothing said since)."""
    newest = (
        sa.select(Claim.item_id, sa.func.max(Claim.id).label("last"))
        .where(Claim.project_id == project.id)
        .group_by(Claim.item_id)
        .subquery()
    )
    done = (
        sa.select(Review.item_id, sa.func.max(Review.claim_id).label("last"))
        .where(Review.project_id == project.id)
        .group_by(Review.item_id)
        .subquery()
    )
    return set(
        conn.scalars(
            sa.select(newest.c.item_id)
            .join(done, done.c.item_id == newest.c.item_id)
            .where(done.c.last >= newest.c.last)
        )
    )


def _engine_doubts(
    store: Store,
    project: Project,
    run: Any,
    res: Any,
    schema: BaseSchema,
    signals: dict[int, _Signals],
) -> None:
    """Add the truth engine's doubts (``item_issues`` on the majority, ``claim_issues`` per claim)
    for a single-label project, on the claims the run covered."""
    classes = schema.classes()
    if not classes or res.probs is None or schema.type == "multilabel":
        return
    with store.engine.connect() as conn:
        mark = claims_watermark(conn, project_id=project.id)
        pc = load_project_claims(
            conn, project, Watermark(run.max_claim_id, mark.max_gold_id, run.gold_count)
        )
        kinds = source_names(conn, ids=pc.source_ids.tolist())
    k = len(pc.classes)
    if not pc.item_ids.size or res.probs.shape[1] != k:
        return
    post = np.full((pc.item_ids.size, k), 1.0 / k)
    pos, found = res.lookup(pc.item_ids)
    post[found] = res.probs[pos[found]]
    claims = pc.claims()
    human = np.array([kinds[int(s)][0] == "human" for s in pc.source_ids], dtype=bool)
    is_human = human[claims.source] if claims.source.size else np.zeros(0, bool)
    if not is_human.any():
        return
    names = [kinds[int(s)][1] for s in pc.source_ids]
    # The tutors' majority per item, and how likely the engine thinks it is.
    item, label = claims.item[is_human], claims.label[is_human]
    counts = np.zeros((pc.item_ids.size, k), np.int64)
    np.add.at(counts, (item, label), 1)
    ranked = np.sort(counts, axis=1)
    strict = ranked[:, -1] > (ranked[:, -2] if k > 1 else 0)  # a tie has no majority to doubt
    majority = counts.argmax(axis=1)
    issues = item_issues(post, majority, threshold=SUSPECT)
    for i in np.flatnonzero(strict & issues.is_issue).tolist():
        q = float(issues.quality[i])
        signals.setdefault(int(pc.item_ids[i]), _Signals()).add(
            "majority_doubted",
            f"the tutors' majority '{classes[majority[i]]}' is right with probability {q:.2f}; "
            f"the engine prefers '{classes[issues.suggested[i]]}'",
            1.0 - q,
        )
    confusion = source_reliability(claims, post).confusion[:, 0]
    doubted = claim_issues(claims, post, confusion, threshold=SUSPECT)
    # A lone claim left out leaves only the prior: that is unchecked, not suspect.
    others = claims.claims_per_item()[claims.item] >= 2
    for j in np.flatnonzero(doubted.is_issue & is_human & others).tolist():
        q = float(doubted.quality[j])
        signals.setdefault(int(pc.item_ids[claims.item[j]]), _Signals()).add(
            "suspect_claim",
            f"{names[claims.source[j]]}'s '{classes[claims.label[j]]}' is right with probability "
            f"{q:.2f} given the other evidence",
            1.0 - q,
        )


def _claims_of(conn: sa.Connection, item_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Every standing claim on ``item_ids``, oldest first, with its source's name and kind."""
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in item_ids}
    if not item_ids:
        return out
    rows = conn.execute(
        sa.select(
            Claim.id,
            Claim.item_id,
            Source.name,
            Source.kind,
            Claim.value,
            Claim.probs,
            Claim.created_at,
        )
        .join(Source, Source.id == Claim.source_id)
        .where(
            Claim.item_id.in_(item_ids),
            standing_claims(),
            sa.or_(Claim.value.is_not(None), Claim.probs.is_not(None)),
        )
        .order_by(Claim.id)
    )
    for cid, item, name, kind, value, probs, created in rows:
        out[item].append(
            {
                "id": cid,
                "source": name,
                "kind": kind,
                "value": value,
                "probs": probs,
                "created_at": created.isoformat() if created is not None else None,
            }
        )
    return out


def review_queue(
    store: Store, project: Project, *, limit: int = 20, uncertain: float = UNCERTAIN
) -> tuple[list[QueueEntry], int, CurrentTruth]:
    """The items most worth a reviewer's look, most suspicious first, how many there are in all,
    and the stored run they were judged by (before the first run: tutors' disagreements only)."""
    schema = project_schema(project)
    truth, res = _run_of(store, project)
    with store.engine.connect() as conn:
        votes = _human_votes(conn, project, schema)
        reviewed = _reviewed(conn, project)
    signals: dict[int, _Signals] = {}
    if res is None:
        res = Resolution(
            np.zeros(0, np.int64),
            np.empty(0, object),
            np.zeros(0),
            np.zeros(0, np.int64),
            np.empty(0, object),
        )
    basis = res.basis if res.basis is not None else np.zeros(res.item_ids.size, np.int8)
    for item, conf, b in zip(
        res.item_ids.tolist(), res.confidence.tolist(), basis.tolist(), strict=True
    ):
        if conf < uncertain and b != _GOLD:
            signals.setdefault(item, _Signals()).add(
                "uncertain",
                f"the resolved label is right with probability {conf:.2f} only",
                1.0 - conf,
            )
    for item, by_source in votes.items():
        tally = Counter(by_source.values())
        if len(tally) > 1:
            counted = tally.most_common()
            said = ", ".join(f"{_shown(key)} ×{n}" for key, n in counted)
            signals.setdefault(item, _Signals()).add(
                "disagreement", f"tutors disagree: {said}", 1.0 - counted[0][1] / len(by_source)
            )
    if truth.run is not None:
        _engine_doubts(store, project, truth.run, res, schema, signals)
    pos_of = {item: i for i, item in enumerate(res.item_ids.tolist())}
    with store.engine.connect() as conn:  # gold as it stands, also where the run predates it
        gold = set(conn.scalars(sa.select(Gold.item_id).where(Gold.project_id == project.id)))
    ranked = sorted(
        (
            (s.score, item)
            for item, s in signals.items()
            if item not in reviewed and item not in gold
        ),
        key=lambda pair: (-pair[0], pair[1]),
    )
    chosen = [item for _, item in ranked[: max(limit, 0)]]
    with store.engine.connect() as conn:
        items = (
            {
                r.id: r
                for r in conn.execute(
                    sa.select(Item.id, Item.external_id, Item.text, Item.data).where(
                        Item.id.in_(chosen)
                    )
                )
            }
            if chosen
            else {}
        )
        claims = _claims_of(conn, chosen)
    out = []
    for item in chosen:
        i = pos_of.get(item)
        row = items[item]
        out.append(
            QueueEntry(
                item_id=item,
                external_id=row.external_id,
                text=row.text,
                data=row.data,
                label=res.labels[i] if i is not None else None,
                probability=float(res.confidence[i]) if i is not None else None,
                basis=BASES[int(basis[i])] if i is not None else None,
                score=round(signals[item].score, 4),
                reasons=signals[item].reasons,
                claims=claims[item],
            )
        )
    return out, len(ranked), truth
