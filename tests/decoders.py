"""GPT-style decoders with a KV cache, built in code with onnx.helper (no hub downloads).

The export layout is the common one (Hugging Face Optimum's): inputs
``input_ids`` [batch, seq], ``attention_mask`` [batch, total_seq] over past and
current tokens, ``position_ids`` [batch, seq] and ``past_key_values.N.key`` /
``.value`` [batch, heads, past_seq, head_dim]; outputs ``logits`` [batch, seq,
vocab] and ``present.N.key`` / ``.value`` [batch, heads, total_seq, head_dim].
A prompt step feeds past tensors of length 0.

Pre-LayerNorm blocks as in GPT-2, with the sigmoid approximation of GELU
(``x * sigmoid(1.702 x)``) so that opset 17 has every op. Weights are random
(:func:`random_weights`) or trained (``tests/perf/train_tiny_decoder.py`` writes
them with the same names, ``tests/data/tiny_decoder.npz``).
"""

from __future__ import annotations

import sysconfig
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17
TRAINED_WEIGHTS = Path(__file__).parent / "data" / "tiny_decoder.npz"
# The trained decoder's vocabulary: newline and printable ASCII; anything else reads as "?".
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))
HELD_OUT = "textwrap.py"  # a standard-library file the trainer leaves out, for checks on unseen text


@dataclass(frozen=True)
class DecoderShape:
    layers: int = 2
    hidden: int = 64
    heads: int = 4
    vocab: int = 96
    context: int = 256  # rows of the position table

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads


GPT2_SMALL = DecoderShape(layers=12, hidden=768, heads=12, vocab=50257, context=1024)


def random_weights(shape: DecoderShape, seed: int = 0) -> dict[str, np.ndarray]:
    """GPT-2's initialisation (normal, std 0.02; residual projections scaled by depth)."""
    rng = np.random.default_rng(seed)
    d, v = shape.hidden, shape.vocab

    def normal(*dims: int, std: float = 0.02) -> np.ndarray:
        return (rng.standard_normal(dims) * std).astype(np.float32)

    weights = {"wte": normal(v, d), "wpe": normal(shape.context, d, std=0.01)}
    residual = 0.02 / np.sqrt(2 * shape.layers)
    for i in range(shape.layers):
        weights |= {
            f"h{i}.ln1_g": np.ones(d, np.float32),
            f"h{i}.ln1_b": np.zeros(d, np.float32),
            f"h{i}.w_qkv": normal(d, 3 * d),
            f"h{i}.b_qkv": np.zeros(3 * d, np.float32),
            f"h{i}.w_o": normal(d, d, std=residual),
            f"h{i}.b_o": np.zeros(d, np.float32),
            f"h{i}.ln2_g": np.ones(d, np.float32),
            f"h{i}.ln2_b": np.zeros(d, np.float32),
            f"h{i}.w_fc": normal(d, 4 * d),
            f"h{i}.b_fc": np.zeros(4 * d, np.float32),
            f"h{i}.w_proj": normal(4 * d, d, std=residual),
            f"h{i}.b_proj": np.zeros(d, np.float32),
        }
    weights |= {"lnf_g": np.ones(d, np.float32), "lnf_b": np.zeros(d, np.float32)}
    weights["w_head"] = np.ascontiguousarray(weights["wte"].T)  # tied, stored as its own MatMul weight
    return weights


def trained_weights() -> tuple[DecoderShape, dict[str, np.ndarray]]:
    """The committed tiny decoder trained on the standard library's sources (characters)."""
    with np.load(TRAINED_WEIGHTS) as data:
        weights = {name: data[name].astype(np.float32) for name in data.files if name != "shape"}
        layers, hidden, heads, vocab, context = (int(x) for x in data["shape"])
    return DecoderShape(layers, hidden, heads, vocab, context), weights


def held_out_ids(length: int) -> np.ndarray:
    """The first ``length`` characters of a standard-library file the tiny decoder was not trained on."""
    text = (Path(sysconfig.get_paths()["stdlib"]) / HELD_OUT).read_text(encoding="utf-8")
    index = {c: i for i, c in enumerate(ALPHABET)}
    return np.array([index.get(c, index["?"]) for c in text[:length]], np.int64)


def decoder(shape: DecoderShape, weights: Mapping[str, np.ndarray] | None = None) -> onnx.ModelProto:
    """The decoder as an ONNX model (see the module doc for its inputs and outputs)."""
    weights = weights if weights is not None else random_weights(shape)
    b = _Builder()
    d, h, hd = shape.hidden, shape.heads, shape.head_dim
    b.const("split3", np.array([d, d, d], np.int64))
    b.const("heads_shape", np.array([0, 0, h, hd], np.int64))
    b.const("merge_shape", np.array([0, 0, d], np.int64))
    b.const("scale", np.array(1.0 / np.sqrt(hd), np.float32))
    b.const("gelu_k", np.array(1.702, np.float32))
    b.const("zero_f", np.array(0.0, np.float32))
    b.const("blocked", np.array(-1e4, np.float32))
    for name, value in weights.items():
        b.const(name, value)
    bias = _attention_bias(b)
    b.node("Gather", ["wte", "input_ids"], ["tok"])
    b.node("Gather", ["wpe", "position_ids"], ["pos"])
    hidden = b.node("Add", ["tok", "pos"], ["h_in"])
    for i in range(shape.layers):
        hidden = _block(b, i, hidden, bias)
    final = b.node("LayerNormalization", [hidden, "lnf_g", "lnf_b"], ["h_final"], epsilon=1e-5, axis=-1)
    b.node("MatMul", [final, "w_head"], ["logits"])
    inputs = [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "total_seq"]),
        helper.make_tensor_value_info("position_ids", TensorProto.INT64, ["batch", "seq"]),
    ]
    outputs = [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", shape.vocab])]
    for i in range(shape.layers):
        for kind in ("key", "value"):
            inputs.append(
                helper.make_tensor_value_info(
                    f"past_key_values.{i}.{kind}", TensorProto.FLOAT, ["batch", h, "past_seq", hd]
                )
            )
            outputs.append(
                helper.make_tensor_value_info(
                    f"present.{i}.{kind}", TensorProto.FLOAT, ["batch", h, "total_seq", hd]
                )
            )
    graph = helper.make_graph(b.nodes, "decoder", inputs, outputs, b.initializers)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dqd-tests"
    )
    model.ir_version = 8
    return model


