"""Measure one candidate end to end: build it, gate it on every input set, time it against FP32.

A :class:`Workbench` holds what every candidate of one model shares (the
prepared model, the input sets, FP32's reference outputs), so a search (the
design two-step, or a ladder) is a loop over :meth:`Workbench.measure`.
Runs inside the isolated child process.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any

from dqd.choice import headline_accuracy
from dqd.domain import AccuracyResult, BenchmarkResult, VariantResult, VariantSpec
from dqd.errors import EnvironmentFailure, ModelError
from dqd.hostlock import host_lock
from dqd.pipeline.accuracy import GateThresholds, compare_outputs, gate
from dqd.pipeline.benchmark import Contender, benchmark_interleaved, create_session
from dqd.pipeline.decoder_run import DecoderEvaluation, judge_variant
from dqd.pipeline.inputs import InputSet
from dqd.pipeline.niced import run_niced
from dqd.pipeline.policy import CandidateMeasurement
from dqd.pipeline.prepare import PreparedModel
from dqd.pipeline.quantize import build_variant
from dqd.settings import BenchmarkSettings
from dqd.text import first_line

logger = logging.getLogger(__name__)
Outputs = list[list[Any]]  # per feed, the model's outputs in order


def step_name(step: str, label: str) -> str:
    """A benchmark's recorded step: the comparison (``u8u8``, ``ladder:playoff``) and the timing
    feed's label when a model has several (a decoder's ``decode@128``)."""
    return f"{step}:{label}" if label else step


@dataclass
class CandidateRun:
    """Everything one candidate's run produced: its file, accuracy checks and timings for the
    catalog, and the measurement the policy judges (None until the run got that far)."""

    variant: VariantResult
    accuracy: list[AccuracyResult] = field(default_factory=list)
    benchmarks: list[BenchmarkResult] = field(default_factory=list)
    measurement: CandidateMeasurement | None = None


@dataclass
class Workbench:
    source: Path
    prepared: PreparedModel
    variant_directory: Path
    input_sets: Sequence[InputSet]  # the deciding set first
    thresholds: GateThresholds
    benchmark_settings: BenchmarkSettings
    threads: int
    ort_version: str
    provenance: dict[str, str]
    report: Callable[[str], None] = lambda _message: None
    nodes_to_exclude: tuple[str, ...] = ()  # per-model settings: every quantized candidate keeps them FP32
    lock_path: Path | None = None  # settings.host_lock (None: DQD_HOST_LOCK or the default)
    decoder: DecoderEvaluation | None = None  # a KV-cache decoder: judged over a generation, timed per step
    background_nice: int = 0  # > 0: building and gating in a niced leaf process (dqd.pipeline.niced)
    _references: dict[int, Outputs] = field(default_factory=dict)
    _fp32_session: Any = None
    _output_names: list[str] | None = None

    @contextmanager
    def locked(self, *, exclusive: bool) -> Iterator[None]:
        """The host lock (dqd.hostlock): exclusive while timing, shared for other heavy work."""
        with host_lock(exclusive, self.lock_path):
            yield

    def fp32_session(self) -> Any:
        if self._fp32_session is None:
            self._fp32_session = create_session(self.source, self.threads)
        return self._fp32_session

    @property
    def benchmark_feed(self) -> dict[str, Any]:
        """The feed whose timings decide (a decoder's: :attr:`DecoderEvaluation.timing`'s first)."""
        return self.timing_feeds()[0][1]

    def timing_feeds(self) -> list[tuple[str, dict[str, Any]]]:
        """(step label, feed) to time each candidate on, the deciding one first."""
        if self.decoder is not None:
            return [(t.step, dict(t.feed)) for t in self.decoder.timing]
        return [("", dict(self.input_sets[0].feeds[0]))]

    def time_against_fp32(
        self, contenders: Sequence[Contender], *, step: str
    ) -> tuple[list[BenchmarkResult], list[BenchmarkResult]]:
        """``contenders`` (FP32 first) timed on every timing feed: (the deciding feed's results, all).

        The deciding feed is timed last, so that its timings are each variant's last recorded
        benchmark: what the catalog reads as a variant's final measurement (the report's plot).
        Call under the exclusive host lock.
        """
        deciding: list[BenchmarkResult] = []
        everything: list[BenchmarkResult] = []
        for label, feed in reversed(self.timing_feeds()):
            deciding = self._time_on(contenders, feed, step_name(step, label))
            everything.extend(deciding)
        return deciding, everything

    def time_informative(
        self, contenders: Sequence[Contender], *, step: str, sessions: Mapping[Path, Any] | None = None
    ) -> list[BenchmarkResult]:
        """``contenders`` timed on the feeds that do not decide (a decoder's prompt step), for the record,
        on the open ``sessions`` lent by path.

        Record them before the deciding feed's timings (see :meth:`time_against_fp32`).
        Call under the exclusive host lock.
        """
        timed: list[BenchmarkResult] = []
        for label, feed in reversed(self.timing_feeds()[1:]):
            timed.extend(self._time_on(contenders, feed, step_name(step, label), sessions))
        return timed

    def _time_on(
        self,
        contenders: Sequence[Contender],
        feed: dict[str, Any],
        step: str,
        sessions: Mapping[Path, Any] | None = None,
    ) -> list[BenchmarkResult]:
        settings = self.benchmark_settings
        return benchmark_interleaved(
            contenders, feed, settings, threads=self.threads, step=step, sessions=sessions
        )

    def reference_outputs(self) -> list[Outputs]:
        """FP32's outputs on every input set; a failure here is the model's (or the inputs') fault.

        Kept once computed: a released FP32 session (see :meth:`release_fp32_session`) is not reopened.
        """
        results = []
        for index, inputs in enumerate(self.input_sets):
            if index not in self._references:
                session = self.fp32_session()
                try:
                    self._references[index] = [session.run(None, feed) for feed in inputs.feeds]
                except Exception as exc:
                    raise ModelError(
                        f"the FP32 model fails on its {inputs.source.value} inputs ({inputs.description}): "
                        f"{first_line(exc)}; provide a <stem>.samples.npz beside the model or set "
                        "accuracy.input_shapes",
                        path=str(self.source),
                    ) from exc
            results.append(self._references[index])
        return results

    def output_names(self) -> list[str]:
        if self._output_names is None:
            self._output_names = [o.name for o in self.fp32_session().get_outputs()]
        return self._output_names

    def release_fp32_session(self) -> None:
        """Close FP32's session once what the checks need from it is kept (its outputs, their names).

        A large model's quantization (onnxruntime's quantizer holds the FP32 weights and the
        quantized ones at once) must not also sit beside an open FP32 session; a benchmark
        opens its own, and a later caller reopens it on demand.
        """
        self.reference_outputs()
        self.output_names()
        self._fp32_session = None

    def tailor(self, spec: VariantSpec) -> VariantSpec:
        """``spec`` as built for this model: its pre-processing path and the per-model nodes_to_exclude.

        Every search's specs pass through here (:meth:`measure`; the ladder's
        plan), so the file key and the catalog record say what was left in FP32.
        """
        if spec.weight_type is None:  # the pre-processed FP32: nothing is quantized, nothing to exclude
            return replace(spec, preprocess=self.prepared.preprocess)
        nodes = tuple(sorted({*spec.nodes_to_exclude, *self.nodes_to_exclude}))
        return replace(spec, nodes_to_exclude=nodes, preprocess=self.prepared.preprocess)

    def build(self, spec: VariantSpec) -> VariantResult:
        """Quantize an already tailored ``spec`` (or reuse its file) under the shared host lock.

        Shared: other dqd work may run beside this, but no benchmark (see dqd.hostlock).
        """
        build = partial(
            build_variant,
            self.prepared.path,
            spec,
            self.variant_directory,
            ort_version=self.ort_version,
            provenance=self.provenance,
            large=self.prepared.large,
        )
        if self.prepared.large:
            self.release_fp32_session()
        with self.locked(exclusive=False):
            return run_niced(build, nice=self.background_nice)

    def measure(self, spec: VariantSpec, *, step: str) -> CandidateRun:
        """Build ``spec`` (tailored), gate it on every input set (the first decides), time it against FP32."""
        spec = self.tailor(spec)
        self.report(f"quantizing {spec.name}")
        measured = CandidateRun(self.build(spec))
        variant = measured.variant
        if variant.error is not None or variant.output_path is None:
            measured.measurement = CandidateMeasurement(
                spec, quantize_error=variant.error or "no output file"
            )
            return measured
        path = Path(variant.output_path)
        self.report(f"checking accuracy of {spec.name}")
        with self.locked(exclusive=False):
            measured.accuracy = self.check_accuracy(spec, path)
        deciding_check = next(a for a in measured.accuracy if a.decisive)
        self.report(f"benchmarking {spec.name} against FP32")
        benchmark_error = None
        deciding: list[BenchmarkResult] = []
        try:
            # Exclusive: while timings run, no other dqd work on this host disturbs them.
            with self.locked(exclusive=True):
                contenders = [Contender(None, self.source), Contender(spec, path)]
                deciding, measured.benchmarks = self.time_against_fp32(contenders, step=step)
        except EnvironmentFailure:
            raise  # the host lock, not the variant
        except Exception as exc:  # onnxruntime refusing the variant is a result, not a crash
            logger.debug("benchmark of %s failed", spec.name, exc_info=True)
            benchmark_error = first_line(exc)
        timed = deciding[1] if deciding else None
        metric, value = headline_accuracy(deciding_check.metrics)
        measured.measurement = CandidateMeasurement(
            spec,
            gate_passed=deciding_check.passed,
            gate_reason=deciding_check.reason,
            gate_source=deciding_check.input_source,
            speedup=timed.speedup if timed else None,
            speedup_ci=timed.speedup_ci if timed else None,
            benchmark_error=benchmark_error,
            accuracy_metric=metric,
            accuracy=value,
            size_bytes=variant.size_bytes,
        )
        return measured

    def check_accuracy(self, spec: VariantSpec, path: Path, session: Any = None) -> list[AccuracyResult]:
        """Gate the variant at ``path`` on every input set (the first decides); ``session``: one already
        open on it, used when the check runs here (a niced leaf opens its own: sessions do not fork)."""
        references = self.reference_outputs()  # FP32's, here: cached for every later check
        names = self.output_names()
        if self.background_nice > 0:
            check = partial(self._gate_outputs, spec, path, None, references, names)
            return run_niced(check, nice=self.background_nice)
        return self._gate_outputs(spec, path, session, references, names)

    def _gate_outputs(
        self, spec: VariantSpec, path: Path, session: Any, references: list[Outputs], names: list[str]
    ) -> list[AccuracyResult]:
        try:
            session = session if session is not None else create_session(path, self.threads)
        except Exception as exc:
            reason = f"onnxruntime cannot load the variant: {first_line(exc)}"
            return [
                AccuracyResult(spec, s.source, {}, False, reason, i == 0)
                for i, s in enumerate(self.input_sets)
            ]
        results = []
        if self.decoder is not None:  # the generation decides; the per-call checks inform
            results.append(judge_variant(self.decoder, session, spec, self.thresholds))
        for index, (inputs, reference) in enumerate(zip(self.input_sets, references, strict=True)):
            try:
                candidate = [session.run(None, feed) for feed in inputs.feeds]
            except Exception as exc:
                results.append(
                    AccuracyResult(
                        spec,
                        inputs.source,
                        {},
                        False,
                        f"variant fails to run: {first_line(exc)}",
                        index == 0 and self.decoder is None,
                    )
                )
                continue
            metrics = compare_outputs(names, reference, candidate)
            passed, reason = gate(metrics, self.thresholds)
            decisive = index == 0 and self.decoder is None
            results.append(AccuracyResult(spec, inputs.source, metrics, passed, reason, decisive=decisive))
        return results
