"""Calibration: temperature scaling and isotonic fix miscalibrated models, ECE is right."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from veritag.automation.calibration import (
    CALIBRATION_METHODS,
    Calibrator,
    IdentityCalibration,
    IsotonicCalibration,
    ReliabilityCurve,
    TemperatureScaling,
    expected_calibration_error,
    fit_calibrator,
    negative_log_likelihood,
    reliability_curve,
)

FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _true_model(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True class probabilities (random logits) and labels drawn from them."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, k)) * 1.5
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    y = (rng.random(n)[:, None] > np.cumsum(p, axis=1)).sum(axis=1)
    return p, np.minimum(y, k - 1)


def _power(p: np.ndarray, a: float) -> np.ndarray:
    """Sharpen (a > 1) or soften (a < 1) probabilities: exactly temperature 1/a miscalibration."""
    q = p**a
    return q / q.sum(axis=1, keepdims=True)


def _split(*arrays: np.ndarray) -> tuple[tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    half = arrays[0].shape[0] // 2
    return tuple(a[:half] for a in arrays), tuple(a[half:] for a in arrays)


# --- temperature scaling ----------------------------------------------------------------------


def test_overconfident_model_gets_t_above_one_and_better_held_out_scores() -> None:
    p_true, y = _true_model(6000, 4, seed=1)
    (p_fit, y_fit), (p_test, y_test) = _split(_power(p_true, 3.0), y)
    ts = TemperatureScaling().fit(p_fit, y_fit)
    assert ts.temperature_ > 1
    assert 2.4 < ts.temperature_ < 3.6  # the sharpening power is recovered
    assert ts.nll_after_ < ts.nll_before_
    cal = ts.transform(p_test)
    assert expected_calibration_error(cal, y_test) < expected_calibration_error(p_test, y_test) / 3
    assert negative_log_likelihood(cal, y_test) < negative_log_likelihood(p_test, y_test)


def test_underconfident_model_gets_t_below_one() -> None:
    p_true, y = _true_model(6000, 3, seed=2)
    (p_fit, y_fit), (p_test, y_test) = _split(_power(p_true, 1 / 3), y)
    ts = TemperatureScaling().fit(p_fit, y_fit)
    assert ts.temperature_ < 1
    assert 0.25 < ts.temperature_ < 0.45
    cal = ts.transform(p_test)
    assert expected_calibration_error(cal, y_test) < expected_calibration_error(p_test, y_test)
    assert negative_log_likelihood(cal, y_test) < negative_log_likelihood(p_test, y_test)


def test_logit_input_gives_the_same_temperature_as_probabilities() -> None:
    p_true, y = _true_model(2000, 3, seed=3)
    p = _power(p_true, 3.0)
    logits = np.log(p) + 7.0  # logits are only defined up to a per-row shift
    t_probs = TemperatureScaling().fit(p, y)
    t_logits = TemperatureScaling(input="logits").fit(logits, y)
    assert t_logits.temperature_ == pytest.approx(t_probs.temperature_, rel=1e-4)
    np.testing.assert_allclose(t_logits.transform(logits), t_probs.transform(p), atol=1e-8)


def test_binary_1d_probabilities_round_trip_as_1d() -> None:
    p_true, y = _true_model(3000, 2, seed=4)
    p1 = _power(p_true, 3.0)[:, 1]
    for cal in (TemperatureScaling(), IsotonicCalibration(), IdentityCalibration()):
        out = cal.fit(p1, y).transform(p1)
        assert out.shape == p1.shape
        assert np.all((out >= 0) & (out <= 1))
    assert TemperatureScaling().fit(p1, y).temperature_ > 2


def test_probabilities_with_zeros_are_clipped() -> None:
    p = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    y = np.array([0, 1, 2, 1])  # the last one-hot prediction is wrong: infinite NLL without clip
    ts = TemperatureScaling().fit(p, y)
    out = ts.transform(p)
    assert np.isfinite(ts.temperature_) and ts.temperature_ > 1
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert np.all(out.argmax(axis=1) == p.argmax(axis=1))


# --- isotonic ---------------------------------------------------------------------------------


def test_isotonic_fixes_a_monotone_but_not_temperature_shaped_distortion() -> None:
    rng = np.random.default_rng(5)
    p_true = rng.random(6000)
    y = (rng.random(6000) < p_true).astype(int)
    reported = p_true**2  # monotone, but biased low everywhere: no temperature fixes it
    (r_fit, y_fit), (r_test, y_test) = _split(reported, y)
    iso = IsotonicCalibration().fit(r_fit, y_fit)
    before = expected_calibration_error(r_test, y_test)
    after = expected_calibration_error(iso.transform(r_test), y_test)
    assert after < before / 3


def test_isotonic_reduces_multiclass_held_out_ece() -> None:
    p_true, y = _true_model(8000, 4, seed=6)
    (p_fit, y_fit), (p_test, y_test) = _split(_power(p_true, 3.0), y)
    cal = fit_calibrator("isotonic", p_fit, y_fit).transform(p_test)
    assert expected_calibration_error(cal, y_test) < expected_calibration_error(p_test, y_test) / 3


# --- ECE and the reliability curve -------------------------------------------------------------


def test_ece_matches_a_hand_computed_example() -> None:
    probs = np.array(
        [
            [0.9, 0.1, 0.0],  # conf .9, right  -> bin (.8, 1]
            [0.7, 0.3, 0.0],  # conf .7, wrong  -> bin (.6, .8]
            [0.3, 0.7, 0.0],  # conf .7, right  -> bin (.6, .8]
            [0.05, 0.95, 0.0],  # conf .95, wrong -> bin (.8, 1]
            [0.5, 0.3, 0.2],  # conf .5, right  -> bin (.4, .6]
        ]
    )
    labels = np.array([0, 1, 1, 0, 0])
    # bins: (.4,.6]: |1 - .5| * 1; (.6,.8]: |.5 - .7| * 2; (.8,1]: |.5 - .925| * 2; over 5 items
    expected = (0.5 + 2 * 0.2 + 2 * 0.425) / 5
    assert expected_calibration_error(probs, labels, n_bins=5) == pytest.approx(expected)
    curve = reliability_curve(probs, labels, n_bins=5)
    assert isinstance(curve, ReliabilityCurve)
    np.testing.assert_allclose(curve.edges, [0, 0.2, 0.4, 0.6, 0.8, 1.0])
    np.testing.assert_array_equal(curve.count, [0, 0, 1, 2, 2])
    np.testing.assert_allclose(curve.confidence, [np.nan, np.nan, 0.5, 0.7, 0.925])
    np.testing.assert_allclose(curve.accuracy, [np.nan, np.nan, 1.0, 0.5, 0.5])
    assert curve.ece == pytest.approx(expected)


def test_ece_of_perfectly_calibrated_probabilities_is_within_sampling_noise() -> None:
    p, y = _true_model(20000, 4, seed=7)
    ece = expected_calibration_error(p, y)
    # With labels drawn from p, each bin's accuracy - confidence has mean 0 and variance
    # sum c(1-c) / n_b^2, so E|gap| <= sqrt(sum c(1-c)) / n_b and E[ECE] <= sum_b sqrt(...) / n.
    conf = p.max(axis=1)
    bins = np.clip(np.ceil(conf * 15).astype(int) - 1, 0, 14)
    bound = np.sum(np.sqrt(np.bincount(bins, weights=conf * (1 - conf), minlength=15))) / conf.size
    assert ece < 3 * bound
    assert bound < 0.03  # the tolerance itself is meaningful at this sample size
    assert expected_calibration_error(_power(p, 3.0), y) > 10 * bound


def test_reliability_curve_counts_every_item_once() -> None:
    p, y = _true_model(500, 3, seed=8)
    curve = reliability_curve(p, y, n_bins=10)
    assert curve.count.sum() == 500 and curve.edges.shape == (11,)
    filled = curve.count > 0
    assert np.all(curve.confidence[filled] > curve.edges[:-1][filled])
    assert np.all(curve.confidence[filled] <= curve.edges[1:][filled])


# --- properties (hypothesis) ------------------------------------------------------------------


@st.composite
def _probs_and_labels(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    n = draw(st.integers(1, 15))
    k = draw(st.integers(2, 5))
    raw = draw(
        st.lists(
            st.lists(st.floats(0, 1, allow_subnormal=False), min_size=k, max_size=k).filter(
                lambda row: sum(row) > 1e-6
            ),
            min_size=n,
            max_size=n,
        )
    )
    p = np.array(raw)
    p /= p.sum(axis=1, keepdims=True)
    y = np.array(draw(st.lists(st.integers(0, k - 1), min_size=n, max_size=n)))
    return p, y


@FAST
@given(_probs_and_labels())
def test_temperature_transform_keeps_rows_normalised_and_argmax(data) -> None:
    p, y = data
    out = TemperatureScaling().fit(p, y).transform(p)
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-9)
    rows = np.arange(p.shape[0])
    # the model's top class is still (one of) the top classes after scaling
    assert np.all(out[rows, p.argmax(axis=1)] >= out.max(axis=1) - 1e-12)


@FAST
@given(_probs_and_labels())
def test_isotonic_transform_keeps_rows_normalised(data) -> None:
    p, y = data
    out = IsotonicCalibration().fit(p, y).transform(p)
    assert np.all(np.isfinite(out)) and np.all((out >= 0) & (out <= 1))
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-9)


@FAST
@given(_probs_and_labels())
def test_ece_is_between_zero_and_one(data) -> None:
    p, y = data
    assert 0.0 <= expected_calibration_error(p, y, n_bins=7) <= 1.0


# --- degenerate input: never NaN --------------------------------------------------------------


@pytest.mark.parametrize("method", CALIBRATION_METHODS)
def test_class_absent_from_fit_data_gives_no_nan(method: str) -> None:
    p, y = _true_model(600, 4, seed=9)
    keep = y != 3
    cal = fit_calibrator(method, p[keep], y[keep])
    test = np.array([[0.0, 0.0, 0.0, 1.0], [0.05, 0.05, 0.1, 0.8], [0.25, 0.25, 0.25, 0.25]])
    out = cal.transform(np.vstack([test, p]))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)


@pytest.mark.parametrize("method", CALIBRATION_METHODS)
@pytest.mark.parametrize("row", [[0.25, 0.25, 0.25, 0.25], [0.7, 0.2, 0.1, 0.0]])
def test_constant_probabilities_give_no_nan(method: str, row: list[float]) -> None:
    p = np.tile(row, (50, 1))
    y = np.arange(50) % 4
    cal = fit_calibrator(method, p, y)
    out = cal.transform(np.vstack([p, [[0.1, 0.2, 0.3, 0.4]]]))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    if method == "temperature" and row[0] == 0.25:
        assert cal.temperature_ == 1.0  # nothing to learn from uniform scores


@pytest.mark.parametrize("method", CALIBRATION_METHODS)
def test_single_item_gives_no_nan(method: str) -> None:
    p = np.array([[0.6, 0.3, 0.1]])
    cal = fit_calibrator(method, p, [1])
    out = cal.transform(np.array([[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(axis=1), 1.0)
    assert np.isfinite(expected_calibration_error(p, [1]))


# --- API and bad input ------------------------------------------------------------------------


def test_estimators_follow_sklearn_conventions() -> None:
    p, y = _true_model(200, 3, seed=10)
    for est in (TemperatureScaling(bounds=(0.1, 10)), IsotonicCalibration(), IdentityCalibration()):
        assert isinstance(est, Calibrator)
        assert est.fit(p, y) is est
        twin = clone(est)
        assert twin.get_params() == est.get_params()
        with pytest.raises(NotFittedError, match="not fitted"):
            twin.transform(p)
    assert not hasattr(TemperatureScaling(), "temperature_")


@pytest.mark.parametrize(
    ("probs", "labels", "match"),
    [
        ([[0.5, 0.5], [0.2, 0.8]], [0, 1, 1], "shape mismatch"),
        ([[0.5, 0.5], [0.2, 0.8]], [0, 2], "out of range"),
        ([[0.5, 0.5], [0.2, 0.8]], [-1, 0], "out of range"),
        ([[1.2, -0.2], [0.2, 0.8]], [0, 1], "negative"),
        ([[0.5, 0.6], [0.2, 0.8]], [0, 1], "sum to 1"),
        ([[np.nan, 0.5], [0.2, 0.8]], [0, 1], "NaN"),
        ([[1.0], [1.0]], [0, 0], "at least 2 classes"),
        (np.zeros((2, 2, 2)), [0, 1], "2-D"),
        (np.zeros((0, 2)), [], "empty"),
        ([[0.5, 0.5], [0.2, 0.8]], [0.5, 1], "integer"),
        ([[0.5, 0.5], [0.2, 0.8]], ["a", "b"], "integer"),
        ([0.5, 1.5], [0, 1], r"\[0, 1\]"),
    ],
)
def test_bad_input_raises_value_error(probs, labels, match: str) -> None:
    for method in CALIBRATION_METHODS:
        with pytest.raises(ValueError, match=match):
            fit_calibrator(method, probs, labels)
    with pytest.raises(ValueError, match=match):
        expected_calibration_error(probs, labels)


def test_unknown_method_and_bad_parameters_raise() -> None:
    p, y = np.array([[0.5, 0.5], [0.2, 0.8]]), np.array([0, 1])
    with pytest.raises(ValueError, match="unknown calibration method 'platt'"):
        fit_calibrator("platt", p, y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bounds"):
        TemperatureScaling(bounds=(2.0, 1.0)).fit(p, y)
    with pytest.raises(ValueError, match="input must be"):
        TemperatureScaling(input="scores").fit(p, y)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_bins"):
        expected_calibration_error(p, y, n_bins=0)
    for method in CALIBRATION_METHODS:
        cal = fit_calibrator(method, p, y)
        with pytest.raises(ValueError, match="fitted on 2 classes, got 3"):
            cal.transform([[0.2, 0.3, 0.5]])
