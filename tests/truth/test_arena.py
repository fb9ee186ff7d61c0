"""Arena ratings (veritag.truth.arena): properties, recovery of known strengths, the real
reference."""

from __future__ import annotations

import json
import math
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from veritag.truth import BradleyTerry, Leaderboard, leaderboard, pair_priority
from veritag.truth.arena import (
    OUTCOME_SPELLINGS,
    OUTCOMES,
    _collapse,
    _Model,
    outcome_named,
    unknown_outcome,
)

PRD = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "arena"
    / "prd_vicuna80_human"
    / "battles.jsonl"
)
#: README's reference Bradley-Terry ratings (ties half a win, 400/log10 scale, mean 1000).
PRD_REFERENCE = {
    "gpt4": 1134,
    "claude": 1129,
    "guanaco-65b": 994,
    "guanaco-33b": 992,
    "guanaco-7b": 986,
    "vicuna-13b": 972,
    "guanaco-13b": 964,
    "gpt35": 919,
    "bard": 909,
}
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FLIP = {"A": "B", "B": "A", "tie": "tie", "both_bad": "both_bad"}


def _ratings(board: Leaderboard) -> dict[str, float]:
    return dict(zip(board.models, board.rating))


@st.composite
def battles(draw: st.DrawFn, min_models: int = 2) -> tuple[list[str], list[str], list[str]]:
    """Random battles over a connected set of models: a chain links them all, then random extras."""
    n = draw(st.integers(min_models, 6))
    names = [f"m{k}" for k in range(n)]
    a, b = names[:-1], names[1:]
    extra = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(1, n - 1)), max_size=30))
    a = a + [names[i] for i, _ in extra]
    b = b + [names[(i + s) % n] for i, s in extra]
    outcome = draw(st.lists(st.sampled_from(OUTCOMES), min_size=len(a), max_size=len(a)))
    return a, b, outcome


def _synthetic(
    seed: int, n: int = 8, per_pair: int = 60, tie_rate: float = 0.0
) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """Battles from known strengths (theta, natural log units), every pair ``per_pair`` times."""
    rng = np.random.default_rng(seed)
    theta = rng.normal(0.0, 0.8, n)
    i, j = np.triu_indices(n, 1)
    i, j = np.repeat(i, per_pair), np.repeat(j, per_pair)
    swap = rng.random(i.size) < 0.5
    i, j = np.where(swap, j, i), np.where(swap, i, j)
    d = theta[i] - theta[j]
    nu = 2.0 * tie_rate / (1.0 - tie_rate) if tie_rate else 0.0
    denom = np.exp(d / 2) + np.exp(-d / 2) + nu
    u = rng.random(i.size)
    p_a, p_t = np.exp(d / 2) / denom, nu / denom
    outcome = np.where(u < p_a, "A", np.where(u < p_a + p_t, "tie", "B"))
    names = np.array([f"m{k}" for k in range(n)])
    return names[i].tolist(), names[j].tolist(), outcome.tolist(), theta


# --- the real reference -------------------------------------------------------------------------


def test_prd_vicuna80_matches_the_reference_ratings() -> None:
    if not PRD.is_file():
        pytest.skip(f"{PRD} is not here (a clone without ../shared)")
    rows = [json.loads(line) for line in PRD.read_text().splitlines() if line.strip()]
    a, b, o = ([r[k] for r in rows] for k in ("model_a", "model_b", "winner"))
    board = leaderboard(a, b, o, interval="sandwich")
    assert board.models == list(PRD_REFERENCE)
    for model, rating in _ratings(board).items():
        assert abs(rating - PRD_REFERENCE[model]) <= 1.0, model
    assert board.rank[0] == 1 and board.battles.sum() == 2 * len(rows)


# --- properties (hypothesis) --------------------------------------------------------------------


@FAST
@given(battles(), st.sampled_from(["half", "davidson"]))
def test_swapping_sides_with_flipped_outcomes_changes_nothing(data, ties: str) -> None:
    a, b, o = data
    one = leaderboard(a, b, o, ties=ties, interval="none")
    two = _ratings(leaderboard(b, a, [FLIP[x] for x in o], ties=ties, interval="none"))
    np.testing.assert_allclose(one.rating, [two[m] for m in one.models], atol=1e-6)


