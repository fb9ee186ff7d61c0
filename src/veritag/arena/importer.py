"""Arena imports: model responses become battle items, existing battles become claims.

A *battle item* is one prompt and two models' responses to it. Its external id is
``prompt_id:model_x:model_y`` with the two names sorted, so the same pair of the same prompt is
one item whichever file (responses or battles) brings it first, and importing a file again adds
nothing. Which model is stored as ``model_a`` is a seeded coin per item (a hash of its external
id), so the stored side carries no information; tutors additionally see the sides drawn per lease
by the server and never the model names.

Every row is checked before anything is written; a bad row is named by file and line and the
whole file is refused (``RowErrors``).
"""

from __future__ import annotations

import hashlib
import itertools
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from ..errors import InputError, RowError, RowErrors
from ..io.readers import SHOWN_ERRORS, open_rows
from ..limits import MAX_ITEM_TEXT_LENGTH, json_problem
from ..schema import ArenaSchema, canonical_json
from ..store.claims import NewClaimRow, add_claims, claim_row
from ..store.engine import Store
from ..store.models import Claim, ImportRecord, Item, Project
from ..store.queries import insert_ignore, project_schema, source_ids
from ..truth.outcomes import outcome_named, unknown_outcome

__all__ = [
    "ArenaImport",
    "arena_schema",
    "battle_id",
    "import_battles",
    "import_responses",
]

_CHUNK = 500


@dataclass
class ArenaImport:
    """What one arena import read and wrote."""

    path: str
    rows: int = 0
    prompts: int = 0
    models: int = 0
    items_added: int = 0
    items_filled: int = 0
    claims_added: int = 0

    @property
    def added_nothing(self) -> bool:
        return not (self.items_added or self.items_filled or self.claims_added)


def arena_schema(project: Project) -> ArenaSchema:
    """The project's schema, or ``InputError`` when it is no arena project."""
    schema = project_schema(project)
    if not isinstance(schema, ArenaSchema):
        raise InputError(
            f"project {project.name!r} is a {schema.type} project, not an arena project "
            "(create one with: veritag init NAME --task arena)"
        )
    return schema


def battle_id(prompt_id: str, model_x: str, model_y: str) -> str:
    """The external id of the battle item of two models on one prompt (order does not matter)."""
    first, second = sorted((model_x, model_y))
    return f"{prompt_id}:{first}:{second}"


def _coin(key: str, seed: int) -> bool:
    """A fair, reproducible coin per key (the first byte of a SHA-256)."""
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()[0] & 1 == 1


def _oriented(external_id: str, model_x: str, model_y: str, seed: int) -> tuple[str, str]:
    """(model_a, model_b) of a new battle item: the sorted pair, swapped by the item's coin."""
    first, second = sorted((model_x, model_y))
    return (second, first) if _coin(external_id, seed) else (first, second)


def _text(value: Any) -> str | None:
    """A cell as stripped text; None when blank. Whole floats (CSV/Parquet ids) lose their
    ``.0``."""
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


