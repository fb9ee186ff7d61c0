"""A zero-shot (or few-shot) labeler backed by any OpenAI-compatible chat-completions server.

Works with vLLM, llama.cpp's server, Ollama and OpenAI itself: every request is a plain
``POST {base_url}/chat/completions``. The answer is constrained to ``{"label": <one of the
classes>}`` with ``response_format={"type": "json_schema", ...}``, or, on a server that refuses
that (llama-cpp-python's server), with ``{"type": "json_object", "schema": ...}``; servers that
ignore the
constraint are handled by validating every answer (malformed JSON or a label outside the classes
is asked again, up to ``max_retries`` times, and then the text gets a uniform row and is counted
in ``failures_``; it never raises).

Probabilities
-------------
*From logprobs* (``use_logprobs=True`` and the server returns them): one greedy request with
``logprobs: true, top_logprobs: k``. In the returned token stream we find where the label's value
starts (just after ``"label": "``) and read the top alternatives at that token. Each alternative is
mapped to the classes whose text starts with it (an alternative that already contains the closing
quote must match a class exactly); its probability is split equally among the classes it matches,
and alternatives that match no class (answers the schema forbids) are dropped, so each step is
renormalised over the allowed continuations. When the *chosen* token still leaves several classes
possible (``"pos"`` vs ``"positive"``), we follow the chosen path to the next token and split its
mass there the same way. Limits: only the chosen path is followed, so another alternative that is
a prefix of several classes splits its mass equally among them; mass outside the top ``k`` is
ignored; labels whose JSON spelling differs from their text (quotes, backslashes, escaped
non-ASCII) or that start in the middle of a byte-level token cannot be read. In those cases the
text falls back to sampling. Rows are floored at ``1e-6`` and renormalised, so no class is exactly
impossible.

*From samples* (the server returns no logprobs, or they could not be read): ``samples`` answers at
``temperature`` (asking for them with the ``n`` parameter first, and with separate concurrent
requests if the server returns fewer choices), then ``(count + 1) / (samples + n_classes)``.

Operation
---------
Requests run on an ``httpx.AsyncClient`` with at most ``max_concurrency`` in flight (a semaphore);
``predict_proba`` is synchronous and runs its own event loop (in a worker thread when called from
inside a running loop; async callers can use ``apredict_proba``). Timeouts, connection errors,
429 (honouring ``Retry-After``) and 5xx are retried with exponential backoff and full jitter; when
those retries run out a :class:`LLMLabelerError` is raised after the other texts have finished (and
been cached). A refused request makes the labeler drop optional request features and remember that
the server lacks them: the one the refusal names, or after a bare 400 the next of ``n``,
``response_format`` (first stepping down from ``json_schema`` to ``json_object`` with the schema)
and ``logprobs``. A refusal is a 400 or 422, or a 5xx whose body is a request-validation error
(llama-cpp-python's server answers 500 to any field it does not accept); it is never retried, and
one that leaves nothing to drop raises :class:`LLMLabelerError` with the server's message.
Finished rows are stored in an optional SQLite cache keyed by a hash of (model, messages - i.e.
prompt, examples and text -, classes, sampling parameters), so re-running costs no requests.
Failed rows are not cached.

The API key is never stored: ``api_key_env`` names an environment variable that is read when
requests are made and sent as ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import json
import math
import os
import random
import re
import sqlite3
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .base import Labeler

__all__ = ["DEFAULT_PROMPT", "LLMLabeler", "LLMLabelerError"]

#: ``{classes}`` becomes the JSON-quoted labels joined by ", "; ``{text}`` becomes the text.
#: Substitution is plain string replacement, so other braces in a template are left alone.
DEFAULT_PROMPT = (
    "Classify the text below. Choose exactly one label from: {classes}.\n"
    'Answer with JSON only, in the form {"label": "<label>"}.\n\n'
    "Text:\n{text}"
)

_FLOOR = 1e-6
_LABEL_START = re.compile(r'"label"\s*:\s*"')
_OPTIONAL_FEATURES = ("n", "response_format", "logprobs")


class LLMLabelerError(RuntimeError):
    """The server could not be reached or kept failing (after retries), or refused the request."""


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class LLMLabeler(Labeler):
    """Labels texts by asking a chat model for ``{"label": ...}``; see the module docstring.

    ``classes`` given here make the labeler usable without ``fit`` (zero-shot); ``fit`` then only
    checks the labels against them. Without ``classes``, ``fit`` takes them from the labels
    (sorted). ``few_shot > 0`` makes ``fit`` keep that many examples per class (the first ones
    seen), sent as earlier user/assistant turns.

    After ``predict_proba``: ``failures_`` (texts that got a uniform row), ``failed_`` (their
    indices), ``sources_`` (per text: ``"logprobs"``, ``"samples"`` or ``"failed"``),
    ``cache_hits_`` and ``requests_`` (HTTP requests sent, retries included).
    """

    def __init__(
        self,
        *,
        base_url: str,
        model: str,
        classes: Sequence[str] | None = None,
        prompt: str = DEFAULT_PROMPT,
        system: str | None = None,
        api_key_env: str | None = None,
        max_concurrency: int = 8,
        timeout: float = 60.0,
        max_retries: int = 3,
        use_logprobs: bool = True,
        top_logprobs: int = 20,
        samples: int = 5,
        temperature: float = 0.8,
        max_tokens: int = 64,
        few_shot: int = 0,
        cache_path: str | os.PathLike[str] | None = None,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        trust_env: bool = True,
    ) -> None:
        if "{text}" not in prompt:
            raise ValueError("the prompt template must contain {text}")
        if max_concurrency < 1 or samples < 1 or max_retries < 0 or timeout <= 0:
            raise ValueError(
                "need max_concurrency >= 1, samples >= 1, max_retries >= 0, timeout > 0"
            )
        if temperature <= 0 and not use_logprobs:
            raise ValueError("sampling needs temperature > 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.prompt = prompt
        self.system = system
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.timeout = timeout
        self.max_retries = max_retries
        self.use_logprobs = use_logprobs
        self.top_logprobs = top_logprobs
        self.samples = samples
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.few_shot = few_shot
        self.cache_path = None if cache_path is None else Path(cache_path)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.trust_env = trust_env
        self.name = "llm:" + model
        self.examples_: list[tuple[str, str]] = []
        self._given_classes = None if classes is None else [str(c) for c in classes]
        if self._given_classes is not None:
            given = self._given_classes
            if not given or len(set(given)) != len(given):
                raise ValueError("classes must be distinct and non-empty")
            self.classes_ = list(self._given_classes)
        # What the server turned out to support (None: not known yet).
        self._supports: dict[str, bool | None] = {f: None for f in _OPTIONAL_FEATURES}
        self._format = "json_schema"  # the response_format type to ask for (see _schema)
        self._client: Any = None
        self._sem: Any = None
        self._update_version()

    # -- Labeler interface ------------------------------------------------------------------------

    def fit(self, texts: Sequence[str], labels: Sequence[str]) -> LLMLabeler:
        if len(texts) != len(labels):
            raise ValueError("fit needs one label per text")
        seen = [str(v) for v in labels]
        if self._given_classes is not None:
            unknown = sorted(set(seen) - set(self._given_classes))
            if unknown:
                raise ValueError(
                    f"label {unknown[0]!r} is not among the classes {self._given_classes}"
                )
            self.classes_ = list(self._given_classes)
        else:
            if not seen:
                raise ValueError("fit needs at least one label when no classes were given")
            self.classes_ = sorted(set(seen))
        self.examples_ = []
        if self.few_shot > 0:
            taken: dict[str, int] = {}
            for text, label in zip(texts, seen, strict=True):
                if taken.get(label, 0) < self.few_shot:
                    taken[label] = taken.get(label, 0) + 1
                    self.examples_.append((str(text), label))
        self._update_version()
        return self

    def predict_proba(self, texts: Sequence[str]) -> NDArray[np.float64]:
        texts = [str(t) for t in texts]
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.apredict_proba(texts))
        with ThreadPoolExecutor(1) as pool:  # called from inside an event loop (e.g. a notebook)
            return pool.submit(asyncio.run, self.apredict_proba(texts)).result()

    async def apredict_proba(self, texts: Sequence[str]) -> NDArray[np.float64]:
        """``predict_proba`` for callers already inside an event loop."""
        import httpx

        if not hasattr(self, "classes_"):
            raise RuntimeError(
                "this LLMLabeler has no classes yet; pass classes= or call fit first"
            )
        texts = [str(t) for t in texts]
        k = len(self.classes_)
        self.failed_: list[int] = []
        self.sources_: list[str] = []
        self.cache_hits_ = 0
        self.requests_ = 0
        if not texts:
            self.failures_ = 0
            return np.zeros((0, k))
        headers = {"Content-Type": "application/json"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise LLMLabelerError(
                    f"environment variable {self.api_key_env} (the API key) is not set"
                )
            headers["Authorization"] = f"Bearer {key}"
        unique = list(dict.fromkeys(texts))
        results: dict[str, tuple[NDArray[np.float64], str]] = {}
        cache = _Cache(self.cache_path) if self.cache_path is not None else None
        try:
            todo: list[tuple[str, str]] = []
            for text in unique:
                key = self._cache_key(text)
                hit = cache.get(key) if cache is not None else None
                if hit is not None and len(hit["row"]) == k:
                    results[text] = (np.asarray(hit["row"], dtype=np.float64), hit["source"])
                    self.cache_hits_ += 1
                else:
                    todo.append((text, key))
            if todo:
                self._sem = asyncio.Semaphore(self.max_concurrency)
                limits = httpx.Limits(
                    max_connections=self.max_concurrency,
                    max_keepalive_connections=self.max_concurrency,
                )
                async with httpx.AsyncClient(
                    headers=headers,
                    timeout=httpx.Timeout(self.timeout),
                    limits=limits,
                    trust_env=self.trust_env,
                ) as client:
                    self._client = client

                    async def one(text: str, key: str) -> None:
                        row, source = await self._label(text)
                        results[text] = (row, source)
                        if cache is not None and source != "failed":
                            cache.put(key, {"row": row.tolist(), "source": source})

                    outcomes: list[Any] = []
                    start = 0
                    # Probe logprobs support with one text before fanning out, so a server
                    # without them is not sent a wasted greedy request per text.
                    if self.use_logprobs and self._supports["logprobs"] is None:
                        outcomes += await asyncio.gather(one(*todo[0]), return_exceptions=True)
                        start = 1
                    outcomes += await asyncio.gather(
                        *(one(t, c) for t, c in todo[start:]), return_exceptions=True
                    )
                errors = [o for o in outcomes if isinstance(o, BaseException)]
                if errors:
                    raise errors[0]
        finally:
            self._client = None
            self._sem = None
            if cache is not None:
                cache.close()
        out = np.empty((len(texts), k))
        for i, text in enumerate(texts):
            row, source = results[text]
            out[i] = row
            self.sources_.append(source)
            if source == "failed":
                self.failed_.append(i)
        self.failures_ = len(self.failed_)
        if self.failures_:
            warnings.warn(
                f"{self.name}: {self.failures_} of {len(texts)} texts got no valid label after "
                f"{self.max_retries} retries and were given a uniform row",
                RuntimeWarning,
                stacklevel=2,
            )
        return out

    # -- prompts, cache keys, version -------------------------------------------------------------

    def _render(self, text: str) -> str:
        listed = ", ".join(json.dumps(c, ensure_ascii=False) for c in self.classes_)
        return self.prompt.replace("{classes}", listed).replace("{text}", text)

    def _messages(self, text: str) -> list[dict[str, str]]:
        messages = [{"role": "system", "content": self.system}] if self.system else []
        for example, label in self.examples_:
            messages.append({"role": "user", "content": self._render(example)})
            messages.append(
                {"role": "assistant", "content": json.dumps({"label": label}, ensure_ascii=False)}
            )
        messages.append({"role": "user", "content": self._render(text)})
        return messages

    def _cache_key(self, text: str) -> str:
        params = {
            "model": self.model,
            "messages": self._messages(text),
            "classes": list(self.classes_),
            "use_logprobs": self.use_logprobs,
            "top_logprobs": self.top_logprobs,
            "samples": self.samples,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
        }
        blob = json.dumps(params, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _update_version(self) -> None:
        blob = json.dumps([self.prompt, self.system, self.examples_], ensure_ascii=False)
        self.version = "1+" + hashlib.sha256(blob.encode()).hexdigest()[:12]

    def _schema(self) -> dict[str, Any]:
        """The ``response_format`` asked for: OpenAI's ``json_schema``, or llama.cpp's
        ``json_object`` with a ``schema`` once a server refused the first."""
        schema = {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": list(self.classes_)}},
            "required": ["label"],
            "additionalProperties": False,
        }
        if self._format == "json_object":
            return {"type": "json_object", "schema": schema}
        return {
            "type": "json_schema",
            "json_schema": {"name": "label", "strict": True, "schema": schema},
        }

    def _parse(self, content: Any) -> str | None:
        """The label in an answer, or None when it is malformed or not one of the classes."""
        if not isinstance(content, str):
            return None
        text = content.strip()
        if text.startswith("```"):
            text = text.strip("`").removeprefix("json").strip()
        try:
            value = json.loads(text)
        except ValueError:
            found = re.search(r"\{.*\}", text, re.DOTALL)
            try:
                value = json.loads(found.group(0)) if found else None
            except ValueError:
                return None
        label = value.get("label") if isinstance(value, dict) else None
        if isinstance(label, str) and label.strip() in self.classes_:
            return label.strip()
        return None

    # -- labelling one text -----------------------------------------------------------------------

    async def _label(self, text: str) -> tuple[NDArray[np.float64], str]:
        messages = self._messages(text)
        if self.use_logprobs and self._supports["logprobs"] is not False:
            invalid = 0
            while invalid <= self.max_retries:
                response = await self._chat(messages, temperature=0.0, n=1, logprobs=True)
                choice = (response.get("choices") or [{}])[0]
                label = self._parse((choice.get("message") or {}).get("content"))
                if label is None:
                    invalid += 1
                    continue
                tokens = (choice.get("logprobs") or {}).get("content")
                if not tokens:
                    self._supports["logprobs"] = False
                    break
                self._supports["logprobs"] = True
                row = self._row_from_logprobs(tokens, label)
                if row is not None:
                    return row, "logprobs"
                break  # logprobs present but unreadable for this label: sample instead
            else:
                return self._uniform(), "failed"
        return await self._from_samples(messages)

    async def _from_samples(
        self, messages: list[dict[str, str]]
    ) -> tuple[NDArray[np.float64], str]:
        valid: list[str] = []
        invalid = 0
        while len(valid) < self.samples and invalid <= self.max_retries:
            need = self.samples - len(valid)
            if need > 1 and self._supports["n"] is not False:
                responses = [await self._chat(messages, temperature=self.temperature, n=need)]
                got = len(responses[0].get("choices") or [])
                if self._supports["n"] is None:
                    self._supports["n"] = got > 1
            else:
                responses = await asyncio.gather(
                    *(self._chat(messages, temperature=self.temperature, n=1) for _ in range(need))
                )
            for response in responses:
                for choice in response.get("choices") or []:
                    label = self._parse((choice.get("message") or {}).get("content"))
                    if label is None:
                        invalid += 1
                    else:
                        valid.append(label)
        if not valid:
            return self._uniform(), "failed"
        valid = valid[: self.samples]
        counts = np.array([valid.count(c) for c in self.classes_], dtype=np.float64)
        return (counts + 1.0) / (len(valid) + len(self.classes_)), "samples"

    def _uniform(self) -> NDArray[np.float64]:
        return np.full(len(self.classes_), 1.0 / len(self.classes_))

    def _row_from_logprobs(
        self, tokens: list[dict[str, Any]], label: str
    ) -> NDArray[np.float64] | None:
        pieces = [str(t.get("token", "")) for t in tokens]
        joined = "".join(pieces)
        found = _LABEL_START.search(joined)
        if found is None or not joined[found.end() :].startswith(label):
            return None
        start = found.end()
        ends = np.cumsum([len(p) for p in pieces])
        j = int(np.searchsorted(ends, start, side="right"))
        if j >= len(tokens):
            return None
        pre = pieces[j][: start - (ends[j] - len(pieces[j]))]
        consumed = ""
        candidates = list(self.classes_)
        path = 1.0
        mass = dict.fromkeys(self.classes_, 0.0)
        while True:
            chosen = pieces[j]
            alternatives: dict[str, float] = {}
            for alt in tokens[j].get("top_logprobs") or []:
                tok, lp = alt.get("token"), alt.get("logprob")
                if isinstance(tok, str) and isinstance(lp, (int, float)) and math.isfinite(lp):
                    alternatives[tok] = alternatives.get(tok, 0.0) + math.exp(lp)
            lp = tokens[j].get("logprob")
            if chosen not in alternatives and isinstance(lp, (int, float)) and math.isfinite(lp):
                alternatives[chosen] = math.exp(lp)
            matched: list[tuple[str, float, list[str]]] = []
            for tok, p in alternatives.items():
                if tok.startswith(pre) and len(tok) > len(pre):
                    classes = _matching(consumed + tok[len(pre) :], candidates)
                    if classes:
                        matched.append((tok, p, classes))
            total = sum(p for _, p, _ in matched)
            if total <= 0:
                break
            follow: tuple[float, list[str]] | None = None
            for tok, p, classes in matched:
                if tok == chosen and len(classes) > 1 and j + 1 < len(tokens):
                    follow = (p / total, classes)
                    continue
                for c in classes:
                    mass[c] += path * p / total / len(classes)
            if follow is None:
                break
            path *= follow[0]
            candidates = follow[1]
            consumed += chosen[len(pre) :]
            pre = ""
            j += 1
        row = np.array([mass[c] for c in self.classes_])
        if row.sum() <= 0:
            return None
        row = row / row.sum() + _FLOOR
        return row / row.sum()

    # -- HTTP -------------------------------------------------------------------------------------

    async def _chat(
        self, messages: list[dict[str, str]], *, temperature: float, n: int, logprobs: bool = False
    ) -> dict[str, Any]:
        """One chat completion, with retries on transient failures; returns the response JSON."""
        import httpx

        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": temperature,
            "max_tokens": self.max_tokens,
        }
        if n > 1 and self._supports["n"] is not False:
            body["n"] = n
        if self._supports["response_format"] is not False:
            body["response_format"] = self._schema()
        if logprobs and self._supports["logprobs"] is not False:
            body["logprobs"] = True
            body["top_logprobs"] = self.top_logprobs
        url = self.base_url + "/chat/completions"
        attempt = 0
        while True:
            try:
                async with self._sem:
                    self.requests_ += 1
                    response = await self._client.post(url, json=body)
                if _refused(response.status_code, response.text):
                    self._give_up(body, response.status_code, response.text)
                    continue
                if response.status_code == 429 or response.status_code >= 500:
                    raise _Retryable(
                        f"HTTP {response.status_code}",
                        _retry_after(response.headers.get("Retry-After")),
                    )
                if response.status_code >= 400:
                    raise LLMLabelerError(
                        f"the server answered HTTP {response.status_code}: {response.text[:300]}"
                    )
                try:
                    data = response.json()
                except ValueError as exc:
                    raise _Retryable("the response body is not JSON") from exc
                if not isinstance(data, dict):
                    raise _Retryable("the response body is not a JSON object")
                return data
            except (_Retryable, httpx.TimeoutException, httpx.TransportError) as exc:
                if attempt >= self.max_retries:
                    raise LLMLabelerError(
                        f"{url} kept failing after {self.max_retries} retries: {exc!r}"
                    ) from exc
                wait = random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))
                if isinstance(exc, _Retryable) and exc.retry_after is not None:
                    wait = min(self.max_backoff, exc.retry_after)
                attempt += 1
                await asyncio.sleep(wait)

    def _give_up(self, body: dict[str, Any], status: int, refusal: str) -> None:
        """Change ``body`` after the server refused it: step ``response_format`` down, or drop
        the feature the refusal names (a bare 400 names none: the next one still asked for), and
        remember it. A refusal of anything else raises."""
        named = [f for f in _OPTIONAL_FEATURES if f in body and _FIELD[f].search(refusal)]
        unnamed = [f for f in _OPTIONAL_FEATURES if f in body] if status == 400 else []
        feature = next(iter(named or unnamed), None)
        if feature is None:
            raise LLMLabelerError(f"the server refused the request: {refusal[:300]}")
        if feature == "response_format" and self._format == "json_schema":
            self._format = "json_object"
            body["response_format"] = self._schema()
            return
        self._supports[feature] = False
        body.pop(feature)
        if feature == "logprobs":
            body.pop("top_logprobs", None)


#: How a refusal names a request field (``'response_format'``, ``"n"``, ``loc: body.n``...).
_FIELD = {
    f: re.compile(rf"""['".]{f if f != "logprobs" else "(?:top_)?logprobs"}['".,)\]\s]""")
    for f in _OPTIONAL_FEATURES
}


def _refused(status: int, text: str) -> bool:
    """Whether an answer refuses the request itself (retrying it cannot help): a 400 or 422, or
    a 5xx whose body is a request-validation error, as llama-cpp-python's server sends."""
    return status in (400, 422) or (status >= 500 and "validation error" in text.lower())


def _matching(candidate: str, classes: list[str]) -> list[str]:
    """The classes a label text beginning with ``candidate`` can be (a quote ends the label)."""
    if '"' in candidate:
        whole = candidate[: candidate.index('"')]
        return [c for c in classes if c == whole]
    return [c for c in classes if c.startswith(candidate)]


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class _Cache:
    """Finished rows in SQLite, keyed by the hash of everything that shaped the answer."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path)
        self.db.execute("CREATE TABLE IF NOT EXISTS llm_cache (key TEXT PRIMARY KEY, value TEXT)")
        self.db.commit()

    def get(self, key: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT value FROM llm_cache WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put(self, key: str, value: dict[str, Any]) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO llm_cache (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )
        self.db.commit()

    def close(self) -> None:
        self.db.close()
