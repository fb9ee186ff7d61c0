"""Item domains: metadata first, then keywords, then a model trained on the items that have one."""

from __future__ import annotations

import numpy as np
import pytest

from veritag.labelers.tfidf import TfidfLabeler
from veritag.routing.domains import DEFAULT_DOMAINS, classify_domains, keyword_domains

SPACE = [
    "the telescope found a distant galaxy",
    "an orbit around the red planet",
    "the comet passed the moon",
    "astronomers saw a nebula through the telescope",
    "the planet has three moons",
]
WARD = [
    "the nurse changed the bandage on the ward",
    "she waited in the ward for the nurse",
    "the bandage was fresh after the nurse came",
    "the ward round started with the nurse",
]


def test_metadata_wins_and_unknown_values_fall_through() -> None:
    guess = classify_domains(
        ["stock prices fell", "stock prices fell", "hello there"], known=["medicine", "law", None]
    )
    assert guess.domains == ["medicine", "finance", "general"]
    assert guess.origins == ["metadata", "keywords", "fallback"]


def test_keywords_whole_words_plurals_phrases_and_ties() -> None:
    texts = [
        "Two patients got the vaccine",
        "a taxi ride",
        "interest rates and mortgages",
        "malware hit the hospital",
        "The kids and other children played",
    ]
    codes = keyword_domains(texts, DEFAULT_DOMAINS)
    names = [DEFAULT_DOMAINS[c] if c >= 0 else None for c in codes]
    # "taxi" is not "tax"; one hit each for security and medicine is a tie, so no answer
    assert names == ["medicine", None, "finance", None, "child_safety"]


def test_keywords_can_be_overridden_and_custom_domains_have_none() -> None:
    domains = ("space", "finance", "general")
    guess = classify_domains(
        ["a galaxy far away", "a bank loan"],
        domains=domains,
        keywords={"space": ["galaxy"], "finance": ["crowdfunding"]},
    )
    assert guess.domains == ["space", "general"]
    assert guess.origins == ["keywords", "fallback"]


def test_model_learns_from_items_with_metadata_and_examples() -> None:
    texts = [*SPACE, *WARD, "a new galaxy in the telescope", "the nurse on the ward"]
    known: list[str | None] = ["stem"] * len(SPACE) + [None] * len(WARD) + [None, None]
    examples = [(t, "medicine") for t in WARD]
    guess = classify_domains(texts, known=known, examples=examples, labeler=TfidfLabeler)
    assert guess.domains[-2:] == ["stem", "medicine"]
    assert guess.origins[-2:] == ["model", "model"]
    assert guess.origins[: len(SPACE)] == ["metadata"] * len(SPACE)


def test_no_model_from_one_domain_or_without_a_labeler() -> None:
    texts = [*SPACE, "a new galaxy in the telescope"]
    known: list[str | None] = ["stem"] * len(SPACE) + [None]
    one_domain = classify_domains(texts, known=known, labeler=TfidfLabeler)
    assert one_domain.domains[-1] == "general" and one_domain.origins[-1] == "fallback"
    two = classify_domains(texts, known=known, examples=[(t, "medicine") for t in WARD])
    assert two.origins[-1] == "fallback"


def test_an_unsure_model_is_ignored() -> None:
    texts = [*SPACE, *WARD, "completely unrelated words"]
    known = ["stem"] * len(SPACE) + ["medicine"] * len(WARD) + [None]
    guess = classify_domains(texts, known=known, labeler=TfidfLabeler, min_confidence=0.99)
    assert guess.origins[-1] == "fallback"


def test_without_general_the_last_domain_is_the_fallback_and_inputs_are_checked() -> None:
    assert classify_domains(["nothing"], domains=("a", "b")).domains == ["b"]
    with pytest.raises(ValueError, match="one"):
        classify_domains(["x", "y"], known=["stem"])
    with pytest.raises(ValueError, match="at least one domain"):
        classify_domains(["x"], domains=())
    assert keyword_domains([], DEFAULT_DOMAINS).shape == (0,)
    assert np.all(keyword_domains(["x"], ()) == -1)