class _Rows:
    """Streams a file's rows and collects bad ones (file, line, field) instead of stopping."""

    def __init__(self, path: Path, fmt: str | None, encoding: str) -> None:
        self.path = Path(path)
        self.file = str(path)
        self.reader = open_rows(self.path, fmt=fmt, encoding=encoding)
        self.errors: list[RowError] = []
        self.total = 0
        self.rows = 0

    def fail(self, line: int, field: str | None, message: str) -> None:
        self.total += 1
        if len(self.errors) < SHOWN_ERRORS:
            self.errors.append(RowError(self.file, line, field, message, unit=self.reader.unit))

    def __iter__(self) -> Any:
        try:
            for row in self.reader:
                self.rows += 1
                if row.error is not None:
                    self.fail(row.line, None, row.error)
                    continue
                problem = next(
                    (
                        (column, f"the value {found}")
                        for column, value in row.values.items()
                        if (found := json_problem(value, MAX_ITEM_TEXT_LENGTH, finite=False))
                    ),
                    None,
                )
                if (
                    problem is not None
                ):  # a NUL, a lone surrogate or an oversized cell: see veritag.limits
                    self.fail(row.line, *problem)
                    continue
                yield row
        finally:
            self.reader.close()

    def need(self, line: int, values: dict[str, Any], column: str) -> str | None:
        value = _text(values.get(column))
        if value is None:
            self.fail(
                line, column, "missing field" if column not in values else "the value is empty"
            )
        return value

    def check(self) -> None:
        if self.rows == 0 and not self.total:
            raise InputError(f"{self.file}: no rows to import")
        if self.total:
            exc = RowErrors(self.errors, self.total)
            more = self.total - len(self.errors)
            exc.args = (
                f"{self.total} bad row(s); nothing was written:\n"
                + "\n".join(map(str, self.errors))
                + (f"\n... and {more} more bad row(s)" if more > 0 else ""),
            )
            raise exc


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _existing(
    conn: sa.Connection, project_id: int, external_ids: list[str]
) -> dict[str, tuple[int, Any]]:
    """(item id, data) of the items that exist, by external id."""
    out: dict[str, tuple[int, Any]] = {}
    for start in range(0, len(external_ids), _CHUNK):
        chunk = external_ids[start : start + _CHUNK]
        rows = conn.execute(
            sa.select(Item.external_id, Item.id, Item.data).where(
                Item.project_id == project_id, Item.external_id.in_(chunk)
            )
        )
        out.update({ext: (item_id, data) for ext, item_id, data in rows})
    return out


def _count(conn: sa.Connection, table: Any, project_id: int) -> int:
    return int(
        conn.scalar(
            sa.select(sa.func.count()).select_from(table).where(table.c.project_id == project_id)
        )
        or 0
    )


def _record(conn: sa.Connection, project: Project, path: Path, result: ArenaImport) -> None:
    conn.execute(
        sa.insert(ImportRecord).values(
            project_id=project.id,
            path=str(path),
            sha256=_sha256(path),
            rows=result.rows,
            items_added=result.items_added,
            claims_added=result.claims_added,
            gold_added=0,
            rows_skipped=0,
        )
    )


@dataclass
class _Response:
    line: int
    prompt: str
    response: str
    domain: str | None


