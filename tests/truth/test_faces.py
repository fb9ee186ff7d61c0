"""The faces on the engine: scikit-learn-like estimators, the crowd-kit and cleanlab adapters."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from truth_synth import crowd

from veritag.truth import (
    Claims,
    ConvergenceWarning,
    DawidSkene,
    MajorityVote,
    OneCoinDawidSkene,
    WeightedVote,
    claim_issues,
    fit_truth,
)
from veritag.truth import crowdkit as ck
from veritag.truth.cleanlab import get_label_quality_multiannotator
from veritag.truth.glad import fit_glad
from veritag.truth.mace import fit_mace

ESTIMATORS = [
    (DawidSkene, "ds"),
    (OneCoinDawidSkene, "onecoin"),
    (MajorityVote, "mv"),
    (WeightedVote, "wmv"),
]
AGGREGATORS = [
    (ck.DawidSkene, "ds"),
    (ck.OneCoinDawidSkene, "onecoin"),
    (ck.MajorityVote, "mv"),
    (ck.Wawa, "wmv"),
]

# --- scikit-learn-like estimators ---------------------------------------------------------------


@pytest.mark.parametrize(("cls", "method"), ESTIMATORS)
def test_estimator_fit_returns_self_and_sets_the_fitted_attributes(cls, method: str) -> None:
    cr = crowd(0, n_items=80, n_sources=6, k=3)
    est = cls()
    assert est.fit(cr.claims) is est
    r = fit_truth(cr.claims, method)
    np.testing.assert_array_equal(est.posterior_, r.posterior)
    np.testing.assert_array_equal(est.labels_, r.labels())
    np.testing.assert_array_equal(est.confusion_, r.confusion)
    np.testing.assert_array_equal(est.prior_, r.prior)
    np.testing.assert_array_equal(est.accuracy_, r.accuracy)
    np.testing.assert_array_equal(est.log_likelihood_, r.log_likelihood)
    assert est.n_iter_ == r.n_iter and est.result_.method == method
    np.testing.assert_array_equal(est.predict(), r.labels())
    np.testing.assert_array_equal(est.predict_proba(), r.posterior)


@pytest.mark.parametrize(("cls", "method"), ESTIMATORS)
def test_estimator_before_fit_raises(cls, method: str) -> None:
    est = cls()
    for call in (est.predict, est.predict_proba):
        with pytest.raises(RuntimeError, match=f"this {cls.__name__} is not fitted yet"):
            call()
    assert not hasattr(est, "labels_")


@pytest.mark.parametrize(("cls", "method"), ESTIMATORS)
def test_estimator_fit_predict_and_gold(cls, method: str) -> None:
    cr = crowd(1, n_items=60, n_sources=6, k=3)
    gold = {"gold_items": [0, 1], "gold_labels": [2, 2]}
    labels = cls().fit_predict(cr.claims, **gold)
    proba = cls().fit_predict_proba(cr.claims, **gold)
    r = fit_truth(cr.claims, method, **gold)
    np.testing.assert_array_equal(labels, r.labels())
    np.testing.assert_array_equal(proba, r.posterior)
    assert labels[0] == labels[1] == 2


def test_estimator_parameters_are_kept_and_forwarded() -> None:
    params = {"max_iter": 7, "tol": 1e-3, "shrinkage": 2.0, "bins": 3}
    est = DawidSkene(**params)
    assert est.get_params() == params
    assert DawidSkene().get_params() == {"max_iter": 100, "tol": None, "shrinkage": 0.5, "bins": 5}
    cr = crowd(2, n_items=80, n_sources=6, k=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        np.testing.assert_array_equal(
            est.fit(cr.claims).posterior_, fit_truth(cr.claims, "ds", **params).posterior
        )
    with pytest.warns(ConvergenceWarning):
        DawidSkene(max_iter=1).fit(cr.claims)
    with pytest.raises(ValueError, match="max_iter and bins"):
        DawidSkene(bins=0).fit(cr.claims)


def test_refitting_replaces_the_answers() -> None:
    est = MajorityVote()
    est.fit(Claims.from_arrays([0], [0], [1]))
    est.fit(Claims.from_arrays([0, 1, 2], [0, 0, 0], [0, 0, 0]))
    assert est.labels_.shape == (3,) and est.posterior_.shape == (3, 1)


# --- crowd-kit adapter --------------------------------------------------------------------------

ANIMALS = np.array(["cat", "dog", "bird"])


def _long(seed: int = 3, n_items: int = 120) -> tuple[pd.DataFrame, pd.Series]:
    """A crowd-kit style long table with string tasks, workers and labels, plus the truth."""
    cr = crowd(seed, n_items=n_items, n_sources=8, k=3, per_item=3)
    c = cr.claims
    order = np.random.default_rng(seed).permutation(c.item.size)  # rows in no particular order
    df = pd.DataFrame(
        {
            "task": [f"t{i:03d}" for i in c.item[order]],
            "worker": [f"w{s}" for s in c.source[order]],
            "label": ANIMALS[c.label[order]],
        }
    )
    truth = pd.Series(ANIMALS[cr.truth], index=[f"t{i:03d}" for i in range(n_items)])
    return df, truth


@pytest.mark.parametrize(("cls", "method"), AGGREGATORS)
def test_crowdkit_outputs_are_task_indexed_like_crowdkit(cls, method: str) -> None:
    df, truth = _long()
    agg = cls()
    labels = agg.fit_predict(df)
    # crowd-kit's EM lists tasks as they first appear; its votes come out of an unstack, sorted.
    tasks = sorted(pd.unique(df["task"])) if method in ("mv", "wmv") else pd.unique(df["task"])
    assert isinstance(labels, pd.Series) and labels.name == "agg_label"
    assert labels.index.name == "task" and list(labels.index) == list(tasks)
    assert set(labels) <= set(ANIMALS)
    assert (labels == truth[labels.index]).mean() > 0.8
    probas = agg.probas_
    assert list(probas.columns) == sorted(ANIMALS) and probas.columns.name == "label"
    assert list(probas.index) == list(tasks) and probas.index.name == "task"
    np.testing.assert_allclose(probas.sum(axis=1), 1.0)
    pd.testing.assert_series_equal(
        probas.idxmax(axis=1).rename("agg_label"), labels, check_names=False, check_dtype=False
    )
    if method in ("ds", "onecoin"):
        assert agg.priors_.index.tolist() == sorted(ANIMALS) and agg.priors_.sum() == pytest.approx(
            1.0
        )
    assert agg.skills_.index.name == "worker" and sorted(agg.skills_.index) == sorted(
        df["worker"].unique()
    )
    pd.testing.assert_frame_equal(agg.fit_predict_proba(df), probas)


@pytest.mark.parametrize(("cls", "method"), AGGREGATORS[:3])
def test_crowdkit_matches_the_engine(cls, method: str) -> None:
    df, _ = _long(4)
    coded = ck.from_long(df)
    r = fit_truth(coded.claims, method)
    probas = cls().fit_predict_proba(df).reindex(coded.tasks)
    np.testing.assert_allclose(probas.to_numpy(), r.posterior)
    if method != "mv":
        np.testing.assert_allclose(cls().fit(df).skills_.to_numpy(), r.accuracy)


def test_crowdkit_wawa_is_a_vote_weighted_by_agreement_with_the_majority() -> None:
    """crowd-kit's Wawa: a worker's skill is its share of distinct answers equal to the majority
    label (an answer repeated on one task counts once); the labels are the vote weighted by it."""
    df = pd.DataFrame(
        {
            "task": list("aaabbbccc") + ["a"],
            "worker": list("xyzxyzxyz") + ["z"],
            "label": list("ppqqqqpqq") + ["q"],
        }
    )
    wawa = ck.Wawa().fit(df)
    # The majority: a is a p/q tie (two each), won by the smallest label p; b and c are q. z's two
    # q answers on a count once in its skill and twice in the weighted vote.
    np.testing.assert_allclose(wawa.skills_[["x", "y", "z"]].to_numpy(), [2 / 3, 1.0, 2 / 3])
    probas = wawa.predict_proba(df)
    np.testing.assert_allclose(probas.loc["a"].to_numpy(), [5 / 9, 4 / 9])
    assert wawa.predict(df).to_dict() == {"a": "p", "b": "q", "c": "q"}
    with pytest.raises(ck.NotFittedError, match="not fitted") as caught:
        ck.Wawa().predict(df)
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, AttributeError)


def test_crowdkit_errors_layout() -> None:
    df, _ = _long(5)
    agg = ck.DawidSkene().fit(df)
    errors = agg.errors_
    workers = list(pd.unique(df["worker"]))
    assert errors.index.names == ["worker", "label"]
    assert errors.shape == (len(workers) * 3, 3)
    assert list(errors.columns) == sorted(ANIMALS)
    assert list(errors.index.get_level_values("worker").unique()) == workers
    # Row (worker, given label), column true label: each worker's column sums to one.
    np.testing.assert_allclose(errors.groupby(level="worker").sum().to_numpy(), 1.0)
    r = agg.result_
    labels = sorted(ANIMALS)
    for w, worker in enumerate(workers):
        for given, name in enumerate(labels):
            np.testing.assert_allclose(
                errors.loc[(worker, name)].to_numpy(), r.confusion[w, :, given]
            )


def test_crowdkit_true_labels_are_gold() -> None:
    df, truth = _long(6)
    gold = truth.iloc[:10].copy()
    gold.iloc[:5] = np.where(gold.iloc[:5] == "cat", "dog", "cat")  # pinned even against the crowd
    gold["not-a-task"] = "cat"  # ignored: the data has no such task
    agg = ck.DawidSkene().fit(df, gold)
    np.testing.assert_array_equal(
        agg.labels_[gold.index[:10]].to_numpy(), gold.iloc[:10].to_numpy()
    )
    np.testing.assert_allclose(agg.probas_.loc[gold.index[:10]].max(axis=1), 1.0)
    assert "not-a-task" not in agg.labels_.index
    with pytest.raises(ValueError, match="not among the workers' labels"):
        ck.DawidSkene().fit(df, pd.Series({"t000": "horse"}))


def test_crowdkit_numeric_labels_and_to_long() -> None:
    df = pd.DataFrame(
        {"task": [1, 1, 1, 2, 2, 2], "worker": [5, 6, 7, 5, 6, 7], "label": [0, 0, 1, 1, 1, 1]}
    )
    labels = ck.MajorityVote().fit_predict(df)
    assert labels.to_dict() == {1: 0, 2: 1}
    long = ck.to_long(labels)
    assert list(long.columns) == ["task", "label"] and long.values.tolist() == [[1, 0], [2, 1]]


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (
            pd.DataFrame({"task": ["a", None], "worker": ["w", "v"], "label": ["x", "y"]}),
            "missing task, worker or label",
        ),
        (
            pd.DataFrame({"task": ["a", "b"], "worker": ["w", "v"], "label": ["x", np.nan]}),
            "missing",
        ),
        (
            pd.DataFrame({"task": ["a", "b"], "worker": ["w", np.nan], "label": ["x", "y"]}),
            "missing",
        ),
    ],
)
def test_crowdkit_bad_frames(frame: pd.DataFrame, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ck.DawidSkene().fit(frame)


def test_from_long_with_given_labels_and_tasks() -> None:
    df = pd.DataFrame({"task": ["a", "b"], "worker": ["w", "w"], "label": ["x", "y"]})
    coded = ck.from_long(df, labels=["y", "x", "z"], tasks=["b", "a", "c"])
    assert coded.claims.n_classes == 3 and coded.claims.n_items == 3
    np.testing.assert_array_equal(coded.claims.item, [1, 0])
    np.testing.assert_array_equal(coded.claims.label, [1, 0])
    with pytest.raises(ValueError, match="label 'y' is not among the labels"):
        ck.from_long(df, labels=["x"])
    with pytest.raises(ValueError, match="task 'b' is not among the tasks"):
        ck.from_long(df, tasks=["a"])


@pytest.mark.parametrize(
    "frame",
    [
        pd.DataFrame({"task": ["a"], "label": ["x"]}),
        pd.DataFrame({"item": ["a"], "annotator": ["w"]}),
    ],
)
@pytest.mark.parametrize("cls", [c for c, _ in AGGREGATORS])
def test_crowdkit_missing_column_is_a_key_error_like_crowdkit(cls, frame: pd.DataFrame) -> None:
    with pytest.raises(KeyError):
        cls().fit(frame)


@pytest.mark.parametrize("cls", [c for c, _ in AGGREGATORS])
def test_crowdkit_empty_input_gives_empty_results(cls) -> None:
    agg = cls()
    labels = agg.fit_predict(pd.DataFrame({"task": [], "worker": [], "label": []}))
    assert labels.empty and agg.probas_.empty


def test_crowdkit_n_iter_is_forwarded_and_zero_is_the_majority_vote() -> None:
    df, _ = _long(7)
    one, full = ck.DawidSkene(n_iter=1).fit(df), ck.DawidSkene().fit(df)
    assert len(one.loss_history_) == 1 < len(full.loss_history_)
    zero = ck.DawidSkene(n_iter=0).fit(df)
    assert zero.loss_history_ == []
    votes = ck.MajorityVote().fit_predict_proba(df).reindex(zero.probas_.index)
    np.testing.assert_allclose(zero.probas_.to_numpy(), votes.to_numpy())


def test_crowdkit_initial_error_strategies() -> None:
    """``assign`` replaces the first M-step's counts; ``addition`` adds history counts to them."""
    df = pd.DataFrame({"task": list("aabbcc"), "worker": list("xyxyxy"), "label": list("ppqpqq")})
    index = pd.MultiIndex.from_product([["x", "y"], ["p", "q"]], names=["worker", "label"])
    trusted_x = pd.DataFrame(
        [[0.99, 0.01], [0.01, 0.99], [0.5, 0.5], [0.5, 0.5]], index=index, columns=["p", "q"]
    )
    # With y's answers uninformative and x's near-perfect, b follows x (q) from the first E-step.
    one = ck.DawidSkene(n_iter=1, initial_error_strategy="assign").fit(df, initial_error=trusted_x)
    assert one.labels_["b"] == "q"
    added = ck.DawidSkene(n_iter=1, initial_error_strategy="addition").fit(
        df, initial_error=pd.DataFrame([[90, 0], [0, 90]], index=index[:2], columns=["p", "q"])
    )
    assert added.labels_["b"] == "q"
    with pytest.raises(ValueError, match="All the workers in data should be in initial_error"):
        ck.DawidSkene(initial_error_strategy="assign").fit(df, initial_error=trusted_x.iloc[:2])
    with pytest.raises(ValueError, match="should be 1.0"):
        ck.DawidSkene(initial_error_strategy="assign").fit(df, initial_error=trusted_x * 0.5)
    with pytest.raises(ValueError, match="The index of initial_error must be"):
        ck.DawidSkene(initial_error_strategy="assign").fit(
            df, initial_error=trusted_x.rename_axis(["w", "l"])
        )


