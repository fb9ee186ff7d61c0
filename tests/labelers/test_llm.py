"""The LLM labeler against a local fake of the OpenAI chat-completions protocol (loopback only)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fake_openai import FakeOpenAI

from veritag.labelers.llm import LLMLabeler, LLMLabelerError


@pytest.fixture(autouse=True)
def loopback_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any connection to something other than loopback (or a local socket) fails the test."""
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def check(address: Any) -> None:
        if isinstance(address, tuple) and not ipaddress.ip_address(address[0]).is_loopback:
            raise AssertionError(f"test tried to reach {address!r}")

    def connect(self: socket.socket, address: Any) -> None:
        check(address)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        check(address)
        return real_connect_ex(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        yield fake


def labeler(server: FakeOpenAI, **kw: Any) -> LLMLabeler:
    kw.setdefault("classes", ["ham", "spam"])
    kw.setdefault("backoff", 0.01)
    kw.setdefault("timeout", 5.0)
    return LLMLabeler(base_url=server.base_url, model="fake-1", trust_env=False, **kw)


def test_logprobs_give_the_models_distribution(server: FakeOpenAI) -> None:
    model = labeler(server)
    probs = model.predict_proba(["WIN a free cruise", "lunch tomorrow?"])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs, [[0.1, 0.9], [0.8, 0.2]], atol=1e-4)
    assert model.sources_ == ["logprobs", "logprobs"] and model.failures_ == 0
    assert server.requests == 2
    body = server.bodies[0]
    assert body["logprobs"] is True and body["top_logprobs"] == 20 and body["temperature"] == 0
    assert body["response_format"]["json_schema"]["schema"]["properties"]["label"]["enum"] == [
        "ham",
        "spam",
    ]
    assert "WIN a free cruise" in body["messages"][-1]["content"]
    assert model.name == "llm:fake-1" and model.version.startswith("1+")


def test_logprobs_follow_shared_prefixes(server: FakeOpenAI) -> None:
    classes = ["pos", "positive", "negative"]
    for dist in (
        {"pos": 0.2, "positive": 0.5, "negative": 0.3},
        {"pos": 0.6, "positive": 0.1, "negative": 0.3},
    ):
        server.dist_for = lambda text, d=dist: d
        probs = labeler(server, classes=classes).predict_proba(["some review"])
        np.testing.assert_allclose(probs[0], [dist[c] for c in classes], atol=1e-4)


def test_samples_when_the_server_has_no_logprobs(server: FakeOpenAI) -> None:
    server.logprobs = False
    server.sample = False  # always the most likely label: exact counts
    model = labeler(server, samples=4)
    probs = model.predict_proba(["win now", "lunch", "win big"])
    np.testing.assert_allclose(probs, [[1 / 6, 5 / 6], [5 / 6, 1 / 6], [1 / 6, 5 / 6]])
    assert model.sources_ == ["samples"] * 3
    # One probe for logprobs, then one request with n=4 per text.
    assert sum("logprobs" in b for b in server.bodies) == 1
    assert server.requests == 1 + 3
    assert all(b["n"] == 4 and b["temperature"] > 0 for b in server.bodies[1:])


def test_samples_without_n_support_and_real_sampling(server: FakeOpenAI) -> None:
    server.logprobs = False
    server.support_n = False
    model = labeler(server, samples=30, use_logprobs=False)
    probs = model.predict_proba(["win now", "lunch"])
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs[0, 1] > 0.7 and probs[1, 0] > 0.6
    # The first request asked for n=30 and got one answer; the rest went one by one.
    assert server.requests == 2 * 30


def test_429_500_and_timeouts_are_retried(server: FakeOpenAI) -> None:
    server.script = {"A:": ["429", "ok"], "B:": ["500", "500"], "C:": ["slow"]}
    server.slow_s = 1.0
    model = labeler(server, timeout=0.3, max_retries=3)
    start = time.monotonic()
    probs = model.predict_proba(["A: win", "B: lunch", "C: win"])
    assert time.monotonic() - start >= 0.2  # Retry-After: 0.2 was honoured
    assert model.failures_ == 0 and model.sources_ == ["logprobs"] * 3
    assert probs.argmax(axis=1).tolist() == [1, 0, 1]
    assert server.requests == 3 + 1 + 2 + 1


