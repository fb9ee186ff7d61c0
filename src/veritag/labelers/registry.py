"""Labelers by name, for the command line and the file replay.

A name gives a *factory*: out-of-fold training builds one fresh labeler per fold, and the
factory makes them share what is expensive (the embedding model, and its vector cache, so a
text is embedded once however many folds see it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import VeritagError
from .base import Labeler
from .tfidf import TfidfLabeler

if TYPE_CHECKING:
    from .embedding import EmbeddingCache

__all__ = ["DEFAULT_LABELER", "LABELER_NAMES", "labeler_factory"]

#: ``minilm``: the bundled sentence-embedding model + logistic regression; ``tfidf``: word and
#: character n-grams + logistic regression (no model, fastest).
LABELER_NAMES = ("minilm", "tfidf")
DEFAULT_LABELER = "minilm"


def labeler_factory(name: str, *, cache: EmbeddingCache | None = None) -> Callable[[], Labeler]:
    """A factory of fresh, unfitted labelers of kind ``name``; ``cache`` stores embeddings."""
    if name == "tfidf":
        return TfidfLabeler
    if name == "minilm":
        from .embedding import EmbeddingLabeler, MemoryCache
        from .minilm import MiniLM, MiniLMNotInstalledError, model_path

        try:
            model_path()  # say so now, as a user error, not midway through training
        except MiniLMNotInstalledError as exc:
            raise VeritagError(f"{exc}; or choose --labeler tfidf") from None
        embedder = MiniLM()
        shared = cache if cache is not None else MemoryCache()
        return lambda: EmbeddingLabeler(embedder=embedder, cache=shared)
    raise VeritagError(f"unknown labeler {name!r}; choose one of {', '.join(LABELER_NAMES)}")