@FAST
@given(battles(), st.floats(-5000, 5000), st.sampled_from(["half", "davidson"]))
def test_mean_rating_is_base(data, base: float, ties: str) -> None:
    board = leaderboard(*data, ties=ties, interval="none", base=base)
    assert abs(board.rating.mean() - base) < 1e-6
    shifted = leaderboard(*data, ties=ties, interval="none", base=0.0)
    np.testing.assert_allclose(
        _ratings(board)[board.models[0]] - base, _ratings(shifted)[board.models[0]], atol=1e-6
    )


@FAST
@given(battles(), st.data())
def test_more_wins_never_lower_a_rating(data, pick) -> None:
    a, b, o = data
    k = pick.draw(st.integers(0, len(a) - 1))
    better = {"B": "tie", "tie": "A", "both_bad": "A", "A": "A"}[o[k]]
    before = _ratings(leaderboard(a, b, o, interval="none"))
    after = _ratings(leaderboard(a, b, [*o[:k], better, *o[k + 1 :]], interval="none"))
    assert after[a[k]] >= before[a[k]] - 1e-6
    assert after[b[k]] <= before[b[k]] + 1e-6


@FAST
@given(battles(), st.sampled_from(["half", "davidson"]))
def test_weight_two_is_the_same_as_duplicating_battles(data, ties: str) -> None:
    a, b, o = data
    weighted = leaderboard(a, b, o, weights=np.full(len(a), 2.0), ties=ties, interval="none")
    doubled = _ratings(leaderboard(a + a, b + b, o + o, ties=ties, interval="none"))
    np.testing.assert_allclose(weighted.rating, [doubled[m] for m in weighted.models], atol=1e-6)


@FAST
@given(battles(), st.sampled_from(["bootstrap", "sandwich"]), st.sampled_from(["half", "davidson"]))
def test_intervals_contain_the_point_and_ranks_follow_them(data, interval: str, ties: str) -> None:
    board = leaderboard(*data, interval=interval, ties=ties, rounds=20)
    assert np.all(board.lower <= board.rating + 1e-9) and np.all(board.rating <= board.upper + 1e-9)
    expected = 1 + (board.lower[None, :] > board.upper[:, None]).sum(axis=1)
    np.testing.assert_array_equal(board.rank, expected)
    assert board.rank[0] == 1 and np.all(np.diff(board.rating) <= 0)
    assert board.cov is not None and board.cov.shape == (len(board.models),) * 2
    np.testing.assert_allclose(board.cov, board.cov.T, atol=1e-9)
    assert json.loads(json.dumps(board.rows()))[0]["model"] == board.models[0]


@FAST
@given(battles())
def test_davidson_without_ties_is_bradley_terry(data) -> None:
    a, b, o = data
    # every battle also won once by each side (a finite maximum likelihood), 50 copies of it all
    # (so that the data outweigh the tiny prior on nu)
    o = ["A" if x in ("tie", "both_bad") else x for x in o]
    a, b, o = (a + a + a) * 50, (b + b + b) * 50, (o + ["A"] * len(o) + ["B"] * len(o)) * 50
    bt = leaderboard(a, b, o, interval="none")
    dav = leaderboard(a, b, o, ties="davidson", interval="none")
    assert dav.tie_param is not None and dav.tie_param < 0.01
    np.testing.assert_allclose([_ratings(dav)[m] for m in bt.models], bt.rating, atol=1.0)


def test_derivatives_match_finite_differences() -> None:
    a, b, o, _ = _synthetic(3, n=4, per_pair=5, tie_rate=0.3)
    index = {m: k for k, m in enumerate(sorted(set(a) | set(b)))}
    code = {"A": 0, "B": 1, "tie": 2}
    counts = _collapse(
        4,
        np.array([index[m] for m in a]),
        np.array([index[m] for m in b]),
        np.array([code[x] for x in o]),
        np.linspace(0.5, 1.5, len(a)),
    )
    rng = np.random.default_rng(0)
    for davidson in (False, True):
        model = _Model(counts, davidson)
        x = rng.normal(0, 0.7, (1, model.m))
        _, grad, hess = model.derivatives(x, counts.w[None])
        eps = 1e-6
        for k in range(model.m):
            e = np.zeros_like(x)
            e[0, k] = eps
            up, down = (
                model.derivatives(x + e, counts.w[None]),
                model.derivatives(x - e, counts.w[None]),
            )
            assert (up[0] - down[0])[0] / (2 * eps) == pytest.approx(grad[0, k], rel=1e-5, abs=1e-6)
            # the prior curvature has a floor (0.1 * 1e-6), far below the tolerance
            np.testing.assert_allclose(
                -(up[1] - down[1])[0] / (2 * eps), hess[0, k], rtol=1e-5, atol=2e-3
            )