# --- cleanlab adapter ---------------------------------------------------------------------------


def _multiannotator(
    seed: int = 8, n: int = 150, k: int = 3
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """cleanlab's layout: items x annotators with NaN where an annotator did not label; every
    item has 1-3 labels, the last item none. Returns (labels, pred_probs, truth)."""
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    acc = np.array([0.9, 0.8, 0.7, 0.6, 0.85])
    labels = np.full((n, 5), np.nan)
    for i in range(n - 1):
        who = rng.choice(5, rng.integers(1, 4), replace=False)
        right = rng.random(who.size) < acc[who]
        labels[i, who] = np.where(right, truth[i], (truth[i] + rng.integers(1, k, who.size)) % k)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), truth] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame = pd.DataFrame(
        labels,
        columns=["ann", "bea", "cy", "dee", "eve"],
        index=pd.Index([f"x{i}" for i in range(n)], name="example"),
    )
    return frame, probs, truth


def test_cleanlab_keys_and_column_names() -> None:
    labels, probs, _ = _multiannotator()
    out = get_label_quality_multiannotator(labels, probs)
    assert set(out) == {"label_quality", "detailed_label_quality", "annotator_stats"}
    lq = out["label_quality"]
    assert list(lq.columns) == [
        "consensus_label",
        "consensus_quality_score",
        "annotator_agreement",
        "num_annotations",
    ]
    assert lq.index.equals(labels.index)
    detailed = out["detailed_label_quality"]
    assert list(detailed.columns) == [f"quality_annotator_{c}" for c in labels.columns]
    assert detailed.index.equals(labels.index)
    stats = out["annotator_stats"]
    assert list(stats.columns) == [
        "annotator_quality",
        "agreement_with_consensus",
        "worst_class",
        "num_examples_labeled",
    ]
    assert stats.index.name == "annotator" and sorted(stats.index) == sorted(labels.columns)


