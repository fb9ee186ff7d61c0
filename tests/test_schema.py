"""Task schemas: canonical values, refusals that name field and allowed values, probability rows."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from veritag.errors import LabelError, SchemaError, VeritagError
from veritag.schema import (
    TASK_TYPES,
    BaseSchema,
    ClassificationSchema,
    FactCheckSchema,
    FreeTextSchema,
    MultiLabelSchema,
    PairwiseSchema,
    RatingSchema,
    SpanSchema,
    canonical_json,
    parse_schema,
)


def refused(schema: BaseSchema, raw: Any, *, item_text: str | None = None) -> LabelError:
    with pytest.raises(LabelError) as info:
        schema.normalize(raw, item_text=item_text)
    return info.value


def assert_names(err: LabelError, field: str, *allowed: str) -> None:
    message = str(err)
    assert err.field == field
    assert f"field '{field}'" in message
    for value in allowed:
        assert value in message, f"{value!r} not named in {message!r}"


# --- classification ---------------------------------------------------------------------------

BINARY = ClassificationSchema(labels=["0", "1"])
ANIMALS = ClassificationSchema(labels=["cat", "dog", "bird"])


@pytest.mark.parametrize(
    ("schema", "raw", "expected"),
    [
        (ANIMALS, "cat", "cat"),
        (ANIMALS, "  dog\n", "dog"),
        (BINARY, "1", "1"),
        (BINARY, 1, "1"),
        (BINARY, 0, "0"),
        (BINARY, 1.0, "1"),
        (BINARY, " 0 ", "0"),
        (ClassificationSchema(labels=["true", "false"]), True, "true"),
        (ClassificationSchema(labels=["true", "false"]), False, "false"),
    ],
)
def test_classification_accepts_in_canonical_form(
    schema: ClassificationSchema, raw: Any, expected: str
) -> None:
    value = schema.normalize(raw)
    assert value == expected
    assert type(value) is str


@pytest.mark.parametrize("raw", ["fish", "Cat", "", 2, 1.5, None, ["cat"], {"label": "cat"}])
def test_classification_refuses_other_values(raw: Any) -> None:
    err = refused(ANIMALS, raw)
    assert_names(err, "label", "'cat'", "'dog'", "'bird'")
    assert "allowed values" in str(err)


def test_binary_refuses_numbers_that_are_not_labels() -> None:
    for raw in (2, -1, 0.5, "01", "1.0"):
        assert_names(refused(BINARY, raw), "label", "'0'", "'1'")


def test_classification_classes_are_the_labels_in_order() -> None:
    assert ANIMALS.classes() == ["cat", "dog", "bird"]
    assert ANIMALS.categorical


def test_every_declared_label_is_usable() -> None:
    try:
        schema = parse_schema({"type": "classification", "labels": [" yes", "no"]})
    except SchemaError:
        return  # refusing such a schema is fine too
    for label in schema.classes():
        schema.normalize(label)


# --- multilabel -------------------------------------------------------------------------------

TAGS = MultiLabelSchema(labels=["a", "b", "c"])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (["c", "a"], ["a", "c"]),
        (("b",), ["b"]),
        ("c|a", ["a", "c"]),
        (" c | a |", ["a", "c"]),
        ('["b", "a", "b"]', ["a", "b"]),
        (["a", "a", "a"], ["a"]),
        ("", []),
        ([], []),
    ],
)
def test_multilabel_accepts_in_schema_order(raw: Any, expected: list[str]) -> None:
    assert TAGS.normalize(raw) == expected


@pytest.mark.parametrize("raw", [["d"], ["a", "z"], "a|z", '["a", "q"]'])
def test_multilabel_refuses_unknown_labels(raw: Any) -> None:
    assert_names(refused(TAGS, raw), "labels", "'a'", "'b'", "'c'")


@pytest.mark.parametrize("raw", [5, None, {"a": 1}, '["a"'])
def test_multilabel_refuses_non_lists(raw: Any) -> None:
    err = refused(TAGS, raw)
    assert err.field == "labels"


def test_multilabel_min_and_max() -> None:
    schema = MultiLabelSchema(labels=["a", "b", "c"], min_labels=1, max_labels=2)
    assert schema.normalize(["b"]) == ["b"]
    assert schema.normalize(["c", "a"]) == ["a", "c"]
    err = refused(schema, [])
    assert_names(err, "labels", "at least 1", "'a'", "'b'", "'c'")
    err = refused(schema, ["a", "b", "c"])
    assert_names(err, "labels", "at most 2", "'a'", "'b'", "'c'")
    # duplicates count once
    assert schema.normalize(["a", "a", "b"]) == ["a", "b"]


def test_multilabel_is_not_categorical() -> None:
    assert TAGS.classes() == []
    with pytest.raises(LabelError) as info:
        TAGS.normalize_probs([0.5, 0.5])
    assert info.value.field == "probs"


# --- rating -----------------------------------------------------------------------------------

STARS = RatingSchema(min=1, max=5)


@pytest.mark.parametrize(("raw", "expected"), [(3, 3), ("3", 3), (" 4 ", 4), (5.0, 5), (1, 1)])
def test_rating_accepts_integers_on_the_scale(raw: Any, expected: int) -> None:
    value = STARS.normalize(raw)
    assert value == expected
    assert type(value) is int


@pytest.mark.parametrize("raw", [0, 6, "six", 2.5, "", None, True, [3]])
def test_rating_refuses_values_off_the_scale(raw: Any) -> None:
    assert_names(refused(STARS, raw), "rating", "'1'", "'2'", "'3'", "'4'", "'5'")


def test_rating_negative_scale() -> None:
    schema = RatingSchema(min=-2, max=2)
    assert schema.classes() == ["-2", "-1", "0", "1", "2"]
    assert schema.normalize("-2") == -2
    assert schema.normalize(0) == 0
    assert_names(refused(schema, -3), "rating", "'-2'", "'2'")


# --- pairwise ---------------------------------------------------------------------------------

PAIR = PairwiseSchema()


@pytest.mark.parametrize(
    ("raw", "expected"), [("A", "A"), ("a", "A"), (" b ", "B"), ("TIE", "tie"), ("Tie", "tie")]
)
def test_pairwise_accepts_a_b_tie(raw: str, expected: str) -> None:
    assert PAIR.normalize(raw) == expected


@pytest.mark.parametrize("raw", ["C", "", "AB", 1, None, "draw"])
def test_pairwise_refuses_other_values(raw: Any) -> None:
    assert_names(refused(PAIR, raw), "preference", "'A'", "'B'", "'tie'")


def test_pairwise_fields_and_classes() -> None:
    assert PAIR.classes() == ["A", "B", "tie"]
    assert (PAIR.prompt_field, PAIR.a_field, PAIR.b_field) == ("prompt", "response_a", "response_b")


# --- span -------------------------------------------------------------------------------------

NER = SpanSchema(labels=["PER", "ORG"])
TEXT = "Alice works at Acme"  # 19 characters


def test_span_accepts_and_sorts() -> None:
    raw = [
        {"start": 15, "end": 19, "label": "ORG"},
        {"start": 0, "end": 5, "label": "PER", "text": "Alice"},
    ]
    expected = [{"start": 0, "end": 5, "label": "PER"}, {"start": 15, "end": 19, "label": "ORG"}]
    assert NER.normalize(raw, item_text=TEXT) == expected
    assert NER.normalize(json.dumps(raw), item_text=TEXT) == expected
    assert NER.normalize([], item_text=TEXT) == []
    # "1" and 1 are the same offset
    assert (
        NER.normalize([{"start": "0", "end": "5", "label": "PER"}], item_text=TEXT) == expected[:1]
    )


@pytest.mark.parametrize(
    ("spans", "field"),
    [
        ([{"start": -1, "end": 3, "label": "PER"}], "spans[0]"),
        ([{"start": 3, "end": 3, "label": "PER"}], "spans[0]"),
        ([{"start": 4, "end": 2, "label": "PER"}], "spans[0]"),
        (
            [{"start": 0, "end": 5, "label": "PER"}, {"start": 15, "end": 20, "label": "ORG"}],
            "spans[1]",
        ),
    ],
)
def test_span_refuses_bad_offsets(spans: list[dict[str, Any]], field: str) -> None:
    err = refused(NER, spans, item_text=TEXT)
    assert_names(err, field, "0 <= start < end")
    if spans[-1]["end"] > len(TEXT):
        assert "19 characters" in str(err)


def test_span_refuses_unknown_label() -> None:
    err = refused(NER, [{"start": 0, "end": 5, "label": "LOC"}], item_text=TEXT)
    assert_names(err, "spans[0].label", "'PER'", "'ORG'")


@pytest.mark.parametrize(
    "raw",
    [
        [{"start": 0, "end": 5, "label": "PER", "note": "x"}],
        [{"start": "x", "end": 5, "label": "PER"}],
        [{"end": 5, "label": "PER"}],
        ["PER"],
    ],
)
def test_span_refuses_malformed_objects(raw: Any) -> None:
    assert refused(NER, raw, item_text=TEXT).field == "spans[0]"


@pytest.mark.parametrize("raw", [{"start": 0}, 5, "not json"])
def test_span_refuses_non_lists(raw: Any) -> None:
    assert refused(NER, raw, item_text=TEXT).field == "spans"


def test_span_refuses_fractional_offsets() -> None:
    refused(NER, [{"start": 0.9, "end": 2.7, "label": "PER"}], item_text=TEXT)


# --- free text --------------------------------------------------------------------------------

FREE = FreeTextSchema()


def test_free_text_accepts_and_strips() -> None:
    assert FREE.normalize("  a rewrite \n") == "a rewrite"
    assert FreeTextSchema(min_length=0).normalize("   ") == ""


@pytest.mark.parametrize("raw", [5, None, ["x"], {"text": "x"}])
def test_free_text_refuses_non_text(raw: Any) -> None:
    assert_names(refused(FREE, raw), "text", "expected text")


def test_free_text_refuses_length_outside_bounds() -> None:
    assert_names(refused(FREE, "   "), "text", "[1, 20000]")
    short = FreeTextSchema(min_length=2, max_length=5)
    assert short.normalize("abcde") == "abcde"
    assert_names(refused(short, "abcdef"), "text", "[2, 5]")
    assert_names(refused(short, "a"), "text", "[2, 5]")


def test_free_text_schema_refuses_min_above_max() -> None:
    with pytest.raises(SchemaError):
        parse_schema({"type": "free_text", "min_length": 10, "max_length": 5})


# --- fact check -------------------------------------------------------------------------------

FACT = FactCheckSchema()


@pytest.mark.parametrize(
    "raw",
    [
        {"verdict": "supported", "evidence": " the 2019 report "},
        '{"verdict": " supported", "evidence": "the 2019 report"}',
    ],
)
def test_fact_check_accepts_verdict_with_evidence(raw: Any) -> None:
    assert FACT.normalize(raw) == {"verdict": "supported", "evidence": "the 2019 report"}


def test_fact_check_without_required_evidence() -> None:
    lax = FactCheckSchema(require_evidence=False)
    assert lax.normalize("refuted") == {"verdict": "refuted", "evidence": ""}
    assert lax.normalize({"verdict": "not_enough_info"}) == {
        "verdict": "not_enough_info",
        "evidence": "",
    }


def test_fact_check_refusals() -> None:
    assert_names(
        refused(FACT, {"verdict": "maybe", "evidence": "x"}),
        "verdict",
        "'supported'",
        "'refuted'",
        "'not_enough_info'",
    )
    assert_names(refused(FACT, "supported"), "evidence", "required")
    assert_names(refused(FACT, {"verdict": "supported", "evidence": "  "}), "evidence", "required")
    assert refused(FACT, {"verdict": "supported", "evidence": 3}).field == "evidence"
    err = refused(FACT, {"verdict": "supported", "evidence": "x", "source": "y"})
    assert err.field == "source"
    assert refused(FACT, '{"verdict": ').field == "verdict"


def test_fact_check_custom_verdicts() -> None:
    schema = parse_schema(
        {"type": "fact_check", "verdicts": ["true", "false"], "require_evidence": False}
    )
    assert schema.classes() == ["true", "false"]
    assert_names(refused(schema, "supported"), "verdict", "'true'", "'false'")


# --- parse_schema -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        {"type": "classification", "labels": ["a", "b"], "instructions": "pick"},
        {"type": "multilabel", "labels": ["a", "b", "c"], "min_labels": 1, "max_labels": 2},
        {"type": "rating", "min": 0, "max": 10},
        {"type": "pairwise", "prompt_field": "q"},
        {"type": "span", "labels": ["PER"]},
        {"type": "free_text", "max_length": 100},
        {"type": "fact_check"},
    ],
)
def test_parse_schema_round_trips(spec: dict[str, Any]) -> None:
    schema = parse_schema(spec)
    assert schema.type == spec["type"]
    assert parse_schema(schema.model_dump()) == schema
    assert parse_schema(json.dumps(spec)) == schema
    for key, value in spec.items():
        assert getattr(schema, key) == value


def test_every_task_type_parses() -> None:
    minimal = {
        "classification": {"labels": ["a", "b"]},
        "multilabel": {"labels": ["a", "b"]},
        "span": {"labels": ["a"]},
    }
    for kind in TASK_TYPES:
        assert parse_schema({"type": kind, **minimal.get(kind, {})}).type == kind


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ({"type": "nope"}, "nope"),
        ({"labels": ["a", "b"]}, "type"),
        ({"type": "classification"}, "labels"),
        ({"type": "classification", "labels": ["a"]}, "at least two labels"),
        ({"type": "classification", "labels": ["a", "a"]}, "unique"),
        ({"type": "classification", "labels": ["a", " "]}, "blank"),
        ({"type": "classification", "labels": "a,b"}, "labels"),
        ({"type": "classification", "labels": ["a", "b"], "colour": "red"}, "colour"),
        (
            {"type": "multilabel", "labels": ["a", "b"], "min_labels": 2, "max_labels": 1},
            "max_labels is below min_labels",
        ),
        ({"type": "multilabel", "labels": ["a", "b"], "min_labels": -1}, "min_labels"),
        ({"type": "rating", "min": 5, "max": 5}, "must be above min"),
        ({"type": "rating", "min": 5, "max": 1}, "must be above min"),
        ({"type": "span", "labels": []}, "span labels"),
        ({"type": "span", "labels": ["X", "X"]}, "span labels"),
        ({"type": "fact_check", "verdicts": ["yes"]}, "at least two labels"),
        ({"type": "free_text", "max_length": 0}, "max_length"),
        ('{"type": "rating", ', "schema"),
        ("[]", "schema"),
    ],
)
def test_parse_schema_refusals(spec: Any, named: str) -> None:
    with pytest.raises(SchemaError) as info:
        parse_schema(spec)
    message = str(info.value)
    assert message.startswith("invalid task schema")
    assert named in message
    assert "classification, multilabel, rating, pairwise, span, free_text, fact_check" in message
    assert isinstance(info.value, VeritagError)
    assert info.value.status == 422


def test_canonical_json_is_order_free() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'
    assert canonical_json({"a": 1, "b": 2}) == canonical_json({"b": 2, "a": 1})


# --- normalize_probs --------------------------------------------------------------------------

THREE = ClassificationSchema(labels=["x", "y", "z"])


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]),
        ((0, 1, 0), [0.0, 1.0, 0.0]),
        ("[0.2, 0.3, 0.5]", [0.2, 0.3, 0.5]),
        ({"z": 0.5, "x": 0.5}, [0.5, 0.0, 0.5]),
        ('{"y": 1}', [0.0, 1.0, 0.0]),
        (["0.25", "0.25", "0.5"], [0.25, 0.25, 0.5]),
    ],
)
def test_normalize_probs_in_class_order(raw: Any, expected: list[float]) -> None:
    assert THREE.normalize_probs(raw) == pytest.approx(expected)


def test_normalize_probs_rescales_within_tolerance() -> None:
    probs = THREE.normalize_probs([0.3334, 0.3333, 0.3334])
    assert math.isclose(sum(probs), 1.0, abs_tol=1e-12)


def test_normalize_probs_integer_keys_for_numeric_classes() -> None:
    assert BINARY.normalize_probs({0: 0.25, 1: 0.75}) == pytest.approx([0.25, 0.75])
    assert BINARY.normalize_probs('{"1": 0.9, "0": 0.1}') == pytest.approx([0.1, 0.9])
    assert STARS.normalize_probs({"5": 1.0}) == pytest.approx([0, 0, 0, 0, 1])
    assert PAIR.normalize_probs({"tie": 0.5, "A": 0.5}) == pytest.approx([0.5, 0, 0.5])


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ([0.2, 0.3, 0.4], "sum to 0.9"),
        ([0.5, 0.5, 0.5], "sum to 1.5"),
        ({"x": 0.5, "w": 0.5}, "unknown class(es) ['w']"),
        ([0.5, 0.5], "expected 3 probabilities"),
        ([1.5, -0.5, 0.0], ">= 0"),
        ([float("nan"), 0.5, 0.5], "finite"),
        (["a", 0.5, 0.5], "not a number"),
        (0.5, "expected a list or an object"),
        ("[0.5, ", "not valid JSON"),
    ],
)
def test_normalize_probs_refusals(raw: Any, named: str) -> None:
    with pytest.raises(LabelError) as info:
        THREE.normalize_probs(raw)
    assert info.value.field == "probs"
    assert named in str(info.value)


def test_unknown_class_error_names_allowed_values() -> None:
    with pytest.raises(LabelError) as info:
        THREE.normalize_probs({"q": 1.0})
    assert "['x', 'y', 'z']" in str(info.value)


@pytest.mark.parametrize("schema", [FREE, NER, TAGS])
def test_non_categorical_schemas_take_no_probs(schema: BaseSchema) -> None:
    with pytest.raises(LabelError) as info:
        schema.normalize_probs([1.0])
    assert "takes no probability rows" in str(info.value)


# --- properties -------------------------------------------------------------------------------

label_text = (
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
    .map(str.strip)
    .filter(bool)
)
label_lists = st.lists(label_text, min_size=2, max_size=6, unique=True)


@settings(max_examples=200)
@given(
    labels=label_lists,
    raw=st.one_of(
        label_text, st.integers(-3, 12), st.floats(allow_nan=False), st.booleans(), st.none()
    ),
    pad=st.sampled_from(["", " ", "\t", "  \n"]),
)
def test_classification_normalize_is_idempotent(labels: list[str], raw: Any, pad: str) -> None:
    schema = ClassificationSchema(labels=labels)
    for candidate in (raw, pad + raw + pad if isinstance(raw, str) else raw):
        try:
            once = schema.normalize(candidate)
        except LabelError as exc:
            assert exc.field == "label"
            continue
        assert once in labels
        assert schema.normalize(once) == once


@given(labels=label_lists, data=st.data())
def test_every_label_normalizes_to_itself(labels: list[str], data: st.DataObject) -> None:
    schema = ClassificationSchema(labels=labels)
    label = data.draw(st.sampled_from(labels))
    assert schema.normalize(label) == label
    assert schema.normalize(f"  {label} ") == label


@given(labels=label_lists.filter(lambda ls: all("|" not in x for x in ls)), data=st.data())
def test_multilabel_output_is_ordered_and_unique(labels: list[str], data: st.DataObject) -> None:
    schema = MultiLabelSchema(labels=labels)
    chosen = data.draw(st.lists(st.sampled_from(labels), max_size=12))
    as_pipe = data.draw(st.booleans())
    raw: Any = "|".join(chosen) if as_pipe and chosen else chosen
    out = schema.normalize(raw)
    assert len(out) == len(set(out))
    assert set(out) == set(chosen)
    assert out == [label for label in labels if label in out]
    assert schema.normalize(out) == out


@given(text=st.text(max_size=40), data=st.data())
def test_span_offsets_outside_text_are_always_refused(text: str, data: st.DataObject) -> None:
    n = len(text)
    start = data.draw(st.integers(-5, n + 5))
    end = data.draw(st.integers(-5, n + 10))
    span = [{"start": start, "end": end, "label": "PER"}]
    if 0 <= start < end <= n:
        assert NER.normalize(span, item_text=text) == span
    else:
        err = refused(NER, span, item_text=text)
        assert err.field == "spans[0]"
        assert "0 <= start < end" in str(err)