# --- recovery of known strengths ----------------------------------------------------------------


@pytest.mark.parametrize("ties", ["half", "davidson"])
def test_recovers_known_strengths(ties: str) -> None:
    a, b, o, theta = _synthetic(1, n=10, per_pair=80, tie_rate=0.2 if ties == "davidson" else 0.0)
    board = leaderboard(a, b, o, ties=ties, interval="none")
    truth = {f"m{k}": 400 / math.log(10) * (t - theta.mean()) + 1000 for k, t in enumerate(theta)}
    got = np.array([_ratings(board)[m] for m in truth])
    assert np.corrcoef(got, list(truth.values()))[0, 1] > 0.98
    if ties == "davidson":
        assert board.tie_param == pytest.approx(
            0.5, abs=0.12
        )  # nu for a 20% tie rate between equals


@pytest.mark.parametrize("interval", ["bootstrap", "sandwich"])
def test_intervals_cover_at_about_the_nominal_rate(interval: str) -> None:
    hits = total = 0
    for seed in range(30):
        a, b, o, theta = _synthetic(100 + seed, n=6, per_pair=40)
        board = leaderboard(a, b, o, interval=interval, rounds=200, seed=seed)
        truth = {
            f"m{k}": 400 / math.log(10) * (t - theta.mean()) + 1000 for k, t in enumerate(theta)
        }
        true = np.array([truth[m] for m in board.models])
        hits += int(((board.lower <= true) & (true <= board.upper)).sum())
        total += true.size
    assert 0.88 <= hits / total <= 0.99  # nominal 0.95 over 180 intervals


# --- edge cases and errors ----------------------------------------------------------------------


def test_a_model_that_never_wins_gets_a_finite_last_place() -> None:
    a = ["x", "y", "z"] * 21 + ["loser"] * 30
    b = ["y", "z", "x"] * 21 + ["x", "y", "z"] * 10
    o = [("A", "B", "tie")[k // 3 % 3] for k in range(63)] + ["B"] * 30
    for interval in ("sandwich", "bootstrap"):
        board = leaderboard(a, b, o, interval=interval)
        assert board.models[-1] == "loser" and np.isfinite(board.rating).all()
        assert np.isfinite(board.lower).all() and board.rating[-1] < board.rating[-2] - 300
        assert board.rank[-1] == len(board.models)


def test_both_bad_as_tie_or_dropped() -> None:
    a, b, o = ["x", "x", "y", "w"], ["y", "y", "x", "x"], ["A", "both_bad", "model_b", "both_bad"]
    assert set(leaderboard(a, b, o, interval="none").models) == {"w", "x", "y"}
    dropped = leaderboard(a, b, o, both_bad="drop", interval="none")
    assert dropped.models == ["x", "y"] and list(dropped.battles) == [2, 2]


def test_interval_none_has_nan_bounds_and_ranks_by_rating() -> None:
    board = leaderboard(["x", "y", "z"], ["y", "z", "x"], ["A", "A", "tie"], interval="none")
    assert np.isnan(board.lower).all() and np.isnan(board.upper).all() and board.cov is None
    assert list(board.rank) == [1, 2, 3]
    assert board.rows()[0]["lower"] is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"model_a": [], "model_b": [], "outcome": []}, "no battles"),
        ({"model_a": ["x"], "model_b": ["y", "x"], "outcome": ["A"]}, "same length"),
        ({"model_a": ["x"], "model_b": ["y"], "outcome": ["win"]}, "outcome 'win'"),
        ({"model_a": ["x"], "model_b": ["x"], "outcome": ["A"]}, "against itself"),
        (
            {"model_a": ["x"], "model_b": ["y"], "outcome": ["A"], "weights": [-1.0]},
            "weights must be",
        ),
        (
            {"model_a": ["x"], "model_b": ["y"], "outcome": ["A"], "weights": [1.0, 2.0]},
            "one value per",
        ),
        (
            {"model_a": ["x"], "model_b": ["y"], "outcome": ["A"], "weights": [0.0]},
            "no battles left",
        ),
        ({"model_a": ["x"], "model_b": ["y"], "outcome": ["A"], "ties": "third"}, "ties must be"),
        (
            {"model_a": ["x"], "model_b": ["y"], "outcome": ["A"], "interval": "exact"},
            "interval must be",
        ),
        ({"model_a": ["x"], "model_b": ["y"], "outcome": ["A"], "rounds": 1}, "rounds must be"),
        ({"model_a": ["x"], "model_b": ["y"], "outcome": ["A"], "alpha": 1.5}, "alpha must be"),
        (
            {"model_a": ["x"], "model_b": ["y"], "outcome": ["A"], "both_bad": "keep"},
            "both_bad must be",
        ),
        ({"model_a": "xy", "model_b": ["y"], "outcome": ["A"]}, "single string"),
    ],
)
def test_bad_input_is_a_clear_value_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        leaderboard(**kwargs)


