"""The engine on the real models in ../shared/corpus (issue 3's acceptance), with a small timing budget.

One module-scoped run processes every model once at 1 thread; the tests
then check each outcome.  Skips cleanly when the corpus is absent.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest

from dqd.domain import EngineResult, InputSource, Outcome, WeightType
from dqd.hostinfo import detect_host
from dqd.pipeline.engine import process_model
from tests.conftest import CORPUS_DIR, corpus_path
from tests.fast import fast_settings

pytestmark = [pytest.mark.corpus, pytest.mark.slow]
MODELS = ("minilm-l6", "ppocrv4-det", "ppocr-cls", "silero-vad", "magika-v3_3", "logreg-iris")


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, EngineResult]:
    corpus_path("minilm-l6.onnx")  # skips the module when the corpus is absent
    settings = fast_settings(
        tmp_path_factory.mktemp("corpus"), **{"benchmark.min_seconds": 0.5, "benchmark.max_seconds": 4.0}
    )
    host = detect_host()
    return {
        name: process_model(CORPUS_DIR / f"{name}.onnx", settings, host=host, model_root=CORPUS_DIR)
        for name in MODELS
    }


def test_every_model_has_a_recorded_outcome(results: dict[str, EngineResult]) -> None:
    for name, result in results.items():
        assert result.outcome is not Outcome.ERROR, (name, result.reasons)
        assert result.reasons and result.sha256 and result.seconds > 0


def test_minilm_is_quantized_on_its_samples(results: dict[str, EngineResult]) -> None:
    result = results["minilm-l6"]
    assert result.outcome is Outcome.QUANTIZED, result.reasons
    # U8U8 normally (about 1.4x on a VNNI host, 1.23x in BASELINE.md on AVX2); U8S8 when a noisy run
    # leaves U8U8 unresolved. How fast is for tests/perf, not an assertion here.
    assert result.selected is not None and result.selected.weight_type in (WeightType.U8U8, WeightType.U8S8)
    assert result.speedup_ci is not None and result.speedup_ci[0] >= 1.0
    selected = [a for a in result.accuracy if a.spec == result.selected]
    assert [(a.input_source, a.decisive) for a in selected] == [
        (InputSource.SAMPLES, True),
        (InputSource.SYNTHETIC, False),
    ]
    assert selected[0].passed and selected[0].metrics["last_hidden_state"]["samples"] == 8


@pytest.mark.parametrize("name", ["ppocr-cls", "magika-v3_3"])
def test_slower_variants_keep_fp32(results: dict[str, EngineResult], name: str) -> None:
    result = results[name]
    assert result.outcome is Outcome.KEPT_FP32, result.reasons
    timed = [b for b in result.benchmarks if b.spec is not None]
    assert [b.step for b in timed] == ["u8u8", "u8s8"]
    # The short test budget on a shared CI machine may leave an interval touching 1.0 (then the
    # reason reads "not faster ... by the margin"); the point estimates must still be below 1.
    assert all(b.speedup is not None and b.speedup < 1.0 for b in timed), result.reasons
    assert result.reasons[0].startswith("kept FP32: "), result.reasons


def test_ppocr_cls_variants_shrink_once_constants_are_initializers(results: dict[str, EngineResult]) -> None:
    source_size = (CORPUS_DIR / "ppocr-cls.onnx").stat().st_size
    for variant in results["ppocr-cls"].variants:
        assert variant.size_bytes is not None and variant.size_bytes < 0.5 * source_size


def test_ppocrv4_det_quantizes_after_the_pre_fix_and_is_measured(results: dict[str, EngineResult]) -> None:
    result = results["ppocrv4-det"]
    assert result.variants and all(v.error is None for v in result.variants)
    ops = {n.op_type for n in onnx.load(str(result.variants[0].output_path)).graph.node}
    assert "ConvInteger" in ops and "Constant" not in ops
    assert any(b.spec is not None for b in result.benchmarks)
    assert all(a.metrics for a in result.accuracy)


def test_silero_is_skipped_because_its_ops_are_in_subgraphs(results: dict[str, EngineResult]) -> None:
    result = results["silero-vad"]
    assert result.outcome is Outcome.SKIPPED
    assert "inside If/Loop/Scan" in result.reasons[0] and "LSTM" in result.reasons[0]


def test_logreg_is_skipped_without_an_ai_onnx_domain(results: dict[str, EngineResult]) -> None:
    result = results["logreg-iris"]
    assert result.outcome is Outcome.SKIPPED and "no ai.onnx domain" in result.reasons[0]


def test_sources_are_untouched(results: dict[str, EngineResult]) -> None:
    import hashlib

    for name, result in results.items():
        assert hashlib.sha256(Path(CORPUS_DIR / f"{name}.onnx").read_bytes()).hexdigest() == result.sha256