def test_cleanlab_values() -> None:
    labels, probs, truth = _multiannotator()
    out = get_label_quality_multiannotator(labels, probs)
    lq, detailed, stats = (
        out["label_quality"],
        out["detailed_label_quality"],
        out["annotator_stats"],
    )
    n = len(labels)
    assert len(lq) == len(detailed) == n and len(stats) == 5
    values = labels.to_numpy()
    np.testing.assert_array_equal(lq["num_annotations"], (~np.isnan(values)).sum(axis=1))
    assert set(lq["consensus_label"]) <= {0, 1, 2}
    assert (lq["consensus_label"].to_numpy() == truth).mean() > 0.85
    assert lq["consensus_quality_score"].between(1 / 3, 1).all()
    agreement = lq["annotator_agreement"].to_numpy()
    assert np.isnan(agreement[-1]) and lq["num_annotations"].iloc[-1] == 0  # an item nobody labeled
    agrees = values[:-1] == lq["consensus_label"].to_numpy()[:-1, None]
    expected = np.nanmean(np.where(np.isnan(values[:-1]), np.nan, agrees), axis=1)
    np.testing.assert_allclose(agreement[:-1], expected)
    # NaN exactly where the annotator gave no label; qualities are probabilities.
    np.testing.assert_array_equal(np.isnan(detailed.to_numpy()), np.isnan(values))
    q = detailed.to_numpy()[~np.isnan(values)]
    assert np.all((q >= 0) & (q <= 1))
    # Annotators are ranked worst first; the best planted (0.9) beats the worst (0.6).
    assert stats["annotator_quality"].is_monotonic_increasing
    assert stats.loc["ann", "annotator_quality"] > stats.loc["dee", "annotator_quality"]
    np.testing.assert_array_equal(
        stats.loc[list(labels.columns), "num_examples_labeled"], (~np.isnan(values)).sum(axis=0)
    )
    assert stats["worst_class"].isin([0, 1, 2]).all()
    assert stats["agreement_with_consensus"].between(0, 1).all()


