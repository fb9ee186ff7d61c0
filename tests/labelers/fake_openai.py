"""A tiny OpenAI-compatible chat-completions server for tests (stdlib only, loopback only).

The "model" is a distribution over labels per text (``dist_for``); the greedy answer is its most
likely label, a sample at temperature > 0 is drawn from it, and logprobs are computed from it
exactly: the answer ``{"label": "<label>"}`` is split into tokens (the label and closing ``"}`` in
chunks of two characters) and each token's ``top_logprobs`` are the next chunks of every label
still possible, with their conditional probabilities. A test can then check that the labeler
recovers the distribution.

Scripted behaviours: ``script[marker] = [behaviour, ...]`` - a request whose last user message
contains ``marker`` takes the next behaviour (``"ok"`` once the list is used up):
``"malformed"`` (answer that is not JSON), ``"outside"`` (a label not among the classes),
``"429"`` (with ``Retry-After: retry_after``), ``"500"``, ``"slow"`` (sleep ``slow_s`` and then
answer). The server counts requests, keeps their bodies and headers, and records the most requests
it had in flight at once.

``formats`` (the ``response_format`` types accepted) and ``refused`` (request fields not
accepted at all) make it refuse a request the way llama-cpp-python 0.3.36's server does: HTTP 500
with a pydantic validation error naming the field (``LLAMA_CPP_REFUSAL``, recorded from that
server), since its error handler turns every exception into a 500.
"""

from __future__ import annotations

import json
import math
import random
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


#: llama-cpp-python 0.3.36's answer to ``response_format: {"type": "json_schema"}`` (HTTP 500),
#: its traceback shortened; ``{loc}`` is the refused field's location.
LLAMA_CPP_REFUSAL = (
    "1 validation error:\n  {{'type': 'literal_error', 'loc': ('body', {loc}), 'msg': "
    "\"Input should be 'text' or 'json_object'\", 'input': 'json_schema', 'ctx': "
    "{{'expected': \"'text' or 'json_object'\"}}}}\n\n  File \"llama_cpp/server/app.py\", "
    "line 376, in create_chat_completion\n    POST /v1/chat/completions"
)


def _default_dist(text: str) -> dict[str, float]:
    return {"spam": 0.9, "ham": 0.1} if "win" in text.lower() else {"spam": 0.2, "ham": 0.8}


