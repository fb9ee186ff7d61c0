"""Routing decisions: gain per cost picks the skilled tutor, never repeats one, respects the
budget."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veritag.routing import (
    RoutingConfig,
    choose_tutors,
    item_done,
    next_item_for_tutor,
    plan_batch,
    tutor_confusion,
    tutor_scores,
)


def coin(acc: float, k: int = 2) -> np.ndarray:
    m = np.full((k, k), (1 - acc) / (k - 1))
    np.fill_diagonal(m, acc)
    return m


def test_gain_prefers_the_tutor_skilled_in_the_items_domain() -> None:
    # Tutor 0 is an expert in domain 0 and poor in domain 1; tutor 1 the other way round.
    conf = np.stack([np.stack([coin(0.95), coin(0.6)]), np.stack([coin(0.6), coin(0.95)])])
    post = np.full((4, 2), 0.5)
    domains = np.array([0, 1, 0, 1])
    best = choose_tutors(post, conf, np.ones((4, 2), bool), domains=domains)
    assert best.tolist() == [0, 1, 0, 1]
    # A cheaper tutor wins once its gain per unit cost is higher.
    flat = np.stack([coin(0.95), coin(0.8)])
    assert choose_tutors(post, flat, np.ones((4, 2), bool)).tolist() == [0, 0, 0, 0]
    assert choose_tutors(post, flat, np.ones((4, 2), bool), cost=[3.0, 1.0]).tolist() == [
        1,
        1,
        1,
        1,
    ]


def test_unavailable_and_done_items_get_no_tutor() -> None:
    conf = np.stack([coin(0.9), coin(0.7)])
    post = np.full((3, 2), 0.5)
    avail = np.array([[False, True], [False, False], [True, True]])
    best = choose_tutors(post, conf, avail, done=[False, False, True])
    assert best.tolist() == [1, -1, -1]
    scores = tutor_scores(post, conf, avail)
    assert np.isneginf(scores[~avail]).all() and np.isfinite(scores[avail]).all()


def test_pull_gives_the_tutor_its_most_useful_unseen_item() -> None:
    conf = np.stack([coin(0.9), coin(0.9)])
    post = np.array([[0.99, 0.01], [0.5, 0.5], [0.7, 0.3], [0.55, 0.45]])
    avail = np.ones((4, 2), bool)
    assert next_item_for_tutor(post, conf, 0, avail) == 1
    avail[1, 0] = False  # tutor 0 already labeled item 1
    assert next_item_for_tutor(post, conf, 0, avail) == 3
    assert next_item_for_tutor(post, conf, 0, avail, done=[True, True, True, True]) == -1


def test_items_stop_at_target_or_cap() -> None:
    cfg = RoutingConfig(target=0.95, max_labels=3, min_labels=2)
    post = np.array([[0.97, 0.03], [0.97, 0.03], [0.6, 0.4], [0.6, 0.4], [0.6, 0.4]])
    n = np.array([2, 1, 3, 1, 1])
    done = item_done(post, n, cfg, exhausted=[False, False, False, False, True])
    assert done.tolist() == [True, False, True, False, True]


def test_config_is_checked() -> None:
    with pytest.raises(ValueError, match="target"):
        RoutingConfig(target=1.5)
    with pytest.raises(ValueError, match="min_labels"):
        RoutingConfig(min_labels=4, max_labels=3)
    with pytest.raises(ValueError, match="budget"):
        RoutingConfig(budget=-1)
    with pytest.raises(ValueError, match=r"gold_share must lie in \[0, 1\)"):
        RoutingConfig(gold_share=1.0)


def test_a_tutor_with_few_answers_gets_the_pooled_matrix() -> None:
    # Tutors 0 and 1 answered 200 items each (0 always right, 1 right 70%); tutor 2 answered once.
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, 200)
    post = np.eye(2)[truth]
    wrong = rng.random(200) < 0.3
    item = np.r_[np.arange(200), np.arange(200), 0]
    tutor = np.r_[np.zeros(200, int), np.ones(200, int), 2]
    label = np.r_[truth, np.where(wrong, 1 - truth, truth), 1 - truth[0]]
    conf = tutor_confusion(item, tutor, label, post, n_tutors=4)
    acc = np.trace(conf, axis1=1, axis2=2) / 2
    assert acc[0] > 0.95 and 0.6 < acc[1] < 0.8
    assert abs(acc[3] - acc[:2].mean()) < 0.05  # never answered: the pool
    assert acc[2] > 0.5  # one wrong answer does not make a liar
    np.testing.assert_allclose(conf.sum(axis=2), 1.0)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 40), st.integers(1, 6), st.floats(0, 30), st.integers(0, 2**32 - 1))
def test_a_batch_never_exceeds_the_budget(n: int, size: int, budget: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = np.where(rng.random(n) < 0.2, -np.inf, rng.random(n))
    cost = rng.choice([0.5, 1.0, 2.0, 5.0], n)
    pick = plan_batch(scores, cost, size=size, budget_left=budget)
    assert pick.size <= size and np.unique(pick).size == pick.size
    assert cost[pick].sum() <= budget + 1e-9
    assert np.isfinite(scores[pick]).all()
    assert np.all(np.diff(scores[pick]) <= 0)  # best first


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 12), st.integers(1, 5), st.integers(2, 4), st.integers(0, 2**32 - 1))
def test_the_chosen_tutor_is_available_and_has_the_best_gain(
    n: int, t: int, k: int, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    post = rng.dirichlet(np.ones(k), n)
    conf = rng.dirichlet(np.ones(k), (t, k)) + 2 * np.eye(k)
    conf /= conf.sum(axis=2, keepdims=True)
    avail = rng.random((n, t)) < 0.6
    best = choose_tutors(post, conf, avail)
    scores = tutor_scores(post, conf, avail)
    for i in range(n):
        if avail[i].any():
            assert avail[i, best[i]] and scores[i, best[i]] == scores[i].max()
        else:
            assert best[i] == -1
