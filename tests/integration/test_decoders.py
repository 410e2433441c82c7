"""KV-cache decoders through the real engine (issue 12): built in code, one trained on the standard
library's sources; judged over a generation and timed per step, in design and thorough mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from dqd.domain import Outcome, SearchMode
from dqd.hostinfo import detect_host
from dqd.pipeline.engine import process_model
from dqd.serialize import catalog_details_json
from tests import decoders
from tests.fast import fast_settings

SMALL = decoders.DecoderShape(layers=2, hidden=64, heads=4, vocab=200, context=160)


def test_the_trained_tiny_decoder_predicts_held_out_text_better_than_its_commonest_character() -> None:
    """Its logits mean something: greedy agreement over its generations is a real test."""
    shape, weights = decoders.trained_weights()
    session = ort.InferenceSession(
        decoders.decoder(shape, weights).SerializeToString(), providers=["CPUExecutionProvider"]
    )
    ids = decoders.held_out_ids(4 * 127 + 1)
    hits = 0
    for window in range(4):
        x = ids[window * 127 : window * 127 + 128][None]
        feed = {
            "input_ids": x[:, :-1],
            "attention_mask": np.ones((1, 127), np.int64),
            "position_ids": np.arange(127)[None],
        }
        for i in range(shape.layers):
            for kind in ("key", "value"):
                feed[f"past_key_values.{i}.{kind}"] = np.zeros(
                    (1, shape.heads, 0, shape.head_dim), np.float32
                )
        logits = session.run(["logits"], feed)[0]
        hits += int((logits[0].argmax(-1) == x[0, 1:]).sum())
    accuracy = hits / (4 * 127)
    commonest = np.bincount(ids).max() / ids.size
    assert accuracy > commonest + 0.05, (accuracy, commonest)


@pytest.mark.parametrize("search", [SearchMode.DESIGN, SearchMode.THOROUGH])
def test_a_decoder_is_judged_over_a_generation_and_timed_per_step(tmp_path: Path, search: SearchMode) -> None:
    source = decoders.save_decoder(decoders.decoder(SMALL), tmp_path / "models" / "decoder.onnx")
    # Screening would leave ungated the rungs too slow to be selected, which on this small decoder
    # may be all of them: every rung is gated and timed here, as the judging is what is tested.
    overrides = {"benchmark.decoder_past_length": 64, "ladder.screen": False}
    settings = fast_settings(tmp_path, search=search.value, **overrides)

    result = process_model(source, settings, host=detect_host())

    assert result.outcome is not Outcome.ERROR, result.reasons
    decisive = [a for a in result.accuracy if a.decisive]
    assert decisive and all(
        a.reason.startswith("over a generation of 16 prompt tokens and 16 greedy decode steps")
        for a in decisive
    )
    assert {"logits", "kv cache (last step)"} <= set(decisive[0].metrics)
    steps = {b.step.rsplit(":", 1)[-1] for b in result.benchmarks}
    assert {"decode@64", "prompt@64"} <= steps
    (decode,) = [r for r in result.reasons if r.startswith("decode step with a cache of 64 tokens: FP32 ")]
    assert "tokens/s" in decode
    assert any(r.startswith("decoder with a KV cache (4 cache tensors") for r in result.reasons)


def test_the_trained_decoder_keeps_its_greedy_choices_under_quantization(tmp_path: Path) -> None:
    shape, weights = decoders.trained_weights()
    source = decoders.save_decoder(decoders.decoder(shape, weights), tmp_path / "models" / "tiny.onnx")
    samples = decoders.held_out_ids(16)[None]
    np.savez(tmp_path / "models" / "tiny.samples.npz", input_ids=samples)

    result = process_model(source, fast_settings(tmp_path), host=detect_host())

    assert result.outcome is not Outcome.ERROR, result.reasons
    decisive = [a for a in result.accuracy if a.decisive]
    assert decisive and all(a.input_source.value == "samples" for a in decisive)
    for check in decisive:  # a real model's next-character choices survive int8 weights
        assert check.metrics["logits"]["top1_agreement"] >= 0.8, check.reason


@pytest.mark.parametrize("decides", ["decode", "prompt"])
def test_the_step_benchmark_decoder_decides_names_is_the_one_that_decides(
    tmp_path: Path, decides: str
) -> None:
    source = decoders.save_decoder(decoders.decoder(SMALL), tmp_path / "models" / "decoder.onnx")
    overrides = {"benchmark.decoder_past_length": 32, "benchmark.decoder_decides": decides}

    result = process_model(source, fast_settings(tmp_path, **overrides), host=detect_host())

    steps = catalog_details_json(result.details)["decision"]["steps"]
    timed = {
        b.spec.name: b.speedup for b in result.benchmarks if b.spec and b.step.endswith(f":{decides}@32")
    }
    assert steps and all(step["speedup"] == timed[step["variant"]] for step in steps)
    # Each variant's last benchmark is the deciding one: what the catalog and report read as final.
    for name in timed:
        last = [b for b in result.benchmarks if b.spec and b.spec.name == name][-1]
        assert last.step.endswith(f":{decides}@32")