def test_cleanlab_detailed_quality_is_the_engine_claim_quality() -> None:
    labels, probs, _ = _multiannotator(9, n=60)
    values = labels.to_numpy()
    item, annot = np.nonzero(~np.isnan(values))
    claims = Claims.from_arrays(
        item,
        annot,
        values[item, annot].astype(int),
        n_items=60,
        n_sources=6,
        n_classes=3,
        prob_item=np.arange(60),
        prob_source=np.full(60, 5),
        probs=probs,
    )
    r = fit_truth(claims, "ds")
    human = Claims.from_arrays(
        item, annot, values[item, annot].astype(int), n_items=60, n_sources=6, n_classes=3
    )
    quality = claim_issues(human, r.posterior, r.confusion).quality
    detailed = get_label_quality_multiannotator(labels, probs)["detailed_label_quality"].to_numpy()
    np.testing.assert_allclose(detailed[item, annot], quality)
    lq = get_label_quality_multiannotator(labels, probs)["label_quality"]
    np.testing.assert_array_equal(lq["consensus_label"], r.labels())
    np.testing.assert_allclose(lq["consensus_quality_score"], r.confidence())


def test_cleanlab_flags_a_planted_mislabel() -> None:
    labels, probs, truth = _multiannotator(10)
    rows = np.flatnonzero((labels.notna().sum(axis=1) == 3).to_numpy())[:8]
    assert rows.size == 8
    for i in rows:
        col = labels.columns[labels.iloc[i].notna().to_numpy()][0]
        labels.loc[labels.index[i], col] = (truth[i] + 1) % 3
        for other in labels.columns[labels.iloc[i].notna().to_numpy()][1:]:
            labels.loc[labels.index[i], other] = truth[i]
    detailed = get_label_quality_multiannotator(labels, probs)["detailed_label_quality"].to_numpy()
    planted = [detailed[i, np.flatnonzero(labels.iloc[i].notna().to_numpy())[0]] for i in rows]
    assert max(planted) < 0.1


