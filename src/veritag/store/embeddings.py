"""Embeddings computed once: a store-backed cache of text vectors, shared by every project.

It implements ``veritag.labelers.embedding.EmbeddingCache``: vectors are keyed by the embedding
model's name and version and the SHA-256 of the text, and stored as raw float32 bytes, so
retraining a labeler as human labels arrive never re-embeds a text it has seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import sqlalchemy as sa
from numpy.typing import NDArray

from .engine import Store
from .models import Embedding
from .queries import execute_many, insert_ignore

__all__ = ["StoreEmbeddingCache"]

#: Keys per ``IN (...)`` query; below every driver's parameter limit.
_BATCH = 5_000


class StoreEmbeddingCache:
    """Text vectors in the store's ``embeddings`` table (float32, one row per model and text)."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, model: str, keys: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        wanted = list(dict.fromkeys(keys))
        found: dict[str, NDArray[np.float32]] = {}
        with self.store.engine.connect() as conn:
            for start in range(0, len(wanted), _BATCH):
                rows = conn.execute(
                    sa.select(Embedding.text_key, Embedding.vector).where(
                        Embedding.model == model,
                        Embedding.text_key.in_(wanted[start : start + _BATCH]),
                    )
                )
                found.update((key, np.frombuffer(blob, dtype=np.float32)) for key, blob in rows)
        return found

    def put(self, model: str, vectors: Mapping[str, NDArray[np.float32]]) -> None:
        rows = [
            {"model": model, "text_key": key, "vector": np.asarray(vec, dtype=np.float32).tobytes()}
            for key, vec in vectors.items()
        ]
        with self.store.engine.begin() as conn:
            stmt = insert_ignore(conn, Embedding.__table__, ["model", "text_key"])
            for start in range(0, len(rows), _BATCH):
                execute_many(conn, stmt, rows[start : start + _BATCH])
