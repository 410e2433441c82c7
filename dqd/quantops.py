"""The ops onnxruntime's dynamic (IntegerOps) quantizer rewrites: one definition for preflight and the ladder.

Each op maps to the inputs that hold the weight it needs as a constant float
tensor: preflight counts a node as quantizable only when one of them is
constant, and the ladder reasons about which of these ops a rung reaches.
Gemm is not among them. onnxruntime's own registry
(``onnxruntime.quantization.registry.IntegerOpsRegistry``) also lists
weightless ops (Transpose) that it rewrites only around quantized neighbours;
tests/unit/test_quantops.py fails when an onnxruntime upgrade changes the
weight-bearing part.
"""

from __future__ import annotations

QUANTIZABLE_WEIGHT_INPUTS: dict[str, tuple[int, ...]] = {
    "MatMul": (1,),
    "Conv": (1,),
    "Gather": (0,),
    "LSTM": (1, 2),
    "Attention": (1,),
    "EmbedLayerNormalization": (2, 3, 4),
}
DYNAMIC_OPS = frozenset(QUANTIZABLE_WEIGHT_INPUTS)
# In onnxruntime's registry but carrying no weight: quantized only when their input already is.
WEIGHTLESS_REGISTRY_OPS = frozenset({"Transpose"})
