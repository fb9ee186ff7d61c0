"""Sentence-embedding labeler: a frozen encoder's vectors + logistic regression.

Encoding dominates the cost (logistic regression on 384-d vectors trains in milliseconds), and the
same texts are encoded again and again: once per out-of-fold split, again at predict time, again
on every retrain. So every vector goes through an ``EmbeddingCache`` keyed by the encoder's
``version`` and a hash of the text, and a text is encoded at most once per cache.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import numpy as np
from numpy.typing import NDArray

from .base import ScikitLabeler

__all__ = [
    "Embedder",
    "EmbeddingCache",
    "EmbeddingLabeler",
    "MemoryCache",
    "cached_embed",
    "text_key",
]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into fixed-size float32 vectors.

    ``version`` must identify the vectors (model and anything that changes them, such as
    precision): caches key on it, so two embedders with one version must give the same vectors.
    """

    name: str
    version: str
    dim: int

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """An (n, dim) array, one row per text, in order."""
        ...


@runtime_checkable
class EmbeddingCache(Protocol):
    """Stored vectors by ``(model, text_key(text))``; ``model`` is the embedder's ``version``."""

    def get(self, model: str, keys: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        """The stored vectors among ``keys``; missing keys are simply absent."""
        ...

    def put(self, model: str, vectors: Mapping[str, NDArray[np.float32]]) -> None:
        """Store (or overwrite) vectors by key."""
        ...


def text_key(text: str) -> str:
    """The cache key of a text: sha256 hex of its UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class MemoryCache:
    """An ``EmbeddingCache`` in a dict, for one process (tests, notebooks, out-of-fold training)."""

    def __init__(self) -> None:
        self.vectors: dict[tuple[str, str], NDArray[np.float32]] = {}

    def __len__(self) -> int:
        return len(self.vectors)

    def get(self, model: str, keys: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        return {k: v for k in keys if (v := self.vectors.get((model, k))) is not None}

    def put(self, model: str, vectors: Mapping[str, NDArray[np.float32]]) -> None:
        self.vectors.update(((model, k), np.asarray(v, np.float32)) for k, v in vectors.items())


def cached_embed(
    embedder: Embedder, texts: Sequence[str], cache: EmbeddingCache | None
) -> NDArray[np.float32]:
    """``embedder.embed(texts)``, encoding (and caching) only the distinct texts ``cache`` lacks."""
    if cache is None:
        return np.asarray(embedder.embed(list(texts)), np.float32)
    keys = [text_key(t) for t in texts]
    unique = dict(zip(keys, texts, strict=True))  # one text per key, first occurrence order
    found = cache.get(embedder.version, list(unique))
    missing = [k for k in unique if k not in found]
    if missing:
        fresh = np.asarray(embedder.embed([unique[k] for k in missing]), np.float32)
        new = dict(zip(missing, fresh, strict=True))
        cache.put(embedder.version, new)
        found = {**found, **new}
    if not keys:
        return np.empty((0, embedder.dim), np.float32)
    return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)


class EmbeddingLabeler(ScikitLabeler):
    """Frozen sentence embeddings (all-MiniLM-L6-v2 by default) + ``LogisticRegression``.

    Pass one ``embedder`` and one ``cache`` to every copy (e.g. the factory given to
    ``out_of_fold_proba``) so the copies share the encoder and never re-encode a text.
    """

    name = "minilm-logreg"
    LOGREG_VERSION = "1"

    def __init__(
        self,
        embedder: Embedder | None = None,
        *,
        cache: EmbeddingCache | None = None,
        C: float = 4.0,
        max_iter: int = 2000,
    ) -> None:
        if embedder is None:
            from .minilm import MiniLM

            embedder = MiniLM()
        self.embedder = embedder
        self.cache: EmbeddingCache = cache if cache is not None else MemoryCache()
        self.C = C
        self.max_iter = max_iter
        # Claims must name the vectors too, so the version follows the embedder's.
        self.version = f"{embedder.version}+logreg{self.LOGREG_VERSION}(C={C:g})"

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """The feature rows for ``texts``, through the cache."""
        return cached_embed(self.embedder, texts, self.cache)

    def make_model(self) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=self.C, max_iter=self.max_iter)

    def features(self, texts: Sequence[str]) -> NDArray[np.float32]:
        return self.embed(texts)