def test_cleanlab_options_and_array_input() -> None:
    labels, probs, _ = _multiannotator(11, n=40)
    bare = get_label_quality_multiannotator(
        labels, probs, return_detailed_quality=False, return_annotator_stats=False
    )
    assert set(bare) == {"label_quality"}
    from_array = get_label_quality_multiannotator(labels.to_numpy(), probs)
    assert list(from_array["detailed_label_quality"].columns) == [
        f"quality_annotator_{c}" for c in range(5)
    ]
    assert sorted(from_array["annotator_stats"].index) == list(range(5))
    np.testing.assert_allclose(
        from_array["label_quality"].to_numpy(),
        get_label_quality_multiannotator(labels, probs)["label_quality"].to_numpy(),
    )
    for method in ("mv", "wmv", "onecoin"):
        out = get_label_quality_multiannotator(labels, probs, consensus_method=method)
        assert len(out["label_quality"]) == 40


def test_cleanlab_an_annotator_with_no_labels() -> None:
    labels, probs, _ = _multiannotator(12, n=40)
    labels["ghost"] = np.nan
    stats = get_label_quality_multiannotator(labels, probs)["annotator_stats"]
    assert stats.loc["ghost", "num_examples_labeled"] == 0
    assert np.isnan(stats.loc["ghost", "annotator_quality"]) and np.isnan(
        stats.loc["ghost", "agreement_with_consensus"]
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"label": 1.5}, r"class indices in \[0, 3\) or NaN"),
        ({"label": -1.0}, r"class indices in \[0, 3\) or NaN"),
        ({"label": 3.0}, r"class indices in \[0, 3\) or NaN"),
        ({"probs": np.full((39, 3), 1 / 3)}, r"one row per item \(40\)"),
        ({"probs": np.full(40, 1.0)}, r"one row per item \(40\)"),
        ({"probs": np.tile([1.2, -0.1, -0.1], (40, 1))}, "finite and non-negative"),
        ({"probs": np.zeros((40, 3))}, "sums to 0"),
        ({"method": "crowdlab"}, "method must be one of"),
    ],
)
def test_cleanlab_bad_input(change: dict, message: str) -> None:
    labels, probs, _ = _multiannotator(13, n=40)
    labels = labels.copy()
    if "label" in change:
        labels.iloc[0, 0] = change["label"]
    with pytest.raises(ValueError, match=message):
        get_label_quality_multiannotator(
            labels, change.get("probs", probs), consensus_method=change.get("method", "ds")
        )


