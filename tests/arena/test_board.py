"""An arena project's leaderboard: the store's votes, tutor weights, domains and active
selection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sqlalchemy as sa
from scipy.optimize import minimize

from veritag.arena import (
    import_battles,
    item_priority,
    load_battles,
    project_domains,
    project_leaderboard,
    tutor_weights,
)
from veritag.arena.board import _measured_kappa
from veritag.errors import InputError
from veritag.store import Project, Store
from veritag.store.models import Claim, Item, Source

from .test_import import SAMPLE, arena, write_jsonl

FULL = (
    Path(__file__).resolve().parents[3]
    / "shared"
    / "data"
    / "arena"
    / "prd_vicuna80_human"
    / "battles.jsonl"
)
STRENGTH = {"ace": 1.2, "bolt": 0.6, "cog": 0.0, "dud": -0.9}


def reference_order(rows: list[dict[str, Any]]) -> list[str]:
    """Bradley-Terry with ties as half a win, fitted by scipy: the order an independent fit
    gives."""
    models = sorted({r["model_a"] for r in rows} | {r["model_b"] for r in rows})
    index = {m: i for i, m in enumerate(models)}
    a = np.array([index[r["model_a"]] for r in rows])
    b = np.array([index[r["model_b"]] for r in rows])
    s = np.array([{"model_a": 1.0, "model_b": 0.0}.get(r["winner"], 0.5) for r in rows])

    def nll(theta: np.ndarray) -> float:
        d = theta[a] - theta[b]
        return float(
            -(s * -np.logaddexp(0, -d) + (1 - s) * -np.logaddexp(0, d)).sum() + 1e-6 * theta @ theta
        )

    theta = minimize(nll, np.zeros(len(models)), method="BFGS").x
    return [models[i] for i in np.argsort(-theta)]


def simulated(path: Path, *, noisy: bool, questions: int = 60) -> Path:
    """Battles among ``STRENGTH``'s models: each battle judged by three careful tutors (right
    85% of the time) and, with ``noisy``, by one who answers at random (the same careful votes
    either way)."""
    rng, noise = np.random.default_rng(7), np.random.default_rng(8)
    models = sorted(STRENGTH)
    rows = []
    for q in range(questions):
        for i, x in enumerate(models):
            for y in models[i + 1 :]:
                p = 1 / (1 + np.exp(STRENGTH[y] - STRENGTH[x]))
                truth = "model_a" if rng.random() < p else "model_b"
                for judge in ("careful1", "careful2", "careful3"):
                    vote = (
                        truth
                        if rng.random() < 0.85
                        else rng.choice(["model_a", "model_b", "tie", "both_bad"])
                    )
                    rows.append(
                        {
                            "question_id": q,
                            "model_a": x,
                            "model_b": y,
                            "winner": str(vote),
                            "judge": judge,
                        }
                    )
                if noisy:
                    rows.append(
                        {
                            "question_id": q,
                            "model_a": x,
                            "model_b": y,
                            "judge": "noisy",
                            "winner": str(noise.choice(["model_a", "model_b", "tie", "both_bad"])),
                        }
                    )
    return write_jsonl(path, rows)


def test_the_sample_makes_a_board(store: Store) -> None:
    project = arena(store)
    import_battles(store, project, SAMPLE, source_name="prd-humans")
    raw = [json.loads(line) for line in SAMPLE.read_text(encoding="utf-8").splitlines()]
    board = project_leaderboard(store, project, rounds=20)
    assert sorted(board.models) == sorted({r["model_a"] for r in raw} | {r["model_b"] for r in raw})
    assert board.battles.sum() == 2 * len(raw)
    rows = board.rows()
    assert rows[0]["rank"] == 1 and all(r["lower"] <= r["rating"] <= r["upper"] for r in rows)
    assert project_leaderboard(store, project, rounds=20) is board  # cached until a vote comes in
    assert tutor_weights(store, project) == {
        next(iter(tutor_weights(store, project))): 1.0
    }  # a lone source


@pytest.mark.skipif(not FULL.exists(), reason=f"{FULL} is not here (the shared data folder)")
def test_the_full_prd_vicuna80_file_ranks_as_an_independent_fit(sqlite_store: Store) -> None:
    project = arena(sqlite_store)
    import_battles(sqlite_store, project, FULL, source_name="prd-humans")
    rows = [json.loads(line) for line in FULL.read_text(encoding="utf-8").splitlines()]
    board = project_leaderboard(sqlite_store, project, interval="sandwich")
    assert board.models == reference_order(rows)
    assert board.models[0] == "gpt4"


def test_a_tutor_who_answers_at_random_gets_no_weight(sqlite_store: Store, tmp_path: Path) -> None:
    clean = arena(sqlite_store, "clean")
    import_battles(sqlite_store, clean, simulated(tmp_path / "clean.jsonl", noisy=False))
    mixed = arena(sqlite_store, "mixed")
    import_battles(sqlite_store, mixed, simulated(tmp_path / "mixed.jsonl", noisy=True))

    weights = tutor_weights(sqlite_store, mixed)
    with sqlite_store.engine.connect() as conn:
        names = dict(
            conn.execute(
                sa.select(Source.id, Source.name).where(Source.project_id == mixed.id)
            ).all()
        )
    by_name = {names[s]: w for s, w in weights.items()}
    assert by_name["noisy"] < 0.1
    assert all(by_name[f"careful{i}"] > 0.4 for i in (1, 2, 3))

    def ratings(project: Project, weighted: bool) -> dict[str, float]:
        board = project_leaderboard(sqlite_store, project, interval="none", weighted=weighted)
        return dict(zip(board.models, board.rating, strict=True))

    base, weighted, plain = ratings(clean, True), ratings(mixed, True), ratings(mixed, False)
    assert list(weighted) == list(base) == sorted(STRENGTH, key=STRENGTH.__getitem__, reverse=True)
    moved_weighted = max(abs(weighted[m] - base[m]) for m in STRENGTH)
    moved_plain = max(abs(plain[m] - base[m]) for m in STRENGTH)
    assert (
        moved_weighted < 10 and moved_plain > 30
    )  # random votes pull ratings to the middle unless weighed out


def two_domains(path: Path) -> Path:
    """In code prompts "x" beats "y", in math prompts the other way round, and "z" only plays code,
    losing every time. Tutor "t" says who won, tutor "u" always says tie: neither agrees with the
    other beyond chance."""
    rows = []
    for q in range(8):
        domain = "math" if q % 2 else "code"
        rows += [
            {
                "question_id": q,
                "model_a": "x",
                "model_b": "y",
                "domain": domain,
                "judge": "t",
                "winner": "model_a" if domain == "code" else "model_b",
            },
            {
                "question_id": q,
                "model_a": "y",
                "model_b": "x",
                "domain": domain,
                "judge": "u",
                "winner": "tie",
            },
        ]
        if domain == "code":
            rows.append(
                {
                    "question_id": q,
                    "model_a": "z",
                    "model_b": "x",
                    "domain": domain,
                    "judge": "t",
                    "winner": "model_b",
                }
            )
    return write_jsonl(path, rows)


def test_domain_boards(store: Store, tmp_path: Path) -> None:
    project = arena(store)
    import_battles(store, project, two_domains(tmp_path / "b.jsonl"))
    assert project_domains(store, project) == ["code", "math"]
    code = project_leaderboard(store, project, domain="code", interval="sandwich")
    math = project_leaderboard(store, project, domain="math", interval="sandwich")
    assert code.models[0] == "x" and sorted(code.models) == ["x", "y", "z"]
    assert code.models[-1] == "z"  # it only ever lost: ranked last, not dropped
    assert math.models == ["y", "x"]
    with pytest.raises(InputError, match="no votes in domain 'poetry'"):
        project_leaderboard(store, project, domain="poetry")
    with pytest.raises(InputError, match="interval must be"):
        project_leaderboard(store, project, interval="vibes")


def test_tutors_no_better_than_chance_leave_every_vote_counting(
    store: Store, tmp_path: Path
) -> None:
    """ "Always tie" and "t" agree only by chance: kappa is exactly 0 for both, whatever the CPU's
    rounding, and all-zero weights fall back to counting every vote (else no vote would count)."""
    project = arena(store)
    import_battles(store, project, two_domains(tmp_path / "b.jsonl"))
    humans, kappa = _measured_kappa(store, project)
    assert len(humans) == 2 and sorted(kappa.values()) == [0.0, 0.0]
    assert set(tutor_weights(store, project).values()) == {1.0}


def test_undone_votes_do_not_count(store: Store, tmp_path: Path) -> None:
    project = arena(store)
    import_battles(
        store,
        project,
        write_jsonl(
            tmp_path / "r.jsonl",
            [
                {"question_id": 1, "model_a": "x", "model_b": "y", "winner": "tie", "judge": "old"},
                {
                    "question_id": 1,
                    "model_a": "x",
                    "model_b": "y",
                    "winner": "both_bad",
                    "judge": "tut",
                },
            ],
        ),
    )
    with store.engine.connect() as conn:
        assert sorted(load_battles(conn, project).outcome) == ["both_bad", "tie"]
    with store.session() as session:  # an undo: a retraction naming the claim it takes back
        claim = session.scalar(
            sa.select(Claim)
            .join(Source, Source.id == Claim.source_id)
            .where(Claim.project_id == project.id, Source.name == "tut")
        )
        session.add(
            Claim(
                project_id=project.id,
                item_id=claim.item_id,
                source_id=claim.source_id,
                value=None,
                retracts=claim.id,
            )
        )
    with store.engine.connect() as conn:
        assert list(load_battles(conn, project).outcome) == ["tie"]


def test_item_priority_prefers_pairs_whose_order_is_open(store: Store, tmp_path: Path) -> None:
    project = arena(store)
    rows = [{"question_id": 0, "model_a": "x", "model_b": "y", "winner": "tie", "judge": "t"}]
    import_battles(store, project, write_jsonl(tmp_path / "one.jsonl", rows))
    with store.engine.connect() as conn:
        ids = dict(
            conn.execute(
                sa.select(Item.external_id, Item.id).where(Item.project_id == project.id)
            ).all()
        )
    assert item_priority(store, project, np.array([ids["0:x:y"]])).tolist() == [
        1.0
    ]  # too few votes: uniform

    rng = np.random.default_rng(3)
    rows = []
    for q in range(1, 41):
        for x, y, p in (("top", "x", 0.97), ("x", "y", 0.5), ("top", "y", 0.97)):
            rows.append(
                {
                    "question_id": q,
                    "model_a": x,
                    "model_b": y,
                    "judge": "t",
                    "winner": "model_a" if rng.random() < p else "model_b",
                }
            )
    import_battles(store, project, write_jsonl(tmp_path / "many.jsonl", rows))
    with store.engine.connect() as conn:
        ids = dict(
            conn.execute(
                sa.select(Item.external_id, Item.id).where(Item.project_id == project.id)
            ).all()
        )
    close, far = ids["1:x:y"], ids["1:top:x"]
    priority = item_priority(store, project, np.array([close, far, 10**9], dtype=np.int64))
    assert priority[0] == pytest.approx(1.0) and 0 < priority[1] < priority[0]
    assert priority[2] == 1.0  # an id that is no battle item of the project
