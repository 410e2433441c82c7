"""The whole flow for one model: preflight, prepare, measure candidates, decide.

:func:`process_model` never raises for a model's problems: it returns an
:class:`EngineResult` with ``outcome=error`` and reasons.  Everything that loads
the model runs in an isolated child process (:mod:`dqd.pipeline.isolate`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from dqd.domain import EngineResult, HostInfo, Outcome, SearchMode
from dqd.errors import ModelError
from dqd.modelfile import content_sha256
from dqd.pipeline.analyse import EngineRequest, analyse_model
from dqd.pipeline.environment import check_environment
from dqd.pipeline.isolate import IsolationError, run_isolated
from dqd.pipeline.plan import ModelPlan, resolve_plan
from dqd.pipeline.policy import PREFLIGHT_VERSION, policy_version_for
from dqd.records import DecisionDetails
from dqd.settings import Settings

logger = logging.getLogger(__name__)
ProgressCallback = Callable[[str], None]


def process_model(
    path: Path | str,
    settings: Settings,
    *,
    host: HostInfo,
    plan: ModelPlan | None = None,
    threads: int | None = None,
    model_root: Path | str | None = None,
    progress: ProgressCallback | None = None,
) -> EngineResult:
    """Quantize, check, benchmark and decide for ``path`` on this host; see the module docstring.

    ``plan`` is the model's plan as the caller resolved it (:func:`dqd.pipeline.plan.plan_for`);
    without one, the global settings and the matching ``[models."<glob>"]`` sections apply.
    """
    started = time.monotonic()
    path = Path(path)
    if plan is None:
        plan = resolve_plan(settings, None, _relative(path, model_root).as_posix())
    base = _identify(path, plan.search, host)
    settled = base if base.error is not None else _settled_by_plan(base, plan)
    if settled is not None:
        return replace(settled, seconds=time.monotonic() - started, plan_fingerprint=plan.fingerprint())
    request = _request(base, settings, host, plan, threads, model_root)
    # Before the child: a broken host must not read as the model's error.
    check_environment(request.host_lock, request.output_dir)
    try:
        result: EngineResult = run_isolated(
            analyse_model,
            request,
            timeout_seconds=settings.limits.timeout_seconds,
            memory_mb=settings.limits.memory_mb,
            progress=progress,
            label=path.name,
        )
    except IsolationError as exc:
        logger.warning(
            "processing %s failed: %s", path, exc, extra={"action": "model_error", "kind": exc.kind.value}
        )
        result = replace(
            base,
            reasons=(str(exc),),
            error=str(exc),
            permanent_error=exc.permanent,
            details=DecisionDetails(failure=exc.kind.value),
        )
    return replace(result, seconds=time.monotonic() - started, plan_fingerprint=plan.fingerprint())


def invalid_settings_result(
    path: Path | str, host: HostInfo, message: str, *, search: SearchMode | str
) -> EngineResult:
    """``error`` for a model whose per-model settings are invalid (a bad sidecar): nothing runs."""
    base = _identify(Path(path), SearchMode(search), host)
    return base if base.error is not None else replace(base, reasons=(message,), error=message)


def _request(
    base: EngineResult,
    settings: Settings,
    host: HostInfo,
    plan: ModelPlan,
    threads: int | None,
    model_root: Path | str | None,
) -> EngineRequest:
    path = Path(base.path)
    return EngineRequest(
        path=path.resolve(),
        relative_path=_relative(path, model_root),
        sha256=base.sha256,
        # Absolute: the catalog path must work from any cwd (`dqd best` in a deploy script).
        output_dir=Path(settings.output_dir).resolve(),
        search=plan.search,
        threads=threads or settings.benchmark.threads,
        accuracy=plan.accuracy,
        benchmark=settings.benchmark,
        ort_version=host.ort_version,
        source_size=base.source_size_bytes or 0,
        host_class=host.host_class,
        ladder=settings.ladder,
        nodes_to_exclude=plan.nodes_to_exclude,
        pin=plan.pin,
        host_lock=Path(settings.host_lock),
        external_data_bytes=int(settings.limits.external_data_mb * 1024**2),
        background_nice=settings.limits.background_nice,
    )


def _settled_by_plan(base: EngineResult, plan: ModelPlan) -> EngineResult | None:
    """``exclude`` and ``pin = "fp32"`` decide without loading the model; None: run the engine."""
    if plan.exclude:
        reason = "excluded by per-model settings (exclude = true)"
        return replace(
            base, outcome=Outcome.SKIPPED, reasons=(reason,), details=DecisionDetails(excluded=True)
        )
    if plan.pin_fp32:
        reason = "pinned to FP32 by per-model settings"
        return replace(
            base, outcome=Outcome.KEPT_FP32, reasons=(reason,), details=DecisionDetails(pinned="fp32")
        )
    return None


def _identify(path: Path, mode: SearchMode, host: HostInfo) -> EngineResult:
    """An ``error`` result holding the model's sha256 and size, or saying why it cannot be read.

    The sha256 is the model's with its external data (:func:`content_sha256`), as the
    daemon queued it: the worker compares the two to notice a model changed while queued.
    """
    base = EngineResult(
        path=str(path),
        sha256="",
        outcome=Outcome.ERROR,
        selected=None,
        speedup=None,
        speedup_ci=None,
        reasons=(),
        error=None,
        seconds=0.0,
        search_mode=mode,
        policy_version=policy_version_for(mode),
        ort_version=host.ort_version,
        preflight_version=PREFLIGHT_VERSION,
    )
    try:
        return replace(base, sha256=content_sha256(path), source_size_bytes=path.stat().st_size)
    except OSError as exc:
        return replace(base, reasons=(f"cannot read {path}: {exc.strerror or exc}",), error=str(exc))
    except ModelError as exc:  # an external-data file is missing
        return replace(base, reasons=(str(exc),), error=str(exc), permanent_error=exc.permanent)


def _relative(path: Path, model_root: Path | str | None) -> Path:
    if model_root is not None:
        try:
            return path.resolve().relative_to(Path(model_root).resolve())
        except ValueError:
            pass
    return Path(path.name)