def test_cleanlab_width_of_pred_probs_sets_the_classes() -> None:
    labels, probs, _ = _multiannotator(14, n=40)
    wide = np.c_[probs, np.full(40, 0.05)]
    out = get_label_quality_multiannotator(labels, wide / wide.sum(axis=1, keepdims=True))
    assert out["label_quality"]["consensus_label"].isin([0, 1, 2, 3]).all()
    assert out["annotator_stats"]["worst_class"].isin([0, 1, 2, 3]).all()


# --- crowd-kit's GLAD and MACE --------------------------------------------------------------------


@pytest.mark.parametrize("cls", [ck.GLAD, ck.MACE])
def test_crowdkit_glad_and_mace_layout_and_edges(cls) -> None:
    df, truth = _long(8)
    agg = cls()
    labels = agg.fit_predict(df)
    assert labels.name == "agg_label" and labels.index.name == "task"
    assert list(labels.index) == list(pd.unique(df["task"]))
    assert (labels == truth[labels.index]).mean() > 0.8
    assert list(agg.probas_.columns) == sorted(ANIMALS)
    np.testing.assert_allclose(agg.probas_.sum(axis=1), 1.0)
    with pytest.raises(KeyError):
        cls().fit(df.drop(columns="worker"))
    assert cls().fit_predict(df.iloc[:0]).empty


