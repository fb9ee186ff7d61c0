"""Reports: planted facts in a synthetic project must surface; renderers must be safe and sound."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from veritag.quickstart import sample_dir
from veritag.report import build_report, render_html, render_text
from veritag.truth import (
    Claims,
    fit_truth,
    fleiss_kappa,
    krippendorff_alpha,
    pairwise_cohen_kappa,
    source_reliability,
)

CLASSES = ["cat", "dog", "<b>bird</b>"]
SCRIPT = "<script>alert('x')</script>"
GOOD = [f"w{i}" for i in range(6)] + [SCRIPT, "[/oops]"]  # rich markup must not be parsed either
SPAMMER, EXPERT, MODEL, IDLE = "spammer", "expert_a", "model-v1", "idle"
NAMES = GOOD + [SPAMMER, EXPERT, MODEL, IDLE]
KINDS = ["human"] * (len(GOOD) + 2) + ["model", "human"]
N_ITEMS, N_DENSE = 300, 12  # the first N_DENSE items are labelled by every good worker
N_SPARSE = 3  # good workers on each other item


@dataclass
class Planted:
    claims: Claims
    truth: np.ndarray
    groups: np.ndarray
    flipped: list[int]  # claim indices of good workers' answers turned wrong
    item_ids: list[str]


def _wrong(rng: np.random.Generator, truth: int) -> int:
    return int((truth + rng.integers(1, len(CLASSES))) % len(CLASSES))


def make_planted(seed: int = 7) -> Planted:
    """Good workers (90%), a uniform spammer, an expert right in domain A and wrong in B, a model
    that is right 80% of the time, an idle source; on each dense item every good worker is right
    but one, whose answer is flipped."""
    rng = np.random.default_rng(seed)
    k = len(CLASSES)
    truth = rng.integers(0, k, N_ITEMS)
    groups = (np.arange(N_ITEMS) % 2).astype(np.int64)  # 0: domain A, 1: domain B
    item, source, label, flipped = [], [], [], []
    src = {name: i for i, name in enumerate(NAMES)}

    def add(i: int, s: str, lab: int) -> None:
        item.append(i)
        source.append(src[s])
        label.append(int(lab))

    for i in range(N_ITEMS):
        workers = GOOD if i < N_DENSE else list(rng.choice(GOOD, size=N_SPARSE, replace=False))
        for w in workers:  # a dense item is unanimous but for the one flipped answer
            right = i < N_DENSE or rng.random() < 0.9
            add(i, w, truth[i] if right else _wrong(rng, truth[i]))
        if i < N_DENSE:
            j = len(item) - 1 - int(rng.integers(0, len(workers)))
            label[j] = _wrong(rng, truth[i])
            flipped.append(j)
            continue
        if rng.random() < 0.7:
            add(i, SPAMMER, rng.integers(0, k))
        if rng.random() < 0.8:
            good = rng.random() < (0.95 if groups[i] == 0 else 0.1)
            add(i, EXPERT, truth[i] if good else _wrong(rng, truth[i]))
    # The model: a confident row on its top class, which is right 80% of the time.
    prob_item = np.arange(N_ITEMS)
    top = np.where(rng.random(N_ITEMS) < 0.8, truth, [_wrong(rng, t) for t in truth])
    probs = np.full((N_ITEMS, k), 0.1)
    probs[prob_item, top] = 0.8
    claims = Claims.from_arrays(
        item,
        source,
        label,
        n_items=N_ITEMS,
        n_sources=len(NAMES),
        n_classes=k,
        prob_item=prob_item,
        prob_source=np.full(N_ITEMS, src[MODEL]),
        probs=probs,
    )
    return Planted(claims, truth, groups, flipped, [f"item-{i}" for i in range(N_ITEMS)])


@pytest.fixture(scope="module")
def planted() -> Planted:
    return make_planted()


@pytest.fixture(scope="module")
def fitted(planted: Planted):
    return fit_truth(planted.claims)


@pytest.fixture(scope="module")
def report(planted: Planted, fitted):
    return build_report(
        planted.claims,
        fitted,
        source_names=NAMES,
        source_kinds=KINDS,
        class_names=CLASSES,
        item_ids=planted.item_ids,
        groups=planted.groups,
        group_names=["A", "<i>B</i>"],
        group_field="domain",
        top=20,
    )


@pytest.fixture(scope="module")
def page(report) -> str:
    return render_html(report, title="Planted <project>")


# --- what the report finds ---------------------------------------------------------------------


def test_summary_counts(planted: Planted, fitted, report) -> None:
    s = report.summary
    assert (s.items, s.sources, s.humans, s.models, s.classes) == (N_ITEMS, len(NAMES), 11, 1, 3)
    assert s.claims == planted.claims.n_claims
    assert s.model_claims == N_ITEMS and s.human_claims == planted.claims.item.size
    assert s.method == "ds" and s.n_iter == fitted.n_iter and s.converged
    assert s.prior == pytest.approx(tuple(fitted.prior))
    conf = fitted.confidence()
    assert s.mean_confidence == pytest.approx(conf.mean())
    assert s.low_confidence_share == pytest.approx((conf < 0.9).mean())
    # The engine recovers the planted truth well enough for the rest to mean something.
    assert (fitted.labels() == planted.truth).mean() > 0.95


def test_spammer_is_least_accurate(report) -> None:
    ranked = report.sources_by_accuracy()
    assert ranked[0].name == SPAMMER
    assert ranked[0].accuracy < 0.45
    assert ranked[-1].name == IDLE  # no claims: sorted last, with no numbers
    for row in report.sources:
        if row.name in GOOD:
            assert row.accuracy > 0.8
            assert row.accuracy_low < row.accuracy < row.accuracy_high


def test_source_rows_match_the_result(planted: Planted, fitted, report) -> None:
    labels = fitted.labels()
    hard = planted.claims.hard_only()
    for i, row in enumerate(report.sources):
        assert (row.index, row.name, row.kind) == (i, NAMES[i], KINDS[i])
        assert row.n_claims == fitted.n_claims[i]
        mine = hard.source == i
        if row.n_claims:
            assert row.accuracy == pytest.approx(fitted.accuracy[i])
            assert row.agreement == pytest.approx(
                (labels[hard.item[mine]] == hard.label[mine]).mean()
            )
    model = report.source(MODEL)
    assert model.kind == "model" and model.n_claims == N_ITEMS
    assert 0.7 < model.accuracy < 0.9


def test_wilson_interval() -> None:
    from veritag.report.build import _wilson

    # Worked value: 8 of 10 -> (0.4902, 0.9433) at 95%.
    low, high = _wilson(0.8, 10)
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert _wilson(1.0, 5)[1] == 1.0 and _wilson(0.0, 5)[0] == 0.0
    assert all(math.isnan(x) for x in _wilson(0.5, 0))


def test_source_without_claims(report) -> None:
    idle = report.source(IDLE)
    assert idle.n_claims == 0
    assert all(
        math.isnan(x)
        for x in (idle.accuracy, idle.accuracy_low, idle.accuracy_high, idle.agreement)
    )
    assert any("no claims" in n for n in report.notes)
    d = report.to_dict()
    row = next(r for r in d["sources"] if r["name"] == IDLE)
    assert row["accuracy"] is None and row["accuracy_low"] is None


def test_per_domain_accuracy(planted: Planted, fitted, report) -> None:
    assert report.domains is not None
    assert report.domains.field == "domain" and report.domains.names == ("A", "<i>B</i>")
    assert [r.items for r in report.domains.rows] == [N_ITEMS // 2, N_ITEMS // 2]
    expert = report.source(EXPERT)
    in_a, in_b = expert.domains
    assert in_a.accuracy > 0.85 and in_b.accuracy < 0.3
    assert in_a.n_claims > 50 and in_b.n_claims > 50
    good = report.source("w0")
    assert all(d.accuracy > 0.75 for d in good.domains)
    rel = source_reliability(planted.claims, fitted.posterior, groups=planted.groups)
    for i, row in enumerate(report.sources):
        for j, d in enumerate(row.domains):
            assert d.n_claims == rel.n_claims[i, j]
            assert d.accuracy == pytest.approx(rel.accuracy[i, j], nan_ok=True)


def test_items_without_group_are_left_out(planted: Planted, fitted) -> None:
    groups = planted.groups.copy()
    groups[:10] = -1
    rep = build_report(
        planted.claims,
        fitted,
        source_names=NAMES,
        source_kinds=KINDS,
        class_names=CLASSES,
        item_ids=planted.item_ids,
        groups=groups,
    )
    assert rep.domains.names == ("0", "1") and rep.domains.ungrouped_items == 10
    assert sum(r.items for r in rep.domains.rows) == N_ITEMS - 10


def test_flipped_claims_are_top_suspects(planted: Planted, report) -> None:
    suspects = [c.index for c in report.suspect_claims]
    assert len(suspects) == 20
    assert set(planted.flipped) <= set(suspects)
    by_index = {c.index: c for c in report.suspect_claims}
    for j in planted.flipped:
        row = by_index[j]
        assert row.quality < 0.01
        assert row.item == planted.item_ids[planted.claims.item[j]]
        assert row.source == NAMES[planted.claims.source[j]]
        assert row.label == CLASSES[planted.claims.label[j]] != row.resolved
    # Human claims only, worst first.
    assert all(c.source != MODEL for c in report.suspect_claims)
    qualities = [c.quality for c in report.suspect_claims]
    assert qualities == sorted(qualities)


def test_uncertain_items(planted: Planted, fitted, report) -> None:
    rows = report.uncertain_items
    assert len(rows) == 20
    conf = fitted.confidence()
    assert [r.confidence for r in rows] == sorted(r.confidence for r in rows)
    assert rows[-1].confidence <= np.sort(conf)[19] + 1e-12
    for r in rows:
        i = r.index
        assert r.item == planted.item_ids[i] and r.label == CLASSES[fitted.labels()[i]]
        second = np.argsort(-fitted.posterior[i], kind="stable")[1]
        assert r.runner_up == CLASSES[second] and r.runner_up_prob == pytest.approx(
            fitted.posterior[i, second]
        )
        hard = planted.claims.hard_only()
        assert sum(r.votes.values()) == (hard.item == i).sum() == r.n_claims


def test_agreement_equals_direct_calls(planted: Planted, fitted) -> None:
    c = planted.claims
    human = np.isin(c.source, [i for i, k in enumerate(KINDS) if k == "human"])
    it, so, la = c.item[human], c.source[human], c.label[human]
    n, k = c.n_items, c.n_classes
    rep = build_report(
        c,
        fitted,
        source_names=NAMES,
        source_kinds=KINDS,
        class_names=CLASSES,
        item_ids=planted.item_ids,
        ordinal=True,
    )
    a = rep.agreement
    assert a.fleiss_kappa == pytest.approx(fleiss_kappa(it, la, n_items=n, n_classes=k), rel=1e-12)
    assert a.alpha_nominal == pytest.approx(
        krippendorff_alpha(it, so, la, n_items=n, n_classes=k), rel=1e-12
    )
    assert a.alpha_ordinal == pytest.approx(
        krippendorff_alpha(it, so, la, n_items=n, n_classes=k, level="ordinal"), rel=1e-12
    )
    matrix = pairwise_cohen_kappa(it, so, la, n_items=n, n_sources=c.n_sources, n_classes=k)
    upper = matrix[np.triu_indices(c.n_sources, 1)]
    assert a.mean_pairwise_kappa == pytest.approx(np.nanmean(upper), rel=1e-12)
    assert a.n_pairs == int((~np.isnan(upper)).sum())
    assert a.raters == 10 and a.claims == it.size and a.duplicates_dropped == 0
    assert 0.3 < a.fleiss_kappa < 0.9


def test_nominal_only_unless_ordinal(report) -> None:
    assert report.agreement.alpha_ordinal is None


def test_repeated_answers_count_once(planted: Planted, fitted) -> None:
    c = planted.claims
    # Worker 0 answers its first item again, differently: agreement keeps the later answer.
    j = int(np.flatnonzero(c.source == 0)[0])
    again = Claims.from_arrays(
        np.r_[c.item, c.item[j]],
        np.r_[c.source, 0],
        np.r_[c.label, (c.label[j] + 1) % 3],
        n_items=c.n_items,
        n_sources=c.n_sources,
        n_classes=c.n_classes,
        prob_item=c.prob_item,
        prob_source=c.prob_source,
        probs=c.probs,
    )
    rep = build_report(
        again,
        fit_truth(again),
        source_names=NAMES,
        source_kinds=KINDS,
        class_names=CLASSES,
        item_ids=planted.item_ids,
    )
    assert rep.agreement.duplicates_dropped == 1
    keep = np.ones(again.item.size, bool)
    keep[j] = False
    keep &= again.source != NAMES.index(MODEL)
    expected = fleiss_kappa(again.item[keep], again.label[keep], n_items=c.n_items, n_classes=3)
    assert rep.agreement.fleiss_kappa == pytest.approx(expected)


def test_classes_and_histogram(fitted, report) -> None:
    labels, conf = fitted.labels(), fitted.confidence()
    assert [c.name for c in report.classes] == CLASSES
    for c, row in enumerate(report.classes):
        assert row.prior == pytest.approx(fitted.prior[c])
        assert row.resolved == (labels == c).sum()
        assert row.mean_confidence == pytest.approx(conf[labels == c].mean())
    assert sum(report.confidence.counts) == N_ITEMS
    assert report.confidence.edges[0] == pytest.approx(1 / 3) and report.confidence.edges[-1] == 1.0
    assert [m.name for m in report.confusions][:1] == [MODEL]  # labelled every item
    assert len(report.confusions) == 4
    for m in report.confusions:
        assert np.allclose(np.sum(m.matrix, axis=1), 1.0)


def test_to_dict_is_json(report) -> None:
    d = report.to_dict()
    text = json.dumps(d, allow_nan=False)
    back = json.loads(text)
    assert back["summary"]["items"] == N_ITEMS
    assert back["domains"]["names"] == ["A", "<i>B</i>"]
    assert back["agreement"]["alpha_ordinal"] is None
    assert back["uncertain_items"][0]["item"].startswith("item-")
    assert len(back["sources"]) == len(NAMES)


def test_bad_arguments(planted: Planted, fitted) -> None:
    kw = {
        "source_names": NAMES,
        "source_kinds": KINDS,
        "class_names": CLASSES,
        "item_ids": planted.item_ids,
    }
    with pytest.raises(ValueError, match="source_names"):
        build_report(planted.claims, fitted, **{**kw, "source_names": NAMES[:-1]})
    with pytest.raises(ValueError, match="item_ids"):
        build_report(planted.claims, fitted, **{**kw, "item_ids": planted.item_ids[:5]})
    with pytest.raises(ValueError, match="groups"):
        build_report(planted.claims, fitted, **kw, groups=np.zeros(3, int))
    with pytest.raises(ValueError, match="group_names"):
        build_report(planted.claims, fitted, **kw, groups=planted.groups, group_names=["A"])
    with pytest.raises(ValueError, match="result"):
        build_report(planted.claims.drop_soft(), fit_truth(Claims.from_arrays([0], [0], [1])), **kw)


# --- edge cases ------------------------------------------------------------------------------


def _render_all(rep) -> str:
    out = io.StringIO()
    render_text(rep, Console(file=out, width=120))
    page = render_html(rep)
    assert_balanced(page)
    json.dumps(rep.to_dict(), allow_nan=False)
    return out.getvalue()


def test_no_groups_single_class_and_no_claims() -> None:
    claims = Claims.from_arrays(
        [0, 0, 1, 1, 2], [0, 1, 0, 1, 0], [0, 0, 0, 0, 0], n_items=4, n_sources=3, n_classes=1
    )
    result = fit_truth(claims)
    rep = build_report(
        claims,
        result,
        source_names=["a", "b", "c"],
        source_kinds=["human"] * 3,
        class_names=["only"],
        item_ids=[10, 11, 12, 13],
    )
    assert rep.domains is None
    assert rep.summary.items_with_claims == 3 and rep.summary.mean_confidence == 1.0
    assert math.isnan(rep.agreement.fleiss_kappa) and math.isnan(rep.agreement.alpha_nominal)
    assert rep.uncertain_items[0].runner_up is None
    assert rep.to_dict()["agreement"]["fleiss_kappa"] is None
    assert rep.source("c").n_claims == 0
    _render_all(rep)

    empty = Claims.from_arrays([], [], [], n_items=2, n_sources=1, n_classes=2)
    rep = build_report(
        empty,
        fit_truth(empty, "mv"),
        source_names=["x"],
        source_kinds=["human"],
        class_names=["n", "y"],
        item_ids=["p", "q"],
        groups=[0, 1],
    )
    assert rep.uncertain_items == () and rep.suspect_claims == () and rep.confusions == ()
    assert math.isnan(rep.summary.mean_confidence)
    _render_all(rep)


# --- rendering ---------------------------------------------------------------------------------

_VOID = {"meta", "br", "hr", "img", "input", "link", "wbr", "col", "area", "base", "source"}


class _Balance(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append(tag)
        if tag not in _VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs) -> None:
        self.tags.append(tag)

    def handle_endtag(self, tag) -> None:
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes <{self.stack[-1:]}>"
        self.stack.pop()

    def handle_data(self, data) -> None:
        self.text.append(data)


def assert_balanced(page: str) -> _Balance:
    parser = _Balance()
    parser.feed(page)
    parser.close()
    assert parser.stack == [], parser.stack[-5:]
    return parser


def test_html_is_balanced_and_self_contained(page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    parser = assert_balanced(page)
    assert parser.tags.count("svg") == 4  # accuracy, domains, confidence, confusion
    assert "script" not in parser.tags
    lowered = page.lower()
    for external in ("http://", "https://", "src=", "@import", "<link"):
        if external == "http://":  # the SVG namespace URIs are names, not fetches
            lowered = lowered.replace('xmlns="http://www.w3.org/2000/svg"', "").replace(
                'xmlns:xlink="http://www.w3.org/1999/xlink"', ""
            )
        assert external not in lowered, external


def test_html_escapes_user_strings(page: str) -> None:
    assert "<script" not in page.lower()
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "&lt;b&gt;bird&lt;/b&gt;" in page and "<b>bird" not in page
    assert "&lt;i&gt;B&lt;/i&gt;" in page and "<i>B" not in page
    assert "<title>Planted &lt;project&gt;</title>" in page
    text = "".join(assert_balanced(page).text)
    assert SCRIPT in text  # shown to the reader as text


def test_svg_ids_do_not_collide(page: str) -> None:
    import re

    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids))
    for ref in set(re.findall(r'(?:href="#|url\(#)([^")]+)', page)):
        assert ref in ids, ref


def test_html_without_groups_has_no_domain_plot(planted: Planted, fitted) -> None:
    rep = build_report(
        planted.claims,
        fitted,
        source_names=NAMES,
        source_kinds=KINDS,
        class_names=CLASSES,
        item_ids=planted.item_ids,
    )
    page = render_html(rep)
    assert assert_balanced(page).tags.count("svg") == 3
    assert 'id="domains"' not in page


def test_text_rendering(report) -> None:
    out = io.StringIO()
    render_text(report, Console(file=out, width=160), max_rows=50)
    text = out.getvalue()
    for needle in (
        "Summary",
        "Sources",
        "Fleiss",
        SPAMMER,
        SCRIPT,
        "[/oops]",
        "<b>bird</b>",
        "<i>B</i>",
    ):
        assert needle in text, needle
    lines = text.splitlines()
    title = next(i for i, line in enumerate(lines) if "least accurate first" in line)
    first_source = next(i for i in range(title, len(lines)) if "│" in lines[i])
    assert SPAMMER in lines[first_source]  # least accurate first


# --- the bundled sample ----------------------------------------------------------------------


def test_bundled_sample() -> None:
    d = sample_dir()
    labels = pd.read_csv(d / "labels.csv")
    texts = pd.read_csv(d / "texts.csv").set_index("task")
    tasks, item = np.unique(labels["task"], return_inverse=True)
    workers, source = np.unique(labels["worker"], return_inverse=True)
    claims = Claims.from_arrays(item, source, labels["label"].to_numpy(), n_classes=2)
    domain_names, groups = np.unique(
        texts.loc[tasks, "rte_subtask"].to_numpy(), return_inverse=True
    )
    result = fit_truth(claims)
    rep = build_report(
        claims,
        result,
        source_names=list(workers),
        source_kinds=["human"] * len(workers),
        class_names=["0", "1"],
        item_ids=tasks,
        groups=groups,
        group_names=domain_names,
        group_field="rte_subtask",
    )
    assert rep.summary.items == 800 and rep.summary.claims == 8000 and rep.summary.humans == 164
    assert (
        rep.domains.names == tuple(domain_names) and sum(r.items for r in rep.domains.rows) == 800
    )
    assert isinstance(rep.uncertain_items[0].item, int)
    assert rep.agreement.fleiss_kappa == pytest.approx(
        fleiss_kappa(item, labels["label"].to_numpy(), n_items=800, n_classes=2)
    )
    gt = pd.read_csv(d / "gt.csv").set_index("task").loc[tasks, "label"].to_numpy()
    # Items the report calls unsure are wrong far more often than the rest.
    unsure = [r.index for r in rep.uncertain_items]
    wrong = result.labels() != gt
    assert wrong[unsure].mean() > 2 * wrong.mean()
    assert "A1Q4VUJBMY78YR" in _render_all(rep)