def save_decoder(model: onnx.ModelProto, path: Path) -> Path:
    """Models over protobuf's 2 GB limit would need external data; GPT-2 small is about 650 MB."""
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save_model(model, str(path))
    return path


def _attention_bias(b: _Builder) -> str:
    """[batch, 1, seq, total_seq]: 0 where a query may attend (causal and not padding), else -1e4."""
    b.const("one", np.array(1, np.int64))
    b.const("zero", np.array(0, np.int64))
    b.const("ax0", np.array([0], np.int64))
    b.const("ax1", np.array([1], np.int64))
    b.const("ax12", np.array([1, 2], np.int64))
    b.node("Shape", ["attention_mask"], ["mask_shape"])
    b.node("Gather", ["mask_shape", "one"], ["total"])
    b.node("Shape", ["input_ids"], ["ids_shape"])
    b.node("Gather", ["ids_shape", "one"], ["current"])
    b.node("Sub", ["total", "current"], ["past_len"])
    b.node("Range", ["zero", "total", "one"], ["key_pos"])
    b.node("Range", ["past_len", "total", "one"], ["query_pos"])
    b.node("Unsqueeze", ["key_pos", "ax0"], ["key_row"])
    b.node("Unsqueeze", ["query_pos", "ax1"], ["query_col"])
    b.node("LessOrEqual", ["key_row", "query_col"], ["causal"])
    b.node("Cast", ["attention_mask"], ["mask_bool"], to=TensorProto.BOOL)
    b.node("Unsqueeze", ["mask_bool", "ax12"], ["mask_4d"])
    b.node("And", ["causal", "mask_4d"], ["allowed"])
    return b.node("Where", ["allowed", "zero_f", "blocked"], ["attention_bias"])


def _block(b: _Builder, i: int, hidden: str, bias: str) -> str:
    p = f"h{i}."
    a = b.node("LayerNormalization", [hidden, p + "ln1_g", p + "ln1_b"], [p + "ln1"], epsilon=1e-5, axis=-1)
    b.node("MatMul", [a, p + "w_qkv"], [p + "qkv_mm"])
    b.node("Add", [p + "qkv_mm", p + "b_qkv"], [p + "qkv"])
    b.node("Split", [p + "qkv", "split3"], [p + "q", p + "k", p + "v"], axis=2)
    for part in ("q", "k", "v"):
        b.node("Reshape", [p + part, "heads_shape"], [p + part + "_heads"])
        b.node("Transpose", [p + part + "_heads"], [p + part + "_t"], perm=[0, 2, 1, 3])
    b.node("Concat", [f"past_key_values.{i}.key", p + "k_t"], [f"present.{i}.key"], axis=2)
    b.node("Concat", [f"past_key_values.{i}.value", p + "v_t"], [f"present.{i}.value"], axis=2)
    b.node("Transpose", [f"present.{i}.key"], [p + "k_T"], perm=[0, 1, 3, 2])
    b.node("MatMul", [p + "q_t", p + "k_T"], [p + "scores_raw"])
    b.node("Mul", [p + "scores_raw", "scale"], [p + "scores_scaled"])
    b.node("Add", [p + "scores_scaled", bias], [p + "scores"])
    b.node("Softmax", [p + "scores"], [p + "probs"], axis=-1)
    b.node("MatMul", [p + "probs", f"present.{i}.value"], [p + "ctx_heads"])
    b.node("Transpose", [p + "ctx_heads"], [p + "ctx_t"], perm=[0, 2, 1, 3])
    b.node("Reshape", [p + "ctx_t", "merge_shape"], [p + "ctx"])
    b.node("MatMul", [p + "ctx", p + "w_o"], [p + "attn_mm"])
    b.node("Add", [p + "attn_mm", p + "b_o"], [p + "attn"])
    b.node("Add", [hidden, p + "attn"], [p + "h_mid"])
    m = b.node(
        "LayerNormalization", [p + "h_mid", p + "ln2_g", p + "ln2_b"], [p + "ln2"], epsilon=1e-5, axis=-1
    )
    b.node("MatMul", [m, p + "w_fc"], [p + "fc_mm"])
    b.node("Add", [p + "fc_mm", p + "b_fc"], [p + "fc"])
    b.node("Mul", [p + "fc", "gelu_k"], [p + "fc_k"])
    b.node("Sigmoid", [p + "fc_k"], [p + "fc_gate"])
    b.node("Mul", [p + "fc", p + "fc_gate"], [p + "gelu"])
    b.node("MatMul", [p + "gelu", p + "w_proj"], [p + "proj_mm"])
    b.node("Add", [p + "proj_mm", p + "b_proj"], [p + "mlp"])
    return b.node("Add", [p + "h_mid", p + "mlp"], [p + "h_out"])


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []

    def const(self, name: str, value: np.ndarray) -> None:
        self.initializers.append(numpy_helper.from_array(value, name))

    def node(self, op: str, inputs: list[str], outputs: list[str], **attributes: Any) -> str:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=f"{op}_{len(self.nodes)}", **attributes))
        return outputs[0]