def test_crowdkit_glad_is_the_numeric_core_with_named_parameters() -> None:
    df, _ = _long(9)
    glad = ck.GLAD(n_iter=20).fit(df)
    coded = ck.from_long(df)
    core = fit_glad(coded.claims, n_iter=20)
    np.testing.assert_allclose(glad.probas_.to_numpy(), core.posterior)
    assert glad.alphas_.name == "alpha" and list(glad.alphas_.index) == list(coded.workers)
    assert glad.betas_.name == "beta" and list(glad.betas_.index) == list(coded.tasks)
    assert len(glad.loss_history_) == core.n_iter
    prior = pd.Series([0.8, 0.1, 0.1], index=sorted(ANIMALS))
    nudged = ck.GLAD(n_iter=20, labels_priors=prior).fit(df)
    first = min(ANIMALS)
    assert (nudged.probas_[first] >= glad.probas_[first] - 1e-12).all()


def test_crowdkit_mace_lays_out_its_arrays_like_crowdkit() -> None:
    """crowd-kit's thetas_/spamming_ rows are workers as they first appear, columns labels as they
    first appear; its fit codes workers by name, so relabelling the rows must move them along."""
    df, _ = _long(10)
    mace = ck.MACE(n_restarts=1, n_iter=5).fit(df)
    workers, labels = list(pd.unique(df["worker"])), list(pd.unique(df["label"]))
    assert mace.thetas_.shape == (len(workers), len(labels)) and mace.spamming_.shape == (
        len(workers),
        2,
    )
    by_name = sorted(workers)
    coded = ck.from_long(df)
    claims = Claims.from_arrays(
        coded.claims.item,
        pd.Index(by_name).get_indexer(df["worker"]),
        coded.claims.label,
        n_classes=3,
    )
    core = fit_mace(claims, n_restarts=1, n_iter=5, crowdkit_compat=True)
    row = by_name.index(workers[0])
    np.testing.assert_allclose(
        mace.thetas_[0], core.thetas[row][pd.Index(sorted(ANIMALS)).get_indexer(labels)]
    )
    np.testing.assert_allclose(mace.probas_.to_numpy(), core.posterior)
    assert mace.skills_.index.name == "worker"