def import_responses(
    store: Store,
    project: Project,
    path: Path,
    *,
    max_pairs: int | None = None,
    seed: int = 0,
    fmt: str | None = None,
    encoding: str = "utf-8",
) -> ArenaImport:
    """Import model responses (``prompt_id, prompt, model, response[, domain]`` per row, JSONL,
    CSV/TSV or Parquet) as battle items: one item per prompt and unordered pair of its models.

    Parameters
    ----------
    max_pairs : int, optional
        At most this many pairs per prompt, drawn by a seeded shuffle per prompt (the same ones
        on every import); default all ``k (k - 1) / 2`` pairs of the prompt's ``k`` models.
    seed : int
        Salts the coin that decides which model of an item is ``model_a``, and the draw of pairs.

    An item that a battles file created without responses gets them (in its own model order);
    items that already have them are left alone, so importing the same file twice adds nothing.
    """
    schema = arena_schema(project)
    if max_pairs is not None and max_pairs < 1:
        raise InputError("max_pairs must be at least 1")
    rows = _Rows(path, fmt, encoding)
    prompts: dict[str, dict[str, _Response]] = {}
    for row in rows:
        v = row.values
        prompt_id, prompt = rows.need(row.line, v, "prompt_id"), rows.need(row.line, v, "prompt")
        model, response = rows.need(row.line, v, "model"), rows.need(row.line, v, "response")
        if prompt_id is None or prompt is None or model is None or response is None:
            continue
        if ":" in model:
            rows.fail(
                row.line,
                "model",
                f"model name {model!r} contains ':' (item ids are prompt_id:model:model)",
            )
            continue
        domain = _text(v.get("domain"))
        by_model = prompts.setdefault(prompt_id, {})
        first = next(iter(by_model.values()), None)
        if model in by_model:
            rows.fail(
                row.line,
                "model",
                f"a second response of {model!r} to prompt {prompt_id!r} "
                f"(first on line {by_model[model].line})",
            )
        elif first is not None and first.prompt != prompt:
            rows.fail(
                row.line,
                "prompt",
                f"prompt {prompt_id!r} has a different text on line {first.line}",
            )
        elif first is not None and first.domain != domain:
            rows.fail(
                row.line,
                "domain",
                f"prompt {prompt_id!r} has domain {first.domain!r} on line {first.line}",
            )
        else:
            by_model[model] = _Response(row.line, prompt, response, domain)
    rows.check()

    items: list[dict[str, Any]] = []
    for prompt_id, by_model in prompts.items():
        pairs = list(itertools.combinations(sorted(by_model), 2))
        if max_pairs is not None and len(pairs) > max_pairs:
            pairs.sort(
                key=lambda p: hashlib.sha256(f"{seed}:{prompt_id}:{p[0]}:{p[1]}".encode()).digest()
            )
            pairs = pairs[:max_pairs]
        for x, y in pairs:
            ext = battle_id(prompt_id, x, y)
            a, b = _oriented(ext, x, y, seed)
            first = by_model[a]
            items.append(
                {
                    "external_id": ext,
                    "text": first.prompt,
                    "a": a,
                    "b": b,
                    "data": {
                        schema.prompt_field: first.prompt,
                        schema.a_field: by_model[a].response,
                        schema.b_field: by_model[b].response,
                        schema.model_a_field: a,
                        schema.model_b_field: b,
                    },
                    "meta": {schema.domain_field: first.domain, "prompt_id": prompt_id},
                }
            )

    result = ArenaImport(
        path=str(path),
        rows=rows.rows,
        prompts=len(prompts),
        models=len({m for by_model in prompts.values() for m in by_model}),
    )
    with store.begin_write() as conn:
        known = _existing(conn, project.id, [i["external_id"] for i in items])
        fresh = [i for i in items if i["external_id"] not in known]
        for start in range(0, len(fresh), _CHUNK):
            conn.execute(
                insert_ignore(conn, Item.__table__, ["project_id", "external_id"]),
                [
                    {
                        "project_id": project.id,
                        "external_id": i["external_id"],
                        "text": i["text"],
                        "data": i["data"],
                        "meta": i["meta"],
                    }
                    for i in fresh[start : start + _CHUNK]
                ],
            )
        result.items_added = len(fresh)
        for i in items:
            if i["external_id"] not in known:
                continue
            item_id, data = known[i["external_id"]]
            data = dict(data or {})
            if data.get(schema.a_field) is not None and data.get(schema.b_field) is not None:
                continue  # already has its responses: nothing to add
            # Fill responses in the item's own order, which may differ from this import's coin.
            responses = {i["a"]: i["data"][schema.a_field], i["b"]: i["data"][schema.b_field]}
            a, b = data.get(schema.model_a_field, i["a"]), data.get(schema.model_b_field, i["b"])
            data.update(
                {
                    schema.prompt_field: i["text"],
                    schema.a_field: responses.get(a),
                    schema.b_field: responses.get(b),
                    schema.model_a_field: a,
                    schema.model_b_field: b,
                }
            )
            conn.execute(
                sa.update(Item).where(Item.id == item_id).values(text=i["text"], data=data)
            )
            result.items_filled += 1
        _record(conn, project, Path(path), result)
    return result


