"""Task schemas: what a claim on a project may say, and how votes on it are counted.

A schema turns a raw value (a CSV cell, a JSON value, a Parquet scalar) into one canonical,
JSON-ready value, or refuses it with a ``LabelError`` that names the field and what is allowed.
The canonical form is what is stored, so two claims that mean the same thing compare equal.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from .errors import LabelError, SchemaError
from .truth.outcomes import OUTCOMES, outcome_named, unknown_outcome

__all__ = [
    "ArenaSchema",
    "BaseSchema",
    "ClassificationSchema",
    "FactCheckSchema",
    "FreeTextSchema",
    "MultiLabelSchema",
    "PairwiseSchema",
    "RatingSchema",
    "SpanSchema",
    "TaskSchema",
    "canonical_json",
    "json_ready",
    "parse_schema",
]


def canonical_json(value: Any) -> str:
    """One string per meaning: sorted keys, no spaces; used for dedup and exact-match votes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def json_ready(value: Any) -> Any:
    """JSON-ready: dataclasses and tuples become dicts and lists, NaN and infinities become null.
    What the server answers and what a job stores as its result."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _decode_json_cell(raw: Any, field: str) -> Any:
    """CSV cells arrive as text; structured values in them are written as JSON."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LabelError(field, f"{raw!r} is not valid JSON ({exc.msg})") from None


def _as_label(raw: Any, allowed: list[str], field: str) -> str:
    """Match a label by its text; 1 and "1" and 1.0 are the same label when "1" is allowed."""
    if isinstance(raw, bool):
        raw = str(raw).lower()
    elif isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    text = raw.strip() if isinstance(raw, str) else str(raw) if isinstance(raw, int) else None
    if text is None or text not in allowed:
        raise LabelError(field, f"{raw!r} is not one of the allowed values {allowed}")
    return text


