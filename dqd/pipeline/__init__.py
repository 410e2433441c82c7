"""ONNX work without any database: preflight, prepare, quantize, inputs, accuracy, benchmark, policy.

``engine.process_model`` composes them; heavy steps run in a child process (``isolate``).
"""
