"""Plain helpers shared by the test modules (fixtures live in conftest.py).

Tests only use the sample bundled with the package, or files they write into ``tmp_path``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import sqlalchemy as sa

from veritag.quickstart import sample_dir
from veritag.resolve.core import BASES
from veritag.store import Project, Store
from veritag.store.models import PosteriorBlock
from veritag.store.posterior_blocks import decode_block
from veritag.store.queries import create_project, project_counts

SAMPLE = sample_dir()
TEXTS = SAMPLE / "texts.csv"
LABELS = SAMPLE / "labels.csv"
GT = SAMPLE / "gt.csv"

RTE_SCHEMA = {"type": "classification", "labels": ["0", "1"]}


def make_project(store: Store, name: str = "rte", schema: dict[str, Any] | None = None) -> Project:
    with store.session() as session:
        return create_project(session, name=name, schema=schema or RTE_SCHEMA)


def counts(store: Store, project: Project) -> dict[str, int]:
    with store.session() as session:
        return project_counts(session, project_id=project.id)


def stored_posteriors(store: Store, run_id: int | None = None) -> list[dict[str, Any]]:
    """Every stored run's answers (or run ``run_id``'s), one dict per item, decoded from the
    blocks: ``label`` as the value, ``basis`` as its name."""
    stmt = sa.select(PosteriorBlock.payload).order_by(PosteriorBlock.run_id, PosteriorBlock.block)
    if run_id is not None:
        stmt = stmt.where(PosteriorBlock.run_id == run_id)
    with store.engine.connect() as conn:
        payloads = conn.scalars(stmt).all()
    rows = [row for payload in payloads for row in decode_block(payload).to_pylist()]
    return [{**r, "label": json.loads(r["label"]), "basis": BASES[r["basis"]]} for r in rows]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def write_csv(path: Path, header: list[str], rows: Iterable[Iterable[Any]]) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [
        json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()
    ]


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def triples(path: Path) -> set[tuple[str, str, str]]:
    """The (task, worker, label) triples of a long-format CSV."""
    return {(r["task"], r["worker"], r["label"]) for r in read_csv(path)}


def majority_by_hand(path: Path) -> dict[str, tuple[str, float, int]]:
    """Per task of a long CSV: (winning label, its share, label count); ties go to the smallest."""
    votes: dict[str, dict[str, int]] = {}
    for r in read_csv(path):
        per = votes.setdefault(r["task"], {})
        per[r["label"]] = per.get(r["label"], 0) + 1
    out = {}
    for task, per in votes.items():
        best = min(per, key=lambda label: (-per[label], label))
        total = sum(per.values())
        out[task] = (best, per[best] / total, total)
    return out


SPAM_WORDS = {
    "spam": ["win", "prize", "cash", "free", "claim"],
    "ham": ["meet", "lunch", "tomorrow", "home", "call"],
}


def spam_corpus(n: int, seed: int = 0, noise: float = 0.1) -> tuple[list[str], np.ndarray]:
    """Texts whose words mostly come from their class's vocabulary."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(["spam", "ham"], size=n, p=[0.3, 0.7])
    texts = []
    for y in labels:
        other = "ham" if y == "spam" else "spam"
        words = [
            rng.choice(SPAM_WORDS[other] if rng.random() < noise else SPAM_WORDS[y])
            for _ in range(6)
        ]
        texts.append(" ".join(words))
    return texts, labels
