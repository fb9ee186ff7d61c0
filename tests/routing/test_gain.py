"""The expected gain of one more label: exact on known cases, and its properties."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from veritag.routing import expected_gain, posterior_after


def _simplex(rows: int, k: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).dirichlet(np.ones(k), size=rows)


def test_known_cases() -> None:
    p = np.array([[0.5, 0.5], [0.9, 0.1]])
    perfect, coin = np.eye(2), np.full((2, 2), 0.5)
    good = np.array([[0.8, 0.2], [0.2, 0.8]])
    gain = expected_gain(p, np.stack([perfect, coin, good]))
    np.testing.assert_allclose(gain, [[0.5, 0.0, 0.3], [0.1, 0.0, 0.0]], atol=1e-12)


def test_per_domain_matrices_follow_each_items_domain() -> None:
    p = _simplex(50, 3, 0)
    skilled, guessing = np.eye(3) * 0.9 + 0.1 / 3, np.full((3, 3), 1 / 3)
    # tutor 0 is skilled in domain 0 only; tutor 1 in domain 1 only
    conf = np.stack([np.stack([skilled, guessing]), np.stack([guessing, skilled])])
    domains = np.arange(50) % 2
    gain = expected_gain(p, conf, domains)
    np.testing.assert_allclose(gain[domains == 1, 0], 0.0, atol=1e-12)
    np.testing.assert_allclose(gain[domains == 0, 1], 0.0, atol=1e-12)
    np.testing.assert_allclose(
        gain[domains == 0, 0], expected_gain(p[domains == 0], skilled[None])[:, 0]
    )


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 30), t=st.integers(1, 5), k=st.integers(2, 5), seed=st.integers(0, 2**31 - 1)
)
def test_gain_is_between_zero_and_the_perfect_tutors(n: int, t: int, k: int, seed: int) -> None:
    p = _simplex(n, k, seed)
    conf = np.random.default_rng(seed + 1).dirichlet(np.ones(k), size=(t, k))
    gain = expected_gain(p, conf)
    perfect = 1.0 - p.max(axis=1)
    assert gain.shape == (n, t)
    assert np.all(gain >= 0.0) and np.all(gain <= perfect[:, None] + 1e-12)
    np.testing.assert_allclose(expected_gain(p, np.eye(k)[None])[:, 0], perfect, atol=1e-12)
    # permuting the items permutes the gains
    order = np.random.default_rng(seed).permutation(n)
    np.testing.assert_allclose(expected_gain(p[order], conf), gain[order])


@settings(max_examples=40, deadline=None)
@given(probs=arrays(np.float64, (8, 3), elements=st.floats(0.01, 1.0)), seed=st.integers(0, 1000))
def test_posterior_after_is_bayes_rule(probs: np.ndarray, seed: int) -> None:
    p = probs / probs.sum(axis=1, keepdims=True)
    conf = np.random.default_rng(seed).dirichlet(np.ones(3), size=(8, 3))
    answers = np.random.default_rng(seed).integers(0, 3, 8)
    after = posterior_after(p, conf, answers)
    np.testing.assert_allclose(after.sum(axis=1), 1.0)
    expected = p * conf[np.arange(8), :, answers]
    np.testing.assert_allclose(after, expected / expected.sum(axis=1, keepdims=True))
