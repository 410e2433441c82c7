"""Engine decisions on the corpus against a long fixed-budget run: `python tests/perf/bench_engine.py`.

Per corpus model: the engine's decision, its wall time and the FP32/U8U8/U8S8
medians it measured; then one long interleaved run of FP32, U8U8 and U8S8
together (no adaptive stopping), the same policy applied to those intervals
with the same accuracy gate, and whether the two decisions agree.  A
disagreement where the long run's deciding interval straddles ``1 + margin``
is noise, not an error of the adaptive stop.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from dqd.domain import EngineResult, Outcome, VariantSpec  # noqa: E402
from dqd.hostinfo import detect_host  # noqa: E402
from dqd.pipeline.accuracy import GateThresholds  # noqa: E402
from dqd.pipeline.benchmark import Contender, benchmark_interleaved  # noqa: E402
from dqd.pipeline.engine import process_model  # noqa: E402
from dqd.pipeline.inputs import gather_input_sets  # noqa: E402
from dqd.pipeline.inspect import preflight  # noqa: E402
from dqd.pipeline.policy import CandidateMeasurement, Speed, classify_speed, decide_design, design_specs  # noqa: E402
from dqd.pipeline.prepare import prepare_model  # noqa: E402
from dqd.pipeline.quantize import build_variant, variant_dir  # noqa: E402
from dqd.pipeline.workbench import Workbench  # noqa: E402
from dqd.settings import Settings, load  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"


def long_run(
    model: Path, result: EngineResult, settings: Settings, budget: float
) -> tuple[str, dict[str, float], str]:
    """The policy's decision from one fixed-budget interleaved run; medians; agreement note."""
    checked = preflight(model)
    assert checked.summary is not None
    accuracy = settings.accuracy
    input_sets = gather_input_sets(model, checked.summary, accuracy)
    directory = variant_dir(Path(settings.output_dir), Path(model.name), result.sha256)
    with tempfile.TemporaryDirectory(dir=directory) as scratch:
        prepared = prepare_model(model, Path(scratch))
        bench = Workbench(
            source=model,
            prepared=prepared,
            variant_directory=directory,
            input_sets=input_sets,
            thresholds=GateThresholds.from_settings(accuracy),
            benchmark_settings=settings.benchmark,
            threads=settings.benchmark.threads,
            ort_version=result.ort_version,
            provenance={"source_sha256": result.sha256},
        )
        specs = design_specs(prepared.preprocess)
        built = [
            build_variant(prepared.path, spec, directory, ort_version=result.ort_version, provenance={})
            for spec in specs
        ]
        gates = [
            bench.check_accuracy(spec, Path(v.output_path or ""))[0]
            for spec, v in zip(specs, built, strict=True)
        ]
    fixed = settings.benchmark.model_copy(update={"min_seconds": budget, "max_seconds": budget})
    timed = benchmark_interleaved(
        [
            Contender(None, model),
            *(Contender(spec, Path(v.output_path or "")) for spec, v in zip(specs, built, strict=True)),
        ],
        bench.benchmark_feed,
        fixed,
        threads=settings.benchmark.threads,
        step="long-run",
    )
    measurements = [
        CandidateMeasurement(spec, gate_passed=gate.passed, speedup=t.speedup, speedup_ci=t.speedup_ci)
        for spec, gate, t in zip(specs, gates, timed[1:], strict=True)
    ]
    decision = decide_design(measurements, margin=settings.benchmark.margin)
    medians = {
        "fp32": timed[0].latency.median_ms,
        **{s.name: t.latency.median_ms for s, t in zip(specs, timed[1:], strict=True)},
    }
    noisy = [
        m.spec.name
        for m in measurements
        if m.speedup_ci and classify_speed(m.speedup_ci, settings.benchmark.margin) is Speed.UNRESOLVED
    ]
    return (
        _label(decision.outcome, decision.selected),
        medians,
        ("noise: " + ",".join(noisy)) if noisy else "",
    )


def _label(outcome: Outcome, spec: VariantSpec | None) -> str:
    return f"{outcome.value}:{spec.name}" if spec else outcome.value


def engine_medians(result: EngineResult) -> dict[str, float]:
    medians: dict[str, float] = {}
    for bench in result.benchmarks:
        name = bench.spec.name if bench.spec else "fp32"
        medians.setdefault(name, bench.latency.median_ms)
    return medians


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=float, default=30.0, help="seconds of the long fixed-budget run")
    parser.add_argument("--output-dir", type=Path, default=None)
    args = parser.parse_args()
    output = args.output_dir or Path(tempfile.mkdtemp(prefix="dqd-bench-"))
    settings = load(overrides={"output_dir": str(output), "benchmark.threads": args.threads})
    host = detect_host()
    print(
        f"host {host.host_class} ({host.cpu_model}), onnxruntime {host.ort_version}, {args.threads} thread(s)"
    )
    header = (
        f"{'model':<13} {'decision':<18} {'sec':>5} {'fp32 ms':>8} {'u8u8 ms':>8} {'u8s8 ms':>8} "
        f"| {'long-run decision':<18} {'fp32':>7} {'u8u8':>7} {'u8s8':>7} agree"
    )
    print(header)
    for model in sorted(args.corpus.glob("*.onnx")):
        started = time.monotonic()
        result = process_model(model, settings, host=host)
        seconds = time.monotonic() - started
        mine = _label(result.outcome, result.selected)
        em = engine_medians(result)
        line = (
            f"{model.stem:<13} {mine:<18} {seconds:5.1f} {em.get('fp32', float('nan')):8.2f} "
            f"{em.get('u8u8', float('nan')):8.2f} {em.get('u8s8', float('nan')):8.2f} | "
        )
        if result.outcome in (Outcome.SKIPPED, Outcome.ERROR):
            print(line + f"{'(not timed)':<18} {'':>7} {'':>7} {'':>7} n/a")
            continue
        theirs, lm, note = long_run(model, result, settings, args.budget)
        agree = "yes" if theirs == mine else ("no (" + note + ")" if note else "NO")
        print(line + f"{theirs:<18} {lm['fp32']:7.2f} {lm['u8u8']:7.2f} {lm['u8s8']:7.2f} {agree}")


if __name__ == "__main__":
    main()
