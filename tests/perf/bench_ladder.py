"""Design vs thorough on the corpus, with regret against a long run: `python tests/perf/bench_ladder.py`.

Per corpus model, for ``design`` and ``thorough`` side by side: rungs tried,
time to decision, the selected variant.  Then every ladder candidate of this
host's plan is built, gated (over a stream for stateful models) and timed
together in one long fixed-budget interleaved run; the oracle is the fastest
gate-passing candidate of that run (FP32 itself when none is faster), and a
mode's regret is oracle speed-up / the long-run speed-up of what the mode
selected (1.0 for a kept FP32).  Target: regret <= 1.05 everywhere.
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
from dqd.pipeline.benchmark import Contender, benchmark_interleaved, create_session  # noqa: E402
from dqd.pipeline.engine import process_model  # noqa: E402
from dqd.pipeline.fit_inputs import fit_inputs  # noqa: E402
from dqd.pipeline.inputs import gather_input_sets  # noqa: E402
from dqd.pipeline.inspect import preflight  # noqa: E402
from dqd.pipeline.ladder import ModelTraits, plan_ladder  # noqa: E402
from dqd.pipeline.ladder_rules import rules_for  # noqa: E402
from dqd.pipeline.plan import resolve_plan  # noqa: E402
from dqd.pipeline.prepare import prepare_model  # noqa: E402
from dqd.pipeline.quantize import build_variant, variant_dir  # noqa: E402
from dqd.pipeline.rung_trial import check_accuracy  # noqa: E402
from dqd.pipeline.thorough import stream_evaluation  # noqa: E402
from dqd.pipeline.workbench import Workbench  # noqa: E402
from dqd.serialize import catalog_details_json  # noqa: E402
from dqd.settings import Settings, load  # noqa: E402

DEFAULT_CORPUS = REPO.parent / "shared" / "corpus"


def long_run(
    model: Path, sha256: str, settings: Settings, host_class: str, budget: float
) -> dict[str, float]:
    """Long-run speed-up of every gate-passing ladder candidate (by spec name); FP32 is 1.0."""
    checked = preflight(model, reach_subgraphs=True)
    assert checked.summary is not None
    summary, accuracy = checked.summary, settings.accuracy
    session = create_session(model, 1)
    input_sets, _ = fit_inputs(
        gather_input_sets(model, summary, accuracy), summary, accuracy, session, stateful=True
    )
    directory = variant_dir(Path(settings.output_dir), Path(model.name), sha256)
    passing: list[tuple[VariantSpec, Path]] = []
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
            ort_version=detect_host().ort_version,
            provenance={"source_sha256": sha256},
        )
        bench.reference_outputs()
        stream = stream_evaluation(bench, summary, accuracy)
        traits = ModelTraits(summary.quantizable_top_level, summary.quantizable_in_subgraphs)
        for rung in plan_ladder(traits, rules_for(host_class), prepared.preprocess).rungs:
            built = build_variant(
                prepared.path, rung.spec, directory, ort_version=bench.ort_version, provenance={}
            )
            if built.output_path is None:
                continue
            if next(
                a for a in check_accuracy(bench, stream, rung.spec, Path(built.output_path)) if a.decisive
            ).passed:
                passing.append((rung.spec, Path(built.output_path)))
        feed = bench.benchmark_feed
    speedups = {"fp32": 1.0}
    if not passing:
        return speedups
    fixed = settings.benchmark.model_copy(update={"min_seconds": budget, "max_seconds": budget})
    timed = benchmark_interleaved(
        [Contender(None, model), *(Contender(spec, path) for spec, path in passing)],
        feed,
        fixed,
        threads=settings.benchmark.threads,
        step="long-run",
    )
    for (spec, _), result in zip(passing, timed[1:], strict=True):
        speedups[spec.name] = result.speedup or 0.0
    return speedups


def describe(result: EngineResult, seconds: float) -> tuple[str, int, float]:
    label = result.selected.name if result.selected else result.outcome.value
    if result.search_mode == "thorough":
        rungs = sum(
            1
            for r in catalog_details_json(result.details).get("decision", {}).get("rungs", [])
            if r.get("status") != "skipped"
        )
    else:
        rungs = len(result.variants)
    return label, rungs, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--budget", type=float, default=60.0, help="seconds of the long fixed-budget run")
    parser.add_argument("--output-dir", type=Path, default=None)
    parser.add_argument("--reasons", action="store_true", help="also print the thorough decision's reasons")
    parser.add_argument("models", nargs="*", help="model stems (default: every corpus model)")
    args = parser.parse_args()
    output = args.output_dir or Path(tempfile.mkdtemp(prefix="dqd-ladder-bench-"))
    settings = load(overrides={"output_dir": str(output), "benchmark.threads": args.threads})
    host = detect_host()
    rules = rules_for(host.host_class)
    print(
        f"host {host.host_class} ({host.cpu_model}), rules {rules.name}, onnxruntime {host.ort_version}, "
        f"{args.threads} thread(s), long run {args.budget:.0f} s"
    )
    print(
        f"{'model':<12} {'mode':<8} {'rungs':>5} {'sec':>6} {'selected':<22} {'speedup':>7} "
        f"{'long-run':>8} {'oracle':<22} {'regret':>6}"
    )
    for model in sorted(args.corpus.glob("*.onnx")):
        if args.models and model.stem not in args.models:
            continue
        runs = {}
        for mode in ("design", "thorough"):
            started = time.monotonic()
            plan = resolve_plan(settings, None, model.name, search_flag=mode)
            result = process_model(model, settings, host=host, plan=plan, model_root=args.corpus)
            runs[mode] = (result, time.monotonic() - started)
        result = runs["thorough"][0]
        if result.outcome in (Outcome.SKIPPED, Outcome.ERROR) and runs["design"][0].outcome in (
            Outcome.SKIPPED,
            Outcome.ERROR,
        ):
            print(f"{model.stem:<12} {'both':<8} {'-':>5} {'':>6} {result.outcome.value:<22}")
            continue
        speedups = long_run(model, result.sha256, settings, host.host_class, args.budget)
        oracle = max(speedups, key=lambda name: speedups[name])
        for mode, (res, seconds) in runs.items():
            label, rungs, secs = describe(res, seconds)
            chosen = res.selected.name if res.selected else "fp32"
            achieved = speedups.get(chosen, 1.0 if chosen == "fp32" else float("nan"))
            regret = speedups[oracle] / achieved if achieved == achieved and achieved > 0 else float("nan")
            measured = f"{res.speedup:.2f}" if res.speedup else "-"
            print(
                f"{model.stem:<12} {mode:<8} {rungs:>5} {secs:6.1f} {label:<22} {measured:>7} "
                f"{achieved:8.2f} {oracle + f' {speedups[oracle]:.2f}':<22} {regret:6.3f}"
            )
        if args.reasons:
            print("\n".join(f"    {line}" for line in result.reasons))


if __name__ == "__main__":
    main()
