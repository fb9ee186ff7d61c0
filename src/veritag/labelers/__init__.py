"""Model labelers: ``fit(texts, labels)``, ``predict_proba(texts)``; every model claim records the
labeler's ``name`` and ``version``."""

from .base import Labeler, out_of_fold_proba
from .embedding import EmbeddingLabeler, MemoryCache
from .llm import LLMLabeler, LLMLabelerError
from .minilm import MiniLM
from .tfidf import TfidfLabeler

__all__ = [
    "EmbeddingLabeler",
    "LLMLabeler",
    "LLMLabelerError",
    "Labeler",
    "MemoryCache",
    "MiniLM",
    "TfidfLabeler",
    "out_of_fold_proba",
]
