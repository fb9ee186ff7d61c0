"""fit_mace: agreement with crowd-kit 1.4.2's MACE, properties, edge cases.

The expected numbers below were computed with crowd-kit 1.4.2 (``MACE(...).fit_predict_proba``,
``spamming_``, ``thetas_``) on the toy frame ``TOY`` (columns task, worker, label; rows here sorted
by task/worker/label index) and pasted here: crowd-kit is not a test dependency.

``TOY``'s workers and labels do not appear in index order, so crowd-kit's name-ordered strategy
update is mis-aligned on it (see ``veritag.truth.mace``): ``CK_RAW_*`` is crowd-kit on ``TOY`` as it
is (matched by ``crowdkit_compat=True``); ``CK_VB_*`` / ``CK_EM_*`` are crowd-kit on ``TOY`` with
workers and labels renamed in order of first appearance, where its update is aligned (matched by
the default), mapped back to the original indices.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from truth_synth import crowd, relabel, toy

from veritag.truth.claims import Claims
from veritag.truth.mace import MaceResult, fit_mace

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# MACE() on TOY
CK_RAW_POSTERIOR = [
    [0.8009132421836982, 0.1394259254348831, 0.05966083238141874],
    [0.0017544292383145656, 0.9964911415233708, 0.0017544292383145656],
    [0.04871315215402275, 0.010436370607223308, 0.9408504772387538],
    [0.9677484777498312, 0.00922806963757347, 0.02302345261259527],
    [0.0019843308948593436, 0.006067368062588924, 0.9919483010425517],
    [0.8998623680345412, 0.07545884083116025, 0.024678791134298432],
]
CK_RAW_SPAMMING = [
    [0.3855793799091516, 0.5105780163141219],
    [0.6127947436612197, 0.2843994892829355],
    [0.5690357269488124, 0.3450704538682631],
    [0.07486804532935501, 0.8485283674529832],
]
CK_RAW_THETAS = [
    [0.3610458775493898, 0.3172790328198085, 0.29134773482962056],
    [0.3107433636748109, 0.3471284530175637, 0.31044944118331874],
    [0.32323564128859367, 0.29471280194645866, 0.3513768907830353],
    [0.319591039508638, 0.3246948070227227, 0.3225870392735959],
]
# MACE(n_iter=30) on TOY renamed
CK_VB_POSTERIOR = [
    [0.8186960206490884, 0.12308560851671829, 0.05821837083419329],
    [0.002065339478280809, 0.9958693210434384, 0.002065339478280809],
    [0.06797122248703516, 0.013531167213256716, 0.9184976102997081],
    [0.9690827136346811, 0.010277445181155635, 0.02063984118416313],
    [0.0026631138800652376, 0.006851069683790734, 0.990485816436144],
    [0.9041046348103349, 0.069053306030674, 0.026842059158990985],
]
CK_VB_SPAMMING = [
    [0.3744735757364911, 0.5217459287785686],
    [0.6612779134168447, 0.23689213459702524],
    [0.5823472851284066, 0.3318515099688496],
    [0.07954876864016752, 0.8432850510501441],
]
CK_VB_THETAS = [
    [0.3463016770306647, 0.3109121466297558, 0.31105640586663375],
    [0.2927188809783816, 0.32151502089748, 0.3552970550051434],
    [0.31668085548319513, 0.3623676263695237, 0.290691844275899],
    [0.3243599066744054, 0.31935159599213075, 0.3231930850948448],
]
# MACE(method="em", n_iter=30) on TOY renamed
CK_EM_POSTERIOR = [
    [0.733121292624318, 0.134240112686512, 0.13263859468916991],
    [1.556131602701924e-06, 0.9999968877367947, 1.556131602701924e-06],
    [0.20869151926070015, 0.07209411033936865, 0.7192143703999312],
    [0.898596639366459, 0.05059954916243732, 0.050803811471103674],
    [0.00023980343446402774, 0.00033972962621015, 0.9994204669393257],
    [0.7937517478018916, 0.12090533979933511, 0.08534291239877338],
]
CK_EM_SPAMMING = [
    [0.3473574026146965, 0.6526425973853035],
    [0.9969862690253243, 0.0030137309746756965],
    [0.7778963811749409, 0.2221036188250591],
    [0.18927182888128832, 0.8107281711187116],
]
CK_EM_THETAS = [
    [0.9916449012311923, 0.003846875728745579, 0.004508223040062097],
    [0.0008330712662128537, 0.25035334191487973, 0.7488135868189074],
    [0.3139572798488879, 0.6851883116680747, 0.0008544084830373819],
    [0.5160274159196403, 0.004626609026205829, 0.4793459750541539],
]


def _close(r: MaceResult, posterior: list, spamming: list, thetas: list) -> None:
    np.testing.assert_allclose(r.posterior, posterior, rtol=0, atol=1e-13)
    np.testing.assert_allclose(r.spamming, spamming, rtol=0, atol=1e-13)
    np.testing.assert_allclose(r.thetas, thetas, rtol=0, atol=1e-13)


def test_compat_matches_crowdkit_on_toy() -> None:
    _close(fit_mace(toy(), crowdkit_compat=True), CK_RAW_POSTERIOR, CK_RAW_SPAMMING, CK_RAW_THETAS)


def test_matches_crowdkit_where_its_update_is_aligned() -> None:
    _close(fit_mace(toy(), n_iter=30), CK_VB_POSTERIOR, CK_VB_SPAMMING, CK_VB_THETAS)
    _close(fit_mace(toy(), method="em", n_iter=30), CK_EM_POSTERIOR, CK_EM_SPAMMING, CK_EM_THETAS)


def test_compat_is_a_different_fit_on_toy() -> None:
    assert (
        np.abs(fit_mace(toy()).posterior - fit_mace(toy(), crowdkit_compat=True).posterior).max()
        > 1e-3
    )


def test_result_fields() -> None:
    r = fit_mace(toy(), n_iter=7)
    assert r.n_iter == 7 and len(r.loss_history) == 7 and r.loss_history[-1] == r.log_likelihood
    np.testing.assert_allclose(r.competence, r.spamming[:, 1] / r.spamming.sum(axis=1))
    np.testing.assert_allclose(
        r.thetas.sum(axis=1), 1.0, atol=0.05
    )  # VB rows are not normalised exactly


def test_int_seed_restarts_are_identical() -> None:
    # crowd-kit re-seeds every draw with the int, so every restart is the same run.
    a, b = fit_mace(toy(), n_restarts=1), fit_mace(toy(), n_restarts=10)
    np.testing.assert_array_equal(a.posterior, b.posterior)
    assert not np.array_equal(fit_mace(toy(), random_state=1).posterior, a.posterior)


def test_random_state_object_restarts_keep_the_best() -> None:
    one = fit_mace(toy(), n_restarts=1, n_iter=3, random_state=np.random.RandomState(7))
    many = fit_mace(toy(), n_restarts=5, n_iter=3, random_state=np.random.RandomState(7))
    again = fit_mace(toy(), n_restarts=5, n_iter=3, random_state=np.random.RandomState(7))
    assert many.log_likelihood >= one.log_likelihood
    np.testing.assert_array_equal(many.posterior, again.posterior)
    gen = fit_mace(toy(), n_restarts=2, n_iter=3, random_state=np.random.default_rng(7))
    np.testing.assert_allclose(gen.posterior.sum(axis=1), 1.0)


@st.composite
def problems(draw: st.DrawFn) -> Claims:
    """Small random claims; some sources and items have none, sometimes there is one class."""
    n, s, k = draw(st.integers(1, 8)), draw(st.integers(1, 5)), draw(st.integers(1, 4))
    m = draw(st.integers(0, 30))
    ints = st.lists(st.integers(0, 10**6), min_size=m, max_size=m)
    item, source, label = (np.array(draw(ints), dtype=np.int64) % size for size in (n, s, k))
    return Claims.from_arrays(item, source, label, n_items=n, n_sources=s, n_classes=k)


def _shuffled(c: Claims, order: list[int] | np.ndarray) -> Claims:
    return Claims.from_arrays(
        c.item[order],
        c.source[order],
        c.label[order],
        n_items=c.n_items,
        n_sources=c.n_sources,
        n_classes=c.n_classes,
    )


def _firsts_first(c: Claims, rest: np.ndarray) -> np.ndarray:
    """Row order: each source's and each label's first claim in their original order, then ``rest``
    (the other rows, in any order): the first appearances, which set the random start, stay put."""
    first = np.zeros(c.item.size, bool)
    first[np.unique(c.source, return_index=True)[1]] = True
    first[np.unique(c.label, return_index=True)[1]] = True
    return np.concatenate([np.flatnonzero(first), rest[~first[rest]]])


@FAST
@given(problems(), st.sampled_from(["vb", "em"]), st.booleans())
def test_posteriors_are_distributions(c: Claims, method: str, compat: bool) -> None:
    r = fit_mace(c, method=method, crowdkit_compat=compat, n_iter=10)
    assert r.posterior.shape == (c.n_items, c.n_classes)
    assert np.isfinite(r.posterior).all() and (r.posterior >= 0).all()
    np.testing.assert_allclose(r.posterior.sum(axis=1), 1.0, atol=1e-12)
    has_source = np.bincount(c.source, minlength=c.n_sources) > 0
    has_item = np.bincount(c.item, minlength=c.n_items) > 0
    assert np.array_equal(np.isfinite(r.competence), has_source)
    assert np.array_equal(np.isfinite(r.thetas).all(axis=1), has_source)
    assert ((r.competence[has_source] >= 0) & (r.competence[has_source] <= 1)).all()
    np.testing.assert_allclose(r.posterior[~has_item], 1.0 / c.n_classes)
    assert np.isfinite(r.log_likelihood)


@FAST
@given(problems(), st.randoms(use_true_random=False))
def test_relabelling_sources_and_items_permutes_the_result(c: Claims, rnd) -> None:
    items, sources = np.arange(c.n_items), np.arange(c.n_sources)
    rnd.shuffle(items)
    rnd.shuffle(sources)
    a, b = fit_mace(c, n_iter=10), fit_mace(relabel(c, items, sources), n_iter=10)
    np.testing.assert_allclose(b.posterior[items], a.posterior, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.spamming[sources], a.spamming, rtol=0, atol=1e-12)
    np.testing.assert_allclose(b.thetas[sources], a.thetas, rtol=0, atol=1e-12)


@FAST
@given(problems(), st.randoms(use_true_random=False))
def test_claim_order_matters_only_through_first_appearances(c: Claims, rnd) -> None:
    rest = np.arange(c.item.size)
    a = fit_mace(_shuffled(c, _firsts_first(c, rest)), n_iter=10)
    rnd.shuffle(rest)
    b = fit_mace(_shuffled(c, _firsts_first(c, rest)), n_iter=10)
    np.testing.assert_allclose(b.posterior, a.posterior, rtol=0, atol=1e-10)
    np.testing.assert_allclose(b.spamming, a.spamming, rtol=0, atol=1e-10)


@FAST
@given(problems(), st.booleans())
def test_compat_is_the_default_when_indices_sort_by_first_appearance(
    c: Claims, method_em: bool
) -> None:
    # Rename sources and classes in order of first appearance: crowd-kit's name order is then its
    # position order, and its mis-aligned update is the aligned one.
    def by_first(values: np.ndarray, size: int) -> np.ndarray:
        uniq, first = np.unique(values, return_index=True)
        order = np.concatenate([uniq[np.argsort(first)], np.setdiff1d(np.arange(size), uniq)])
        perm = np.empty(size, np.int64)
        perm[order] = np.arange(size)
        return perm

    sp, lp = by_first(c.source, c.n_sources), by_first(c.label, c.n_classes)
    renamed = Claims.from_arrays(
        c.item,
        sp[c.source],
        lp[c.label],
        n_items=c.n_items,
        n_sources=c.n_sources,
        n_classes=c.n_classes,
    )
    method = "em" if method_em else "vb"
    a = fit_mace(renamed, n_iter=10, method=method)
    b = fit_mace(renamed, n_iter=10, method=method, crowdkit_compat=True)
    np.testing.assert_array_equal(a.posterior, b.posterior)


@FAST
@given(st.integers(1, 12), st.integers(1, 5), st.integers(2, 4), st.data())
def test_perfect_sources_give_the_truth(n: int, s: int, k: int, data: st.DataObject) -> None:
    truth = np.array(data.draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    per_item = [data.draw(st.sets(st.integers(0, s - 1), min_size=1, max_size=s)) for _ in range(n)]
    item = np.repeat(np.arange(n), [len(p) for p in per_item])
    source = np.concatenate([sorted(p) for p in per_item]).astype(np.int64)
    r = fit_mace(Claims.from_arrays(item, source, truth[item], n_items=n, n_sources=s, n_classes=k))
    assert np.array_equal(r.labels(), truth)


def test_finds_the_spammer_on_a_synthetic_crowd() -> None:
    c = crowd(5, n_items=400, n_sources=8, k=3, per_item=5, acc=(0.45, 0.9))
    votes = np.zeros((400, 3))
    np.add.at(votes, (c.claims.item, c.claims.label), 1)
    r = fit_mace(c.claims)
    assert np.mean(r.labels() == c.truth) > np.mean(votes.argmax(axis=1) == c.truth) + 0.03
    assert np.corrcoef(r.competence, c.accuracy)[0, 1] > 0.9


def test_edge_cases_source_and_item_without_claims() -> None:
    c = Claims.from_arrays(
        [0, 0, 1, 1, 3], [0, 1, 0, 1, 0], [1, 1, 0, 1, 1], n_items=5, n_sources=3, n_classes=2
    )
    r = fit_mace(c)
    assert (
        np.isnan(r.competence[2]) and np.isnan(r.spamming[2]).all() and np.isnan(r.thetas[2]).all()
    )
    assert np.isfinite(r.competence[:2]).all()
    np.testing.assert_allclose(r.posterior[[2, 4]], 0.5)


def test_a_class_nobody_claimed_stays_unlikely() -> None:
    r = fit_mace(Claims.from_arrays([0, 0, 1, 1], [0, 1, 0, 1], [0, 0, 1, 1], n_classes=3))
    assert np.array_equal(r.labels(), [0, 1]) and (r.posterior[:, 2] < 0.05).all()


def test_one_class_is_certain() -> None:
    r = fit_mace(Claims.from_arrays([0, 0, 1], [0, 1, 1], [0, 0, 0]))
    np.testing.assert_allclose(r.posterior, np.ones((2, 1)))
    assert np.isfinite(r.competence).all()


def test_no_claims() -> None:
    r = fit_mace(Claims.from_arrays([], [], [], n_items=2, n_sources=1, n_classes=3))
    np.testing.assert_allclose(r.posterior, np.full((2, 3), 1 / 3))
    assert np.isnan(r.competence).all() and r.loss_history == []


def test_soft_claims_are_read_as_their_argmax() -> None:
    hard = Claims.from_arrays([0, 0, 1, 1], [0, 1, 0, 1], [1, 1, 0, 1], n_sources=3)
    soft = Claims.from_arrays(
        [0, 0, 1],
        [0, 1, 0],
        [1, 1, 0],
        n_sources=3,
        prob_item=[1],
        prob_source=[1],
        probs=[[0.2, 0.8]],
    )
    np.testing.assert_allclose(fit_mace(hard).posterior, fit_mace(soft).posterior)


def test_smoothing_is_used_by_em() -> None:
    default, heavy = fit_mace(toy(), method="em"), fit_mace(toy(), method="em", smoothing=5.0)
    assert np.abs(default.posterior - heavy.posterior).max() > 1e-3
    np.testing.assert_array_equal(
        fit_mace(toy(), method="em", smoothing=0.01 / 3).posterior, default.posterior
    )


@pytest.mark.parametrize(
    "kw", [{"method": "gibbs"}, {"n_restarts": 0}, {"n_iter": -1}, {"smoothing": 0.0}]
)
def test_rejects_bad_arguments(kw: dict) -> None:
    with pytest.raises(ValueError):
        fit_mace(toy(), **kw)
