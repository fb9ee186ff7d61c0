"""The embedding cache and the MiniLM + logistic-regression labeler, on the real model."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pytest

from veritag.labelers import EmbeddingLabeler, Labeler, MemoryCache, MiniLM, out_of_fold_proba
from veritag.labelers.embedding import Embedder, EmbeddingCache, cached_embed, text_key

SPORTS = [
    "The striker scored twice in the second half.",
    "Our goalkeeper saved a penalty in extra time.",
    "The marathon runners crossed the finish line after three hours.",
    "She served four aces in the final set.",
    "The home team won the championship game last night.",
    "He dunked the ball over two defenders.",
    "The coach substituted the midfielder at half time.",
    "The cyclist took the yellow jersey on the mountain stage.",
    "A late touchdown sealed the victory.",
    "The batter hit a home run into the upper deck.",
    "Fans cheered as the sprinter broke the world record.",
    "The referee showed a red card for the tackle.",
    "The swimmer won gold in the 200 metre butterfly.",
    "The boxer knocked out his opponent in round six.",
    "The tennis match went to a tie-break.",
    "The quarterback threw for 300 yards.",
    "Our rugby side lost the scrum battle.",
    "The goalie blocked forty shots in the hockey game.",
    "The league suspended the player for three matches.",
    "The skier crashed on the downhill course.",
    "The golfer sank a long putt on the eighteenth hole.",
    "They trained for the relay every morning.",
    "The wrestler pinned his rival in under a minute.",
    "The pitcher struck out ten batters.",
    "The team signed a new centre back for the season.",
    "The point guard made the winning free throws.",
    "The Olympic final was decided by a photo finish.",
    "The club fired its manager after five defeats.",
    "The volleyball team won the deciding set 15-13.",
    "The jockey rode the favourite to victory.",
]
COOKING = [
    "Simmer the tomato sauce for twenty minutes.",
    "Whisk the eggs with sugar until pale.",
    "Knead the dough and let it rise for an hour.",
    "Season the steak with salt and pepper before searing.",
    "Chop the onions finely and fry them in butter.",
    "Bake the cake at 180 degrees for forty minutes.",
    "Add a pinch of nutmeg to the cream sauce.",
    "Roast the vegetables with olive oil and garlic.",
    "Let the soup cool before blending it smooth.",
    "Marinate the chicken overnight in yogurt and spices.",
    "Fold the flour gently into the batter.",
    "Boil the pasta in plenty of salted water.",
    "Grate the cheese over the hot gratin.",
    "Deglaze the pan with a splash of white wine.",
    "Peel and dice the potatoes for the stew.",
    "Stir the risotto while adding the stock slowly.",
    "Brush the pastry with beaten egg before baking.",
    "Toast the cumin seeds in a dry pan.",
    "Slice the bread and rub it with garlic.",
    "Steam the broccoli for five minutes.",
    "Caramelise the sugar until it turns amber.",
    "Zest the lemon and squeeze its juice into the dressing.",
    "Rest the roast for ten minutes before carving.",
    "Blend the basil, pine nuts and parmesan into pesto.",
    "Poach the eggs in gently simmering water.",
    "Melt the chocolate over a bain-marie.",
    "Reduce the sauce until it coats a spoon.",
    "Mix the rice vinegar into the sushi rice.",
    "Sprinkle fresh herbs over the grilled fish.",
    "Chill the cookie dough for an hour before rolling.",
]


class Counting:
    """Wraps the real embedder and records what it is asked to encode."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name, self.version, self.dim = inner.name, inner.version, inner.dim
        self.calls: list[list[str]] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return self.inner.embed(texts)

    @property
    def embedded(self) -> list[str]:
        return [t for call in self.calls for t in call]


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> MiniLM:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VERITAG_CACHE_DIR", str(tmp_path_factory.mktemp("veritag-cache")))
        yield MiniLM(backend="onnx", precision="fp32").load()


def test_protocols_and_text_key(minilm: MiniLM) -> None:
    assert isinstance(minilm, Embedder)
    assert isinstance(MemoryCache(), EmbeddingCache)
    assert text_key("café") == hashlib.sha256("café".encode()).hexdigest()


def test_memory_cache_returns_only_what_it_holds() -> None:
    cache = MemoryCache()
    cache.put("m1", {"a": np.ones(3), "b": np.zeros(3)})
    got = cache.get("m1", ["a", "c"])
    assert list(got) == ["a"] and got["a"].dtype == np.float32
    assert cache.get("m2", ["a"]) == {}


def test_cached_embed_encodes_each_distinct_text_once(minilm: MiniLM) -> None:
    counting, cache = Counting(minilm), MemoryCache()
    texts = ["one fish", "two fish", "one fish", "red fish"]
    first = cached_embed(counting, texts, cache)
    assert counting.embedded == ["one fish", "two fish", "red fish"]
    np.testing.assert_allclose(first, minilm.embed(texts), atol=2e-5)
    again = cached_embed(counting, texts[::-1] + ["two fish"], cache)
    assert len(counting.calls) == 1  # nothing new: the embedder is not even called
    np.testing.assert_array_equal(again[:4], first[::-1])
    cached_embed(counting, ["blue fish", "red fish"], cache)
    assert counting.calls[-1] == ["blue fish"]
    assert cached_embed(counting, [], cache).shape == (0, 384)
    assert len(cache) == 4


def test_labeler_learns_sports_vs_cooking_without_reembedding(minilm: MiniLM) -> None:
    counting, cache = Counting(minilm), MemoryCache()
    texts = SPORTS + COOKING
    labels = ["sports"] * len(SPORTS) + ["cooking"] * len(COOKING)
    proba = out_of_fold_proba(
        lambda: EmbeddingLabeler(counting, cache=cache),
        texts,
        labels,
        classes=["cooking", "sports"],
    )
    accuracy = np.mean(np.array(["cooking", "sports"])[proba.argmax(1)] == np.array(labels))
    assert accuracy >= 0.95
    assert sorted(counting.embedded) == sorted(texts)  # five folds, every text encoded once

    labeler = EmbeddingLabeler(counting, cache=cache).fit(texts, labels)
    assert isinstance(labeler, Labeler) and labeler.classes_ == ["cooking", "sports"]
    p = labeler.predict_proba(
        ["Grill the sausages and serve with mustard.", "The winger crossed for a header."]
    )
    assert p.shape == (2, 2) and p[0, 0] > 0.5 and p[1, 1] > 0.5
    np.testing.assert_allclose(p.sum(1), 1)
    assert labeler.predict_proba([]).shape == (0, 2)
    assert labeler.name == "minilm-logreg" and labeler.version.startswith(
        "minilm-l6-v2/fp32+logreg"
    )


def test_labeler_one_class_and_unfitted(minilm: MiniLM) -> None:
    labeler = EmbeddingLabeler(minilm)
    with pytest.raises(RuntimeError, match="not fitted"):
        labeler.predict_proba(["x"])
    labeler.fit(SPORTS[:3], ["sports"] * 3)
    np.testing.assert_array_equal(labeler.predict_proba(["anything", "else"]), np.ones((2, 1)))
    with pytest.raises(ValueError, match="one label per text"):
        labeler.fit(SPORTS[:3], ["sports"])


def test_default_embedder_is_minilm_auto_and_lazy() -> None:
    labeler = EmbeddingLabeler()
    assert isinstance(labeler.embedder, MiniLM) and labeler.embedder._forward is None
    assert labeler.embedder.backend == "onnx"
    assert isinstance(labeler.cache, MemoryCache)