@FAST
@given(data=st.data())
def test_an_outcome_is_read_in_any_case_blanks_and_word_separators(data: st.DataObject) -> None:
    outcome = data.draw(st.sampled_from(OUTCOMES))
    words = re.split(r"[ _]", data.draw(st.sampled_from(OUTCOME_SPELLINGS[outcome])))
    seps = data.draw(st.lists(st.sampled_from([" ", "_", "-", "  ", " -_"]), min_size=len(words)))
    text = words[0] + "".join(sep + word for sep, word in zip(seps, words[1:]))
    text = "".join(c.upper() if data.draw(st.booleans()) else c.lower() for c in text)
    pad = data.draw(st.sampled_from(["", " ", "\t", " \n"]))
    assert outcome_named(pad + text + pad) == outcome
    # ... and the leaderboard reads it so: both_bad dropped, so each outcome fits differently.
    a, b = ["x", "x", "y"], ["y", "z", "z"]
    assert (
        leaderboard(a, b, [pad + text, "A", "B"], interval="none", both_bad="drop").rows()
        == leaderboard(a, b, [outcome, "A", "B"], interval="none", both_bad="drop").rows()
    )


@pytest.mark.parametrize("raw", ["win", "A B", "model_c", "tie(bothbad)", "", 1, None, True])
def test_anything_else_is_no_outcome(raw: object) -> None:
    assert outcome_named(raw) is None
    message = unknown_outcome(raw)
    assert message.startswith(f"{raw!r} is not one of the accepted outcomes")
    assert all(repr(s) in message for spellings in OUTCOME_SPELLINGS.values() for s in spellings)


def test_disconnected_battles_name_the_groups() -> None:
    with pytest.raises(ValueError, match=r"2 disconnected groups.*\{a, b\}; \{c, d\}"):
        leaderboard(["a", "c"], ["b", "d"], ["A", "B"])


# --- active selection ---------------------------------------------------------------------------


def test_pair_priority_shape_and_preferences() -> None:
    a, b, o, _ = _synthetic(5, n=6, per_pair=20)
    board = leaderboard(a, b, o, interval="none")
    n = len(board.models)
    counts = np.full((n, n), 10.0)
    prio = pair_priority(board, counts)
    assert prio.shape == (n, n) and np.all(prio >= 0) and np.all(np.diag(prio) == 0)
    np.testing.assert_allclose(prio, prio.T)
    # a pair that already has many battles is worth less than before
    counts[0, 1] = counts[1, 0] = 500.0
    assert pair_priority(board, counts)[0, 1] < prio[0, 1]
    # two models far apart in rating are not worth a battle next to two neighbours
    assert prio[0, n - 1] < prio[0, 1] or prio[0, n - 1] < prio[n - 2, n - 1]
    with pytest.raises(ValueError, match="counts must have shape"):
        pair_priority(board, np.ones((n + 1, n + 1)))


# --- the scikit-learn-like face -----------------------------------------------------------------


def test_bradley_terry_face() -> None:
    a, b, o, _ = _synthetic(2, n=4, per_pair=30, tie_rate=0.2)
    with pytest.raises(RuntimeError, match="not fitted"):
        BradleyTerry().predict_proba(["m0"], ["m1"])
    for ties in ("half", "davidson"):
        bt = BradleyTerry(ties=ties)
        assert bt.fit(a, b, o) is bt
        np.testing.assert_allclose(
            bt.rating_, leaderboard(a, b, o, ties=ties, interval="none").rating
        )
        proba = bt.predict_proba(["m0", "m1"], ["m1", "m0"])
        np.testing.assert_allclose(proba.sum(axis=1), 1.0)
        np.testing.assert_allclose(proba[0, 0], proba[1, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="not in the fitted battles"):
            bt.predict_proba(["m0"], ["nobody"])
