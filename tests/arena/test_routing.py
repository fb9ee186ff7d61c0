"""The router sends arena battles where one more vote most reduces the ranking's uncertainty."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from veritag.arena import import_battles, import_responses
from veritag.routing import service as routing
from veritag.store import Store

from .test_import import arena, write_jsonl


def test_the_router_asks_first_about_the_pair_whose_order_is_open(
    store: Store, tmp_path: Path
) -> None:
    project = arena(store)
    rng = np.random.default_rng(3)
    rows = [
        {
            "question_id": q,
            "model_a": x,
            "model_b": y,
            "judge": "crowd",
            "winner": "model_a" if rng.random() < p else "model_b",
        }
        for q in range(40)
        for x, y, p in (("top", "x", 0.97), ("x", "y", 0.5), ("top", "y", 0.97))
    ]
    import_battles(store, project, write_jsonl(tmp_path / "past.jsonl", rows))
    fresh = [
        {"prompt_id": "new", "prompt": "A new question?", "model": m, "response": f"{m} answers"}
        for m in ("top", "x", "y")
    ]
    import_responses(store, project, write_jsonl(tmp_path / "new.jsonl", fresh))
    routing.configure(store, project, gold_rate=0.0, min_labels=1, max_labels=1)
    routing.add_tutor(store, project, "ann")
    routing.add_tutor(store, project, "bob")
    first = routing.request_work(store, project, "ann")
    assert first is not None and first.external_id == "new:x:y"  # x and y are the undecided pair
    second = routing.request_work(store, project, "bob")
    assert second is not None and second.external_id in ("new:top:x", "new:top:y")
    status = routing.routing_status(store, project)
    assert (
        status.pending == 3 and status.in_flight == 2
    )  # the old battles are done: each has its vote