def import_battles(
    store: Store,
    project: Project,
    path: Path,
    *,
    source_name: str | None = None,
    seed: int = 0,
    fmt: str | None = None,
    encoding: str = "utf-8",
) -> ArenaImport:
    """Import judged battles: ``question_id`` (or ``prompt_id``), ``model_a``, ``model_b``,
    ``winner`` (``model_a``, ``model_b``, ``tie`` or ``both_bad``, or another spelling of
    ``veritag.truth.outcomes.OUTCOME_SPELLINGS``) per row, the format of prd_vicuna80's
    ``battles.jsonl``; optional ``judge`` (or ``worker``) names who voted, else every vote is by
    ``source_name`` (default: the file's name without its suffix). Optional ``prompt``,
    ``response_a``, ``response_b`` and ``domain`` (or ``category``) describe a new item.

    Each row is one human claim on the battle item of its question and model pair (created when
    missing); the winner is turned into A/B/tie/both_bad relative to the *item's* ``model_a``, which
    may be the row's ``model_b``. A judge's repeated votes on one battle count as many claims;
    importing the same file again adds nothing (each vote's dedup key is its value and how many
    equal votes of that judge on that battle came before it in the file).
    """
    schema = arena_schema(project)
    path = Path(path)
    default_source = source_name or path.stem
    rows = _Rows(path, fmt, encoding)
    votes: list[dict[str, Any]] = []
    new: dict[str, dict[str, Any]] = {}
    for row in rows:
        v = row.values
        id_col = "question_id" if "question_id" in v or "prompt_id" not in v else "prompt_id"
        prompt_id = rows.need(row.line, v, id_col)
        ma, mb = rows.need(row.line, v, "model_a"), rows.need(row.line, v, "model_b")
        winner = rows.need(row.line, v, "winner")
        if prompt_id is None or ma is None or mb is None or winner is None:
            continue
        outcome = outcome_named(winner)  # relative to the row's models, turned below if need be
        if outcome is None:
            rows.fail(row.line, "winner", unknown_outcome(winner))
            continue
        if ma == mb:
            rows.fail(row.line, "model_b", f"a battle needs two different models, got {ma!r} twice")
            continue
        if ":" in ma + mb:
            rows.fail(
                row.line,
                "model_a",
                "model names may not contain ':' (item ids are prompt_id:model:model)",
            )
            continue
        judge = _text(v.get("judge")) or _text(v.get("worker")) or default_source
        ext = battle_id(prompt_id, ma, mb)
        if ext not in new:
            a, b = _oriented(ext, ma, mb, seed)
            swap = a != ma
            ra, rb = _text(v.get("response_a")), _text(v.get("response_b"))
            data: dict[str, Any] = {schema.model_a_field: a, schema.model_b_field: b}
            prompt = _text(v.get("prompt"))
            if prompt is not None:
                data[schema.prompt_field] = prompt
            if ra is not None and rb is not None:
                data[schema.a_field], data[schema.b_field] = (rb, ra) if swap else (ra, rb)
            domain = _text(v.get("domain")) or _text(v.get("category"))
            new[ext] = {
                "external_id": ext,
                "text": prompt,
                "data": data,
                "meta": {schema.domain_field: domain, "prompt_id": prompt_id},
            }
        votes.append(
            {"line": row.line, "ext": ext, "model_a": ma, "outcome": outcome, "judge": judge}
        )
    rows.check()

    result = ArenaImport(
        path=str(path),
        rows=rows.rows,
        prompts=len({v["ext"].rsplit(":", 2)[0] for v in votes}),
        models=len(
            {
                m
                for i in new.values()
                for m in (i["data"][schema.model_a_field], i["data"][schema.model_b_field])
            }
        ),
    )
    with store.begin_write() as conn:
        known = _existing(conn, project.id, list(new))
        fresh = [i for ext, i in new.items() if ext not in known]
        for start in range(0, len(fresh), _CHUNK):
            conn.execute(
                insert_ignore(conn, Item.__table__, ["project_id", "external_id"]),
                [{"project_id": project.id, **i} for i in fresh[start : start + _CHUNK]],
            )
        result.items_added = len(fresh)
        items = _existing(conn, project.id, list(new))
        sources = source_ids(
            conn, project_id=project.id, kind="human", names={v["judge"] for v in votes}
        )
        seen: Counter[tuple[str, str, str]] = Counter()
        claims: list[NewClaimRow] = []
        for vote in votes:
            item_id, data = items[vote["ext"]]
            outcome = vote["outcome"]
            if outcome in ("A", "B") and (data or {}).get(schema.model_a_field) != vote["model_a"]:
                outcome = (
                    "B" if outcome == "A" else "A"
                )  # the item holds the row's models the other way round
            key = (vote["ext"], vote["judge"], outcome)
            # The n-th equal vote of a judge on a battle is a claim of its own (a log repeats
            # votes).
            claims.append(
                claim_row(
                    project.id,
                    item_id,
                    sources[vote["judge"]],
                    value=canonical_json(outcome),
                    scope=f"arena:{seen[key]}",
                )
            )
            seen[key] += 1
        before = _count(conn, Claim.__table__, project.id)
        add_claims(conn, claims, chunk=_CHUNK)
        result.claims_added = _count(conn, Claim.__table__, project.id) - before
        _record(conn, project, path, result)
    return result