def test_persistent_server_errors_raise_after_retries(server: FakeOpenAI) -> None:
    server.script = {"X:": ["500"] * 10}
    model = labeler(server, max_retries=2)
    with pytest.raises(LLMLabelerError, match="kept failing"):
        model.predict_proba(["X: win"])
    assert server.requests == 3


def test_a_server_that_refuses_json_schema_gets_json_object_with_the_schema(
    server: FakeOpenAI,
) -> None:
    """llama-cpp-python's server answers 500 to ``json_schema``: the labeler asks again at once
    with ``json_object`` and the schema, remembers it, and never retries the refusal."""
    server.formats = {"json_object", "text"}
    model = labeler(server, max_concurrency=1)
    probs = model.predict_proba(["WIN a free cruise", "lunch tomorrow?", "win win"])
    np.testing.assert_allclose(probs[:2], [[0.1, 0.9], [0.8, 0.2]], atol=1e-4)
    assert model.sources_ == ["logprobs"] * 3 and model.failures_ == 0
    assert server.requests == 3 + 1  # one refused request in all
    formats = [b["response_format"] for b in server.bodies]
    assert formats[0]["type"] == "json_schema"
    assert all(f["type"] == "json_object" for f in formats[1:])
    assert formats[1]["schema"]["properties"]["label"]["enum"] == ["ham", "spam"]


def test_a_refusal_naming_a_feature_drops_that_feature(server: FakeOpenAI) -> None:
    server.refused = {"logprobs"}
    model = labeler(server, max_concurrency=1, samples=4)
    probs = model.predict_proba(["WIN a free cruise"])
    assert model.sources_ == ["samples"] and probs.argmax() == 1
    assert all("logprobs" not in b for b in server.bodies[1:])
    assert "response_format" in server.bodies[-1]  # only the named feature went


def test_a_refusal_of_something_the_labeler_needs_raises_at_once(server: FakeOpenAI) -> None:
    """A 500 that is a validation error is not the server being down: no retries, and the
    server's own words in the error."""
    server.refused = {"messages"}
    model = labeler(server, max_retries=5)
    with pytest.raises(LLMLabelerError, match="refused the request: .*validation error"):
        model.predict_proba(["win"])
    assert server.requests == 1


def test_bad_answers_are_retried_then_become_uniform(server: FakeOpenAI) -> None:
    server.script = {"M:": ["malformed", "outside", "ok"], "Z:": ["malformed"] * 10}
    model = labeler(server, max_retries=2)
    with pytest.warns(RuntimeWarning, match="1 of 3 texts"):
        probs = model.predict_proba(["M: win", "Z: win", "lunch"])
    assert model.failures_ == 1 and model.failed_ == [1]
    assert model.sources_ == ["logprobs", "failed", "logprobs"]
    np.testing.assert_allclose(probs[1], [0.5, 0.5])
    assert probs[0].argmax() == 1 and probs[2].argmax() == 0
    assert server.requests == 3 + 3 + 1

    server.reset_counts()
    server.logprobs = False
    server.script = {"Z:": ["malformed"] * 10}
    sampler = labeler(server, use_logprobs=False, samples=3, max_retries=2)
    with pytest.warns(RuntimeWarning):
        probs = sampler.predict_proba(["Z: win"])
    np.testing.assert_allclose(probs, [[0.5, 0.5]])
    assert sampler.failures_ == 1


def test_cache_makes_reruns_free(server: FakeOpenAI, tmp_path: Path) -> None:
    cache = tmp_path / "llm.sqlite"
    server.script = {"Z:": ["malformed"] * 3}
    texts = ["win a prize", "lunch", "win a prize", "Z: win"]
    with pytest.warns(RuntimeWarning):
        first = labeler(server, cache_path=cache, max_retries=2).predict_proba(texts)
    assert server.requests == 2 + 3  # duplicates asked once; Z fails 3 times
    server.reset_counts()
    again = labeler(server, cache_path=cache, max_retries=2)
    second = again.predict_proba(texts[:3])
    assert server.requests == 0 and again.cache_hits_ == 2
    np.testing.assert_array_equal(first[:3], second)
    # The failed row was not cached: it is asked again (and now succeeds).
    assert again.predict_proba(["Z: win"])[0].argmax() == 1 and server.requests == 1
    # Another prompt template is another cache key, and another version.
    other = labeler(server, cache_path=cache, prompt="Label: {text}\nOne of {classes}.")
    other.predict_proba(["lunch"])
    assert server.requests == 2 and other.version != again.version