class FakeOpenAI:
    def __init__(self) -> None:
        self.dist_for: Callable[[str], dict[str, float]] = _default_dist
        self.logprobs = True  # return logprobs when asked
        self.support_n = True  # honour the n parameter
        self.sample = True  # at temperature > 0 draw from the distribution (else always greedy)
        self.latency = 0.0  # seconds added to every answer
        self.slow_s = 1.0
        self.retry_after = "0.2"
        self.script: dict[str, list[str]] = {}
        self.formats = {"json_schema", "json_object", "text"}
        self.refused: set[str] = set()
        self.requests = 0
        self.bodies: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._lock = threading.Lock()
        self._rng = random.Random(0)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.02,), daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reset_counts(self) -> None:
        with self._lock:
            self.requests = 0
            self.max_in_flight = 0
            self.bodies.clear()
            self.headers.clear()

    # -- the protocol -------------------------------------------------------------------------

    def _behaviour(self, prompt: str) -> str:
        with self._lock:
            for marker, plan in self.script.items():
                if marker in prompt and plan:
                    return plan.pop(0)
        return "ok"

    def _refusal(self, body: dict[str, Any]) -> dict[str, Any] | None:
        """llama-cpp-python's 500 for a field it does not take, or None."""
        loc = next((f"'{f}'" for f in sorted(self.refused) if f in body), None)
        kind = (body.get("response_format") or {}).get("type")
        if loc is None and kind is not None and kind not in self.formats:
            loc = "'response_format', 'type'"
        if loc is None:
            return None
        message = LLAMA_CPP_REFUSAL.format(loc=loc)
        return {"error": {"message": message, "type": "internal_server_error", "param": None}}

    def _answer(self, body: dict[str, Any]) -> tuple[int, dict[str, str], dict[str, Any] | None]:
        refusal = self._refusal(body)
        if refusal is not None:
            return 500, {}, refusal
        prompt = [m for m in body["messages"] if m["role"] == "user"][-1]["content"]
        behaviour = self._behaviour(prompt)
        if behaviour == "429":
            return 429, {"Retry-After": self.retry_after}, {"error": {"message": "slow down"}}
        if behaviour == "500":
            return 500, {}, {"error": {"message": "boom"}}
        if behaviour == "slow":
            time.sleep(self.slow_s)
        dist = self.dist_for(prompt)
        greedy = max(dist, key=dist.__getitem__)
        temperature = float(body.get("temperature", 1.0))
        n = int(body.get("n", 1)) if self.support_n else 1
        choices = []
        for i in range(n):
            if temperature > 0 and self.sample:
                with self._lock:
                    label = self._rng.choices(list(dist), weights=list(dist.values()))[0]
            else:
                label = greedy
            content = json.dumps({"label": label})
            if behaviour == "malformed":
                content = '{"label": "spam"'  # cut short
            elif behaviour == "outside":
                content = '{"label": "eggs"}'
            choice: dict[str, Any] = {
                "index": i,
                "message": {"role": "assistant", "content": content},
                "finish_reason": "stop",
                "logprobs": None,
            }
            if body.get("logprobs") and self.logprobs and behaviour not in ("malformed", "outside"):
                choice["logprobs"] = {
                    "content": _token_logprobs(label, dist, int(body.get("top_logprobs", 5)))
                }
            choices.append(choice)
        return (
            200,
            {},
            {
                "id": "fake",
                "object": "chat.completion",
                "model": body.get("model"),
                "choices": choices,
            },
        )

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                with fake._lock:
                    fake.requests += 1
                    fake._in_flight += 1
                    fake.max_in_flight = max(fake.max_in_flight, fake._in_flight)
                try:
                    raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                    body = json.loads(raw)
                    with fake._lock:
                        fake.bodies.append(body)
                        fake.headers.append(dict(self.headers.items()))
                    if self.path != "/v1/chat/completions":
                        status, extra, payload = 404, {}, {"error": {"message": "no such path"}}
                    else:
                        status, extra, payload = fake._answer(body)
                    if fake.latency:
                        time.sleep(fake.latency)
                    data = json.dumps(payload).encode()
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout)
                finally:
                    with fake._lock:
                        fake._in_flight -= 1

        return Handler


def _chunks(s: str) -> list[str]:
    return [s[i : i + 2] for i in range(0, len(s), 2)]


def _token_logprobs(label: str, dist: dict[str, float], top: int) -> list[dict[str, Any]]:
    """Token logprobs of ``{"label": "<label>"}`` under ``dist`` (see the module docstring)."""

    def entry(token: str, p: float) -> dict[str, Any]:
        return {
            "token": token,
            "logprob": math.log(p) if p > 0 else -9999.0,
            "bytes": list(token.encode()),
        }

    out = [dict(entry(t, 1.0), top_logprobs=[entry(t, 1.0)]) for t in ['{"', "label", '":', ' "']]
    tails = {c: _chunks(c + '"}') for c in dist}
    path: list[str] = []
    for token in tails[label]:
        alive = {c: p for c, p in dist.items() if tails[c][: len(path)] == path and p > 0}
        total = sum(alive.values())
        nexts: dict[str, float] = {}
        for c, p in alive.items():
            if len(tails[c]) > len(path):
                nexts[tails[c][len(path)]] = nexts.get(tails[c][len(path)], 0.0) + p / total
        ranked = sorted(nexts.items(), key=lambda kv: -kv[1])[:top]
        out.append(dict(entry(token, nexts[token]), top_logprobs=[entry(t, p) for t, p in ranked]))
        path.append(token)
    return out
