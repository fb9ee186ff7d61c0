"""Which domain an item belongs to, so it can go to a tutor who knows that domain.

An item's metadata says so when it can (the project's domain field); otherwise a classifier
guesses, most precise rule first:

1. **keywords**: a small word list per domain; the domain with the most hits wins (a tie
   between domains is no answer, because a rule that cannot decide should not pretend to);
2. **model**: once some items have a domain from their metadata, a labeler (by default the
   bundled MiniLM embeddings + logistic regression) is trained on them and labels the rest,
   when it is confident enough; it needs examples of at least two domains, since a one-class
   model would put every item in that class;
3. otherwise ``general``.

Pure: texts and examples in, one domain and its origin per text out. The store keeps each
item's answer (``routing.service``), so a text is classified once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..labelers.base import Labeler

__all__ = [
    "DEFAULT_DOMAINS",
    "DEFAULT_KEYWORDS",
    "FALLBACK_DOMAIN",
    "ORIGINS",
    "DomainGuess",
    "classify_domains",
    "keyword_domains",
]

DEFAULT_DOMAINS = ("stem", "finance", "medicine", "security", "child_safety", "general")
FALLBACK_DOMAIN = "general"
#: Where a domain came from, best evidence first.
ORIGINS = ("metadata", "keywords", "model")
#: The model's top probability must reach this to count; below it the item falls back.
MIN_MODEL_CONFIDENCE = 0.5

DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    "stem": (
        "math",
        "mathematics",
        "equation",
        "algebra",
        "calculus",
        "integral",
        "derivative",
        "theorem",
        "physics",
        "chemistry",
        "molecule",
        "algorithm",
        "engineering",
        "programming",
        "python",
        "quantum",
        "biology",
        "geometry",
        "statistics",
    ),
    "finance": (
        "stock",
        "bond",
        "loan",
        "mortgage",
        "interest rate",
        "tax",
        "investment",
        "investing",
        "portfolio",
        "dividend",
        "bank",
        "credit",
        "inflation",
        "revenue",
        "accounting",
        "crypto",
        "bitcoin",
        "budget",
        "pension",
    ),
    "medicine": (
        "patient",
        "symptom",
        "diagnosis",
        "dose",
        "dosage",
        "drug",
        "disease",
        "treatment",
        "clinical",
        "doctor",
        "hospital",
        "medication",
        "surgery",
        "vaccine",
        "cancer",
        "prescription",
        "infection",
        "therapy",
    ),
    "security": (
        "password",
        "malware",
        "exploit",
        "vulnerability",
        "phishing",
        "encryption",
        "firewall",
        "hacker",
        "hacking",
        "ransomware",
        "cve",
        "authentication",
        "breach",
        "cyberattack",
        "botnet",
        "backdoor",
    ),
    "child_safety": (
        "child",
        "children",
        "minor",
        "kid",
        "grooming",
        "underage",
        "parental",
        "teen",
        "teenager",
        "toddler",
        "infant",
        "babysitter",
    ),
    "general": (),
}


@dataclass(frozen=True)
class DomainGuess:
    """One domain per text (``domains``) and how it was found (``origins``, see ``ORIGINS``;
    ``fallback`` where nothing decided)."""

    domains: list[str]
    origins: list[str]


def _pattern(words: Sequence[str]) -> re.Pattern[str] | None:
    """Whole words or phrases, case-insensitive, with an optional plural ``s``/``es``."""
    if not words:
        return None
    alternatives = "|".join(re.escape(w.lower()) for w in sorted(words, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})(?:e?s)?\b")


def keyword_domains(
    texts: Sequence[str],
    domains: Sequence[str],
    keywords: Mapping[str, Sequence[str]] | None = None,
) -> NDArray[np.int64]:
    """Per text the index into ``domains`` with the most keyword hits; -1 for no hit or a tie.

    ``keywords`` replaces the built-in list of the domains it names; a domain without a list
    (custom domains, ``general``) is never chosen by keywords.
    """
    lists = {**DEFAULT_KEYWORDS, **(keywords or {})}
    hits = np.zeros((len(texts), len(domains)), dtype=np.int64)
    lowered = [t.lower() for t in texts]
    for j, domain in enumerate(domains):
        pattern = _pattern(lists.get(domain, ()))
        if pattern is not None:
            hits[:, j] = [len(pattern.findall(t)) for t in lowered]
    if not hits.size:
        return np.full(len(texts), -1, np.int64)
    top = hits.max(axis=1)
    unique = (hits == top[:, None]).sum(axis=1) == 1
    return np.where((top > 0) & unique, hits.argmax(axis=1), -1).astype(np.int64)


def classify_domains(
    texts: Sequence[str],
    *,
    domains: Sequence[str] = DEFAULT_DOMAINS,
    known: Sequence[str | None] | None = None,
    keywords: Mapping[str, Sequence[str]] | None = None,
    examples: Sequence[tuple[str, str]] = (),
    labeler: Callable[[], Labeler | None] | None = None,
    min_confidence: float = MIN_MODEL_CONFIDENCE,
) -> DomainGuess:
    """Each text's domain: ``known`` (its metadata) where that is one of ``domains``, else the
    keyword rules, else ``labeler`` trained on the known texts plus ``examples`` (text, domain),
    else ``general`` (or the last domain, if ``general`` is not declared).

    ``labeler`` makes an unfitted labeler (e.g. ``labeler_factory("minilm")``); it is called only
    when some text needs the model, and without it (or when it returns None) that step is skipped.
    """
    if not domains:
        raise ValueError("need at least one domain")
    allowed = list(domains)
    index = {d: j for j, d in enumerate(allowed)}
    n = len(texts)
    given = list(known) if known is not None else [None] * n
    if len(given) != n:
        raise ValueError(
            f"known must give one (possibly missing) domain per text: {len(given)} != {n}"
        )
    code = np.array([index.get(d, -1) if d is not None else -1 for d in given], dtype=np.int64)
    origin = np.where(code >= 0, 0, -1)
    todo = np.flatnonzero(code < 0)
    if todo.size:
        by_keyword = keyword_domains([texts[i] for i in todo], allowed, keywords)
        code[todo], origin[todo] = by_keyword, np.where(by_keyword >= 0, 1, -1)
    todo = np.flatnonzero(code < 0)
    train = [(texts[i], allowed[code[i]]) for i in np.flatnonzero(origin == 0)]
    train += [(t, d) for t, d in examples if d in index]
    model = (
        labeler() if todo.size and labeler is not None and len({d for _, d in train}) >= 2 else None
    )
    if model is not None:
        model.fit([t for t, _ in train], [d for _, d in train])
        probs = model.predict_proba([texts[i] for i in todo])
        classes = np.array([index[str(c)] for c in model.classes_], dtype=np.int64)  # type: ignore[attr-defined]
        sure = probs.max(axis=1) >= min_confidence
        code[todo[sure]] = classes[probs.argmax(axis=1)[sure]]
        origin[todo[sure]] = 2
    fallback = index.get(FALLBACK_DOMAIN, len(allowed) - 1)
    names = np.array(allowed, dtype=object)[np.where(code >= 0, code, fallback)]
    origins = np.array([*ORIGINS, "fallback"], dtype=object)[origin]
    return DomainGuess(names.tolist(), origins.tolist())