def test_concurrency_is_limited(server: FakeOpenAI) -> None:
    server.latency = 0.03
    model = labeler(server, max_concurrency=3)
    probs = model.predict_proba([f"text {i} {'win' if i % 2 else ''}" for i in range(24)])
    assert probs.shape == (24, 2) and server.requests == 24
    assert 2 <= server.max_in_flight <= 3


def test_api_key_comes_from_the_environment(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VT_FAKE_KEY", "sekrit")
    model = labeler(server, api_key_env="VT_FAKE_KEY")
    model.predict_proba(["win"])
    assert server.headers[-1]["Authorization"] == "Bearer sekrit"
    assert "sekrit" not in repr(vars(model))
    labeler(server).predict_proba(["win"])
    assert "Authorization" not in server.headers[-1]
    monkeypatch.delenv("VT_FAKE_KEY")
    with pytest.raises(LLMLabelerError, match="VT_FAKE_KEY"):
        model.predict_proba(["win"])


def test_fit_sets_classes_and_few_shot_examples(server: FakeOpenAI) -> None:
    with pytest.raises(RuntimeError, match="no classes"):
        labeler(server, classes=None).predict_proba(["x"])
    model = labeler(server, classes=None, few_shot=1)
    before = model.version
    model.fit(["win cash", "hello", "win more"], ["spam", "ham", "spam"])
    assert model.classes_ == ["ham", "spam"] and model.version != before
    model.predict_proba(["lunch"])
    roles = [m["role"] for m in server.bodies[-1]["messages"]]
    assert roles == ["user", "assistant", "user", "assistant", "user"]
    with pytest.raises(ValueError, match="not among the classes"):
        labeler(server).fit(["x"], ["eggs"])
    assert labeler(server).predict_proba([]).shape == (0, 2)


def test_works_from_inside_a_running_loop(server: FakeOpenAI) -> None:
    async def main() -> np.ndarray:
        return labeler(server).predict_proba(["win"])

    assert asyncio.run(main())[0].argmax() == 1


def test_the_network_guard_blocks_other_hosts() -> None:
    with socket.socket() as s, pytest.raises(AssertionError, match="tried to reach"):
        s.connect(("192.0.2.1", 80))


def test_an_llm_labels_a_project_through_autolabel(
    server: FakeOpenAI, sqlite_store: Any, tmp_path: Path
) -> None:
    """Any labeler factory stores claims on a project: here the LLM, named and versioned."""
    from vt_helpers import make_project, write_csv

    from veritag.automation.autolabel import autolabel_project
    from veritag.io import import_file
    from veritag.resolve import load_project_claims

    project = make_project(
        sqlite_store, "spam", {"type": "classification", "labels": ["ham", "spam"]}
    )
    texts = ["WIN a free cruise", "lunch tomorrow?"] * 5
    import_file(
        sqlite_store,
        project,
        write_csv(
            tmp_path / "items.csv", ["id", "text"], [(f"t{i}", t) for i, t in enumerate(texts)]
        ),
    )
    import_file(
        sqlite_store,
        project,
        write_csv(
            tmp_path / "labels.csv",
            ["task", "worker", "label"],
            [(f"t{i}", "ann", "spam" if i % 2 == 0 else "ham") for i in range(6)],
        ),
    )
    llm = labeler(server)
    result = autolabel_project(sqlite_store, project, labeler=lambda: llm)
    assert result.source.startswith("llm:fake-1@1+")
    assert (result.trained, result.predicted, result.claims_added, result.accuracy) == (
        6,
        4,
        10,
        1.0,
    )
    with sqlite_store.engine.connect() as conn:
        pc = load_project_claims(conn, project)
    np.testing.assert_allclose(pc.soft[2][::2], [[0.1, 0.9]] * 5, atol=1e-4)