class BaseSchema(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str
    instructions: str = ""

    #: True when votes are counted over a fixed, ordered list of classes.
    categorical: ClassVar[bool] = False

    def normalize(self, raw: Any, *, item_text: str | None = None) -> Any:
        """Return the canonical value for ``raw`` or raise ``LabelError``."""
        raise NotImplementedError

    def classes(self) -> list[str]:
        """The ordered classes of a categorical schema (empty for the others)."""
        return []

    def vote_key(self, value: Any) -> Any:
        """The part of a canonical value that votes compare (all of it, by default)."""
        return value

    def class_value(self, cls: str) -> Any:
        """The resolved label for class ``cls`` of a categorical schema."""
        return cls

    def normalize_probs(self, raw: Any) -> list[float]:
        """A model's probability row, in class order, summing to 1."""
        classes = self.classes()
        if not classes:
            raise LabelError("probs", f"a {self.type} project takes no probability rows")
        raw = _decode_json_cell(raw, "probs")
        if isinstance(raw, dict):
            unknown = sorted(set(map(str, raw)) - set(classes))
            if unknown:
                raise LabelError("probs", f"unknown class(es) {unknown}; allowed values {classes}")
            row = [raw.get(c, raw.get(_maybe_int(c), 0.0)) for c in classes]
        elif isinstance(raw, (list, tuple)):
            row = list(raw)
        else:
            raise LabelError("probs", "expected a list or an object of class probabilities")
        if len(row) != len(classes):
            raise LabelError(
                "probs", f"expected {len(classes)} probabilities for {classes}, got {len(row)}"
            )
        try:
            probs = [float(p) for p in row]
        except (TypeError, ValueError):
            raise LabelError("probs", f"{row!r} holds a value that is not a number") from None
        if any(not math.isfinite(p) or p < 0 for p in probs):
            raise LabelError("probs", "probabilities must be finite and >= 0")
        total = sum(probs)
        if abs(total - 1.0) > 1e-3:
            raise LabelError("probs", f"probabilities sum to {total:.6g}, not 1")
        return [p / total for p in probs]


def _maybe_int(text: str) -> Any:
    return int(text) if text.lstrip("-").isdigit() else text


def _unique_labels(labels: list[str]) -> list[str]:
    if len(labels) < 2:
        raise ValueError("needs at least two labels")
    if len(set(labels)) != len(labels):
        raise ValueError(f"labels must be unique, got {labels}")
    if any(not label.strip() or label != label.strip() for label in labels):
        raise ValueError(f"labels must be non-blank without surrounding spaces, got {labels}")
    return labels


class ClassificationSchema(BaseSchema):
    """Exactly one label from a fixed list."""

    type: Literal["classification"] = "classification"
    labels: list[str]
    categorical: ClassVar[bool] = True

    @model_validator(mode="after")
    def _check(self) -> ClassificationSchema:
        _unique_labels(self.labels)
        return self

    def classes(self) -> list[str]:
        return list(self.labels)

    def normalize(self, raw: Any, *, item_text: str | None = None) -> str:
        return _as_label(raw, self.labels, "label")


class MultiLabelSchema(BaseSchema):
    """Any subset of a fixed list; written in CSV as JSON or as ``a|b``."""

    type: Literal["multilabel"] = "multilabel"
    labels: list[str]
    min_labels: int = Field(default=0, ge=0)
    max_labels: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> MultiLabelSchema:
        _unique_labels(self.labels)
        if self.max_labels is not None and self.max_labels < self.min_labels:
            raise ValueError("max_labels is below min_labels")
        return self

    def normalize(self, raw: Any, *, item_text: str | None = None) -> list[str]:
        if isinstance(raw, str):
            text = raw.strip()
            parts = [part for part in text.split("|") if part.strip()] if text else []
            # A JSON list, unless the text is pipe-separated labels that merely start with "[".
            if text.startswith("[") and not all(p.strip() in self.labels for p in parts):
                parts = _decode_json_cell(text, "labels")
            raw = parts
        if not isinstance(raw, (list, tuple)):
            raise LabelError("labels", f"expected a list of labels from {self.labels}, got {raw!r}")
        chosen = {_as_label(x, self.labels, "labels") for x in raw}
        if len(chosen) < self.min_labels:
            raise LabelError("labels", f"choose at least {self.min_labels} of {self.labels}")
        if self.max_labels is not None and len(chosen) > self.max_labels:
            raise LabelError("labels", f"choose at most {self.max_labels} of {self.labels}")
        return [label for label in self.labels if label in chosen]


class RatingSchema(BaseSchema):
    """An integer on a scale, e.g. 1-5."""

    type: Literal["rating"] = "rating"
    min: int = 1
    max: int = 5
    categorical: ClassVar[bool] = True

    @model_validator(mode="after")
    def _check(self) -> RatingSchema:
        if self.max <= self.min:
            raise ValueError(f"max ({self.max}) must be above min ({self.min})")
        return self

    def classes(self) -> list[str]:
        return [str(v) for v in range(self.min, self.max + 1)]

    def class_value(self, cls: str) -> int:
        return int(cls)

    def normalize(self, raw: Any, *, item_text: str | None = None) -> int:
        return int(_as_label(raw, self.classes(), "rating"))


class PairwiseSchema(BaseSchema):
    """A preference between two responses to one prompt: A, B or tie."""

    type: Literal["pairwise"] = "pairwise"
    prompt_field: str = "prompt"
    a_field: str = "response_a"
    b_field: str = "response_b"
    categorical: ClassVar[bool] = True
    outcomes: ClassVar[tuple[str, ...]] = ("A", "B", "tie")

    def classes(self) -> list[str]:
        return list(self.outcomes)

    def normalize(self, raw: Any, *, item_text: str | None = None) -> str:
        if isinstance(raw, str) and raw.strip().lower() in ("a", "b", "tie"):
            raw = {"a": "A", "b": "B", "tie": "tie"}[raw.strip().lower()]
        return _as_label(raw, self.classes(), "preference")


class ArenaSchema(PairwiseSchema):
    """A battle between two models' responses to one prompt: A, B, tie or both bad.

    The item's fields name the models (``model_a_field``, ``model_b_field``) and its metadata the
    prompt's domain (``domain_field``); tutors see neither, only the prompt and the two responses
    in an order drawn per lease. The ratings are computed by ``veritag.arena``.
    """

    type: Literal["arena"] = "arena"  # type: ignore[assignment]
    model_a_field: str = "model_a"
    model_b_field: str = "model_b"
    domain_field: str = "domain"
    outcomes: ClassVar[tuple[str, ...]] = OUTCOMES

    def normalize(self, raw: Any, *, item_text: str | None = None) -> str:
        """Any spelling of ``veritag.truth.outcomes.OUTCOME_SPELLINGS``, so a vote is read here as
        the battles importer and the leaderboard read it."""
        outcome = outcome_named(raw)
        if outcome is None:
            raise LabelError("preference", unknown_outcome(raw))
        return outcome


class SpanSchema(BaseSchema):
    """Labeled character ranges ``[start, end)`` over the item's text."""

    type: Literal["span"] = "span"
    labels: list[str]

    @model_validator(mode="after")
    def _check(self) -> SpanSchema:
        if not self.labels or len(set(self.labels)) != len(self.labels):
            raise ValueError("span labels must be a non-empty list of unique names")
        return self

    def normalize(self, raw: Any, *, item_text: str | None = None) -> list[dict[str, Any]]:
        raw = _decode_json_cell(raw, "spans")
        if not isinstance(raw, (list, tuple)):
            raise LabelError("spans", "expected a list of {start, end, label} objects")
        spans = []
        for i, span in enumerate(raw):
            field = f"spans[{i}]"
            if not isinstance(span, dict) or set(span) - {"start", "end", "label", "text"}:
                raise LabelError(field, "expected an object with start, end and label")
            start, end = _offset(span.get("start"), field), _offset(span.get("end"), field)
            label = _as_label(span.get("label"), self.labels, f"{field}.label")
            limit = len(item_text) if item_text is not None else None
            if start < 0 or end <= start or (limit is not None and end > limit):
                bound = f" within the text's {limit} characters" if limit is not None else ""
                raise LabelError(
                    field, f"offsets [{start}, {end}) must satisfy 0 <= start < end{bound}"
                )
            spans.append({"start": start, "end": end, "label": label})
        return sorted(spans, key=lambda s: (s["start"], s["end"], s["label"]))


def _offset(raw: Any, field: str) -> int:
    """A whole-number character offset; 0.9 or True is refused, not truncated."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        return raw
    if isinstance(raw, str) and raw.strip().isdigit():
        return int(raw)
    raise LabelError(field, f"start and end must be whole-number character offsets, got {raw!r}")


class FreeTextSchema(BaseSchema):
    """A free-form answer, e.g. a rewrite or a reference answer."""

    type: Literal["free_text"] = "free_text"
    min_length: int = Field(default=1, ge=0)
    max_length: int = Field(default=20000, ge=1)

    @model_validator(mode="after")
    def _check(self) -> FreeTextSchema:
        if self.max_length < self.min_length:
            raise ValueError(
                f"max_length ({self.max_length}) is below min_length ({self.min_length})"
            )
        return self

    def normalize(self, raw: Any, *, item_text: str | None = None) -> str:
        if not isinstance(raw, str):
            raise LabelError("text", f"expected text, got {type(raw).__name__}")
        text = raw.strip()
        if not self.min_length <= len(text) <= self.max_length:
            raise LabelError(
                "text", f"length {len(text)} is outside [{self.min_length}, {self.max_length}]"
            )
        return text


class FactCheckSchema(BaseSchema):
    """A verdict on a claim from a fixed list, with the evidence behind it."""

    type: Literal["fact_check"] = "fact_check"
    verdicts: list[str] = Field(default_factory=lambda: ["supported", "refuted", "not_enough_info"])
    require_evidence: bool = True
    categorical: ClassVar[bool] = True

    @model_validator(mode="after")
    def _check(self) -> FactCheckSchema:
        _unique_labels(self.verdicts)
        return self

    def classes(self) -> list[str]:
        return list(self.verdicts)

    def vote_key(self, value: Any) -> Any:
        """Two tutors who agree on the verdict agree, whatever evidence each cites."""
        return value["verdict"] if isinstance(value, dict) else value

    def class_value(self, cls: str) -> dict[str, str]:
        return {"verdict": cls}

    def normalize(self, raw: Any, *, item_text: str | None = None) -> dict[str, str]:
        raw = (
            _decode_json_cell(raw, "verdict")
            if isinstance(raw, str) and raw.lstrip().startswith("{")
            else raw
        )
        if isinstance(raw, dict):
            unknown = sorted(set(raw) - {"verdict", "evidence"})
            if unknown:
                raise LabelError(
                    unknown[0], "unknown field; a fact-check claim has verdict and evidence"
                )
            verdict, evidence = raw.get("verdict"), raw.get("evidence", "")
        else:
            verdict, evidence = raw, ""
        verdict = _as_label(verdict, self.verdicts, "verdict")
        if not isinstance(evidence, str):
            raise LabelError("evidence", "evidence must be text")
        if self.require_evidence and not evidence.strip():
            raise LabelError("evidence", "evidence is required for every verdict")
        return {"verdict": verdict, "evidence": evidence.strip()}


TaskSchema = Annotated[
    ClassificationSchema
    | MultiLabelSchema
    | RatingSchema
    | PairwiseSchema
    | ArenaSchema
    | SpanSchema
    | FreeTextSchema
    | FactCheckSchema,
    Field(discriminator="type"),
]
_ADAPTER: TypeAdapter[Any] = TypeAdapter(TaskSchema)

TASK_TYPES = (
    "classification",
    "multilabel",
    "rating",
    "pairwise",
    "span",
    "free_text",
    "fact_check",
    "arena",
)


def parse_schema(data: dict[str, Any] | str) -> BaseSchema:
    """Build a schema from a dict or JSON text, with a readable error."""
    try:
        if isinstance(data, str):
            return _ADAPTER.validate_json(data)  # type: ignore[no-any-return]
        return _ADAPTER.validate_python(data)  # type: ignore[no-any-return]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'schema'}: {e['msg']}" for e in exc.errors()
        )
        raise SchemaError(
            f"invalid task schema: {problems} (task types: {', '.join(TASK_TYPES)})"
        ) from None
