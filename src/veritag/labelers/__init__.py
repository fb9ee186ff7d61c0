"""Model labelers: ``fit(texts, labels)``, ``predict_proba(texts)``; every model claim records the
labeler's ``name`` and ``version``."""

from .base import Labeler, out_of_fold_proba
from .llm import LLMLabeler, LLMLabelerError
from .tfidf import TfidfLabeler

__all__ = ["LLMLabeler", "LLMLabelerError", "Labeler", "TfidfLabeler", "out_of_fold_proba"]
