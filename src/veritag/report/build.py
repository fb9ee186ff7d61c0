"""What a report says, as plain data: numbers and names, no rendering.

``build_report`` reads one truth result and the claims it was fit on and collects what a
project owner asks first: how sure the labels are, which sources to trust (overall and per
domain), whether the humans agree at all, and which items and claims to look at again. The
renderers (``render_text``, ``render_html``) and ``Report.to_dict`` only format this.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..truth import (
    Claims,
    TruthResult,
    claim_issues,
    fleiss_kappa,
    item_issues,
    krippendorff_alpha,
    pairwise_cohen_kappa,
    source_reliability,
)

__all__ = [
    "AgreementStats",
    "ClaimRow",
    "ClassRow",
    "DomainRow",
    "DomainScore",
    "Domains",
    "Histogram",
    "ItemRow",
    "Report",
    "SourceConfusion",
    "SourceQuality",
    "Summary",
    "build_report",
    "plain",
    "stale_note",
]

#: z for the 95% Wilson interval on a source's accuracy.
_Z = 1.959963984540054
#: Pairwise kappa builds a raters x raters matrix; above this many raters it is skipped.
MAX_PAIRWISE_RATERS = 3000
#: Sources whose confusion matrices a report keeps (the most active ones).
N_CONFUSIONS = 4
_HIST_BINS = 20


@dataclass(frozen=True)
class Summary:
    """The project at a glance.

    ``mean_confidence`` and ``low_confidence_share`` are over items with at least one claim
    (items without claims only carry the prior); ``low_confidence_share`` is the share of those
    whose resolved label has posterior probability below ``low_confidence_threshold``.
    """

    items: int
    items_with_claims: int
    claims: int
    human_claims: int
    model_claims: int
    sources: int
    humans: int
    models: int
    classes: int
    method: str
    n_iter: int
    converged: bool
    log_likelihood: float
    prior: tuple[float, ...]
    mean_confidence: float
    low_confidence_share: float
    low_confidence_threshold: float


@dataclass(frozen=True)
class DomainScore:
    """One source in one domain: expected accuracy (NaN without claims) over ``n_claims``."""

    accuracy: float
    n_claims: int


@dataclass(frozen=True)
class SourceQuality:
    """One source.

    ``accuracy`` is the engine's expected share of right answers (a model's top class counts).
    ``accuracy_low``/``accuracy_high`` bound it with a 95% Wilson score interval over the
    source's ``n_claims`` answers: sampling uncertainty only, treating the resolved truth as
    known, so it is too narrow where the truth itself is unsure. ``agreement`` is the share of
    its answers equal to the resolved label. ``domains`` is aligned with ``Report.domains.rows``.
    """

    index: int
    name: str
    kind: str
    n_claims: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    agreement: float
    domains: tuple[DomainScore, ...] = ()


@dataclass(frozen=True)
class AgreementStats:
    """Chance-corrected agreement among the humans' hard claims (NaN where undefined).

    ``mean_pairwise_kappa`` averages Cohen's kappa over the ``n_pairs`` rater pairs that share at
    least two items and have a defined kappa; it is NaN with a ``note`` when there are more than
    ``MAX_PAIRWISE_RATERS`` raters. ``alpha_ordinal`` is only computed for ordinal scales.
    """

    fleiss_kappa: float
    alpha_nominal: float
    alpha_ordinal: float | None
    mean_pairwise_kappa: float
    n_pairs: int
    raters: int
    claims: int
    pairable_items: int
    duplicates_dropped: int = 0
    note: str | None = None


@dataclass(frozen=True)
class ItemRow:
    """An item whose resolved label is unsure; ``votes`` counts answers per class name
    (humans and models' top classes)."""

    index: int
    item: int | str
    label: str
    confidence: float
    n_claims: int
    runner_up: str | None
    runner_up_prob: float
    votes: dict[str, int]


@dataclass(frozen=True)
class ClaimRow:
    """A human claim the other evidence contradicts; ``quality`` is P(its label is right) with
    its own vote taken out."""

    index: int
    item: int | str
    source: str
    label: str
    quality: float
    resolved: str
    resolved_confidence: float


@dataclass(frozen=True)
class ClassRow:
    """One class: learned prior, items resolved to it, their mean confidence, human answers."""

    name: str
    prior: float
    resolved: int
    mean_confidence: float
    human_claims: int


@dataclass(frozen=True)
class DomainRow:
    name: str
    items: int
    claims: int
    mean_confidence: float


@dataclass(frozen=True)
class Domains:
    """The item groups (e.g. the values of a ``domain`` field) the report is sliced by."""

    field: str | None
    rows: tuple[DomainRow, ...]
    ungrouped_items: int = 0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(r.name for r in self.rows)


@dataclass(frozen=True)
class SourceConfusion:
    """``matrix[k][l]`` = P(the source answers class l | true class k), from the truth result."""

    name: str
    kind: str
    n_claims: int
    matrix: tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class Histogram:
    """Posterior confidence of items with claims: ``counts[i]`` items in [edges[i], edges[i+1])."""

    edges: tuple[float, ...]
    counts: tuple[int, ...]


@dataclass(frozen=True)
class Report:
    """Everything a quality report shows. ``truth`` says which stored truth run the labels come
    from and what came after it (``resolve.CurrentTruth.to_json``: ``run``, ``stale``,
    ``claims_since``, ``refitted``); None for a report built on a result outside the store."""

    summary: Summary
    class_names: tuple[str, ...]
    sources: tuple[SourceQuality, ...]
    agreement: AgreementStats
    uncertain_items: tuple[ItemRow, ...]
    suspect_claims: tuple[ClaimRow, ...]
    classes: tuple[ClassRow, ...]
    confidence: Histogram
    confusions: tuple[SourceConfusion, ...] = ()
    domains: Domains | None = None
    ordinal: bool = False
    notes: tuple[str, ...] = field(default=())
    truth: dict[str, Any] | None = None

    def source(self, name: str) -> SourceQuality:
        """The row of the source called ``name`` (the first, if names repeat)."""
        for row in self.sources:
            if row.name == name:
                return row
        raise KeyError(name)

    def sources_by_accuracy(self) -> list[SourceQuality]:
        """Worst first; sources without claims last."""
        return sorted(self.sources, key=lambda r: (math.isnan(r.accuracy), r.accuracy, r.index))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only: NaN and infinities become None, tuples lists."""
        out = plain(asdict(self))
        out["domains"] = out["domains"] and {**out["domains"], "names": list(self.domains.names)}
        return out


def stale_note(truth: dict[str, Any] | None) -> str | None:
    """What a report on a stale stored run leaves out (None when the run covers everything): the
    one wording the JSON warnings, the HTML page and the command line share."""
    if not truth or not truth.get("stale") or truth.get("run") is None:
        return None
    since = int(truth.get("claims_since") or 0)
    what = f"{since} claim{'s' if since != 1 else ''}" if since else "gold labels"
    return (
        f"these labels come from truth run {truth['run']}, which misses {what} added after it; "
        "resolve the project again (`veritag report` and `veritag resolve` do) to include them"
    )


def plain(value: Any) -> Any:
    """``value`` in plain JSON types: NaN and infinities become None, tuples and arrays lists."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _scalar(value: Any) -> int | str:
    """An item id as a JSON-friendly scalar."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        return str(value)
    return value


def _wilson(p: float, n: int) -> tuple[float, float]:
    if n <= 0 or math.isnan(p):
        return math.nan, math.nan
    z2 = _Z * _Z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z / (1 + z2 / n) * math.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n))
    return max(centre - half, 0.0), min(centre + half, 1.0)


def _mean(values: NDArray[np.float64]) -> float:
    return float(values.mean()) if values.size else math.nan


def _check_len(values: Sequence[Any], size: int, name: str, size_name: str) -> None:
    if len(values) != size:
        raise ValueError(f"{name} has {len(values)} entries but the claims have {size} {size_name}")


def _groups(
    groups: ArrayLike, n_items: int, group_names: Sequence[Any] | None
) -> tuple[NDArray[np.int64], list[str]]:
    """Group index per item (-1: no group) and the group names."""
    g = np.asarray(groups)
    if g.shape != (n_items,):
        raise ValueError(
            f"groups must give one group index per item ({n_items}); got shape {g.shape}"
        )
    if g.size and g.dtype.kind not in "iu":
        raise ValueError(f"groups must hold integer group indices, got dtype {g.dtype}")
    g = g.astype(np.int64)
    if g.size and g.min() < -1:
        raise ValueError("groups must be >= 0, or -1 for an item without a group")
    n_groups = int(g.max()) + 1 if g.size else 0
    if group_names is None:
        names = [str(i) for i in range(n_groups)]
    else:
        names = [str(n) for n in group_names]
        if len(names) < n_groups:
            raise ValueError(
                f"group_names has {len(names)} names but groups go up to {n_groups - 1}"
            )
    return g, names


def _agreement(claims: Claims, human: NDArray[np.bool_], ordinal: bool) -> AgreementStats:
    keep = human[claims.source]
    item, source, label = claims.item[keep], claims.source[keep], claims.label[keep]
    n, k = claims.n_items, claims.n_classes
    # A rater may answer an item twice (a correction); agreement counts the last answer only.
    key = item * claims.n_sources + source
    _, last = np.unique(key[::-1], return_index=True)
    last = np.sort(key.size - 1 - last)
    dropped = int(key.size - last.size)
    item, source, label = item[last], source[last], label[last]
    raters, rater = np.unique(source, return_inverse=True)
    rater = rater.reshape(-1).astype(np.int64)
    fleiss = fleiss_kappa(item, label, n_items=n, n_classes=k)
    alpha = krippendorff_alpha(item, rater, label, n_items=n, n_classes=k)
    alpha_ord = (
        krippendorff_alpha(item, rater, label, n_items=n, n_classes=k, level="ordinal")
        if ordinal
        else None
    )
    note = None
    mean_kappa, n_pairs = math.nan, 0
    if raters.size > MAX_PAIRWISE_RATERS:
        note = f"pairwise kappa skipped: {raters.size} raters (limit {MAX_PAIRWISE_RATERS})"
    elif raters.size >= 2:
        matrix = pairwise_cohen_kappa(
            item, rater, label, n_items=n, n_sources=raters.size, n_classes=k
        )
        upper = matrix[np.triu_indices(raters.size, 1)]
        upper = upper[~np.isnan(upper)]
        n_pairs = int(upper.size)
        mean_kappa = _mean(upper)
    pairable = int((np.bincount(item, minlength=n) >= 2).sum())
    return AgreementStats(
        fleiss_kappa=fleiss,
        alpha_nominal=alpha,
        alpha_ordinal=alpha_ord,
        mean_pairwise_kappa=mean_kappa,
        n_pairs=n_pairs,
        raters=int(raters.size),
        claims=int(item.size),
        pairable_items=pairable,
        duplicates_dropped=dropped,
        note=note,
    )


def build_report(
    claims: Claims,
    result: TruthResult,
    *,
    source_names: Sequence[str],
    source_kinds: Sequence[str],
    class_names: Sequence[Any],
    item_ids: Sequence[Any] | ArrayLike,
    groups: ArrayLike | None = None,
    group_names: Sequence[Any] | None = None,
    group_field: str | None = None,
    ordinal: bool = False,
    top: int = 20,
    threshold: float = 0.9,
) -> Report:
    """Collect a report from ``claims`` and the ``result`` of ``fit_truth`` on them.

    Parameters
    ----------
    claims, result :
        The claims and the truth result fit on exactly these claims.
    source_names, source_kinds :
        One per source index; kinds are ``"human"`` or ``"model"`` (agreement and suspect claims
        use humans only).
    class_names :
        One per class index (shown with ``str``).
    item_ids :
        The external id of each item index (ints or strings).
    groups, group_names, group_field :
        Optional item groups (e.g. domains): an int per item, ``-1`` for none; their names; and
        the name of the field they came from (only shown).
    ordinal :
        The classes are an ordered scale (ratings): also report ordinal Krippendorff's alpha.
    top :
        How many uncertain items and suspect claims to keep.
    threshold :
        Items below this confidence count as low-confidence in the summary.
    """
    n, s, k = claims.n_items, claims.n_sources, claims.n_classes
    _check_len(source_names, s, "source_names", "sources")
    _check_len(source_kinds, s, "source_kinds", "sources")
    _check_len(class_names, k, "class_names", "classes")
    _check_len(item_ids, n, "item_ids", "items")
    post = np.asarray(result.posterior, dtype=np.float64)
    if post.shape != (n, k) or np.shape(result.confusion) != (s, k, k):
        raise ValueError("result does not match the claims' items, sources and classes")
    if top < 0:
        raise ValueError("top must be >= 0")
    names = [str(x) for x in source_names]
    kinds = np.array([str(x) for x in source_kinds], dtype=object)
    classes = [str(c) for c in class_names]
    ids = list(item_ids)
    human = kinds == "human"
    model = kinds == "model"

    resolved = post.argmax(axis=1) if k else np.zeros(n, np.int64)
    conf = post.max(axis=1) if k else np.zeros(n)
    per_item = claims.claims_per_item()
    has = per_item > 0
    hard = claims.hard_only()
    n_claims = np.bincount(hard.source, minlength=s)
    accuracy = np.asarray(result.accuracy, dtype=np.float64)
    agree = np.bincount(
        hard.source, weights=(resolved[hard.item] == hard.label).astype(np.float64), minlength=s
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        agreement = np.where(n_claims > 0, agree / np.maximum(n_claims, 1), np.nan)

    # --- domains
    domains: Domains | None = None
    domain_scores: list[tuple[DomainScore, ...]] = [()] * s
    if groups is not None:
        g, gnames = _groups(groups, n, group_names)
        n_g = len(gnames)
        slot = np.where(g < 0, n_g, g)  # the ungrouped get one extra slot, dropped below
        rel = source_reliability(claims, post, groups=slot, n_groups=n_g + 1)
        domain_scores = [
            tuple(
                DomainScore(float(rel.accuracy[i, j]), int(rel.n_claims[i, j])) for j in range(n_g)
            )
            for i in range(s)
        ]
        rows = []
        for j, gname in enumerate(gnames):
            inside = has & (g == j)
            rows.append(
                DomainRow(
                    gname, int(inside.sum()), int(per_item[g == j].sum()), _mean(conf[inside])
                )
            )
        domains = Domains(group_field, tuple(rows), int((has & (g < 0)).sum()))

    sources = []
    for i in range(s):
        acc = float(accuracy[i]) if n_claims[i] else math.nan
        low, high = _wilson(acc, int(n_claims[i]))
        sources.append(
            SourceQuality(
                index=i,
                name=names[i],
                kind=str(kinds[i]),
                n_claims=int(n_claims[i]),
                accuracy=acc,
                accuracy_low=low,
                accuracy_high=high,
                agreement=float(agreement[i]),
                domains=domain_scores[i],
            )
        )

    # --- summary
    hard_human = human[claims.source]
    summary = Summary(
        items=n,
        items_with_claims=int(has.sum()),
        claims=claims.n_claims,
        human_claims=int(n_claims[human].sum()),
        model_claims=int(n_claims[model].sum()),
        sources=s,
        humans=int(human.sum()),
        models=int(model.sum()),
        classes=k,
        method=result.method,
        n_iter=int(result.n_iter),
        converged=bool(result.converged),
        log_likelihood=float(result.log_likelihood),
        prior=tuple(float(p) for p in result.prior),
        mean_confidence=_mean(conf[has]),
        low_confidence_share=_mean((conf[has] < threshold).astype(np.float64)),
        low_confidence_threshold=float(threshold),
    )

    # --- unsure items, from the posterior's own ranking, among items with claims
    order = item_issues(post).order if n and k else np.zeros(0, np.int64)
    chosen = order[has[order]][:top]
    votes: dict[int, dict[str, int]] = {int(i): {} for i in chosen}
    sel = np.isin(hard.item, chosen)
    pairs, counts = np.unique(
        np.stack([hard.item[sel], hard.label[sel]]), axis=1, return_counts=True
    )
    for (it, la), c in zip(pairs.T.tolist(), counts.tolist(), strict=True):
        votes[it][classes[la]] = c
    uncertain = []
    for i in chosen.tolist():
        ranked = np.argsort(-post[i], kind="stable")
        second = int(ranked[1]) if k > 1 else None
        uncertain.append(
            ItemRow(
                index=i,
                item=_scalar(ids[i]),
                label=classes[resolved[i]],
                confidence=float(conf[i]),
                n_claims=int(per_item[i]),
                runner_up=classes[second] if second is not None else None,
                runner_up_prob=float(post[i, second]) if second is not None else math.nan,
                votes=votes[i],
            )
        )

    # --- suspect human claims, own vote left out
    suspect = []
    if claims.item.size:
        issues = claim_issues(claims, post, result.confusion)
        worst = issues.order[hard_human[issues.order]][:top]
        for j in worst.tolist():
            it = int(claims.item[j])
            suspect.append(
                ClaimRow(
                    index=j,
                    item=_scalar(ids[it]),
                    source=names[claims.source[j]],
                    label=classes[claims.label[j]],
                    quality=float(issues.quality[j]),
                    resolved=classes[resolved[it]],
                    resolved_confidence=float(conf[it]),
                )
            )

    # --- classes
    resolved_count = np.bincount(resolved[has], minlength=k)
    conf_sum = np.bincount(resolved[has], weights=conf[has], minlength=k)
    human_count = np.bincount(claims.label[hard_human], minlength=k)
    class_rows = tuple(
        ClassRow(
            name=classes[c],
            prior=float(result.prior[c]),
            resolved=int(resolved_count[c]),
            mean_confidence=float(conf_sum[c] / resolved_count[c])
            if resolved_count[c]
            else math.nan,
            human_claims=int(human_count[c]),
        )
        for c in range(k)
    )

    # --- the most active sources' confusion matrices
    active = [
        i for i in np.argsort(-n_claims, kind="stable")[:N_CONFUSIONS].tolist() if n_claims[i]
    ]
    confusions = tuple(
        SourceConfusion(
            name=names[i],
            kind=str(kinds[i]),
            n_claims=int(n_claims[i]),
            matrix=tuple(tuple(float(x) for x in row) for row in result.confusion[i]),
        )
        for i in active
    )

    low = 1.0 / k if k > 1 else 0.0
    edges = np.linspace(low, 1.0, _HIST_BINS + 1)
    hist, _ = np.histogram(np.clip(conf[has], low, 1.0), bins=edges)
    notes = []
    if not result.converged:
        notes.append(f"EM stopped after {result.n_iter} iterations without converging")
    if (n_claims == 0).any():
        notes.append(f"{int((n_claims == 0).sum())} source(s) have no claims")

    return Report(
        summary=summary,
        class_names=tuple(classes),
        sources=tuple(sources),
        agreement=_agreement(claims, human, ordinal),
        uncertain_items=tuple(uncertain),
        suspect_claims=tuple(suspect),
        classes=class_rows,
        confidence=Histogram(tuple(float(e) for e in edges), tuple(int(c) for c in hist)),
        confusions=confusions,
        domains=domains,
        ordinal=bool(ordinal),
        notes=tuple(notes),
    )
