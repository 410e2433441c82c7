"""A running job's stages: logged with their durations, and written to the job for ``dqd status``.

The engine reports progress as sentences for people (``dqd process`` prints
them); :func:`stage_name` turns each into the short stage name the daemon
logs and stores (``preflight``, ``pre-process``, ``quantize u8u8``,
``gate u8u8``, ``benchmark u8u8``). Storing goes through the job's lease
keeper, whose thread does the catalog write, so a slow or unreachable
catalog never holds up the engine's watchdog, and never fails the job.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

logger = logging.getLogger(__name__)

_RUNG = re.compile(r"^(rung \d+): (.*)$")
_PATTERNS = (
    (re.compile(r"^preflight$"), "preflight"),
    (re.compile(r"^pre-processing$"), "pre-process"),
    (re.compile(r"^running FP32 on the inputs$"), "reference FP32"),
    (re.compile(r"^quantizing (\S+)$"), "quantize {0}"),
    (re.compile(r"^checking accuracy of (\S+)$"), "gate {0}"),
    (re.compile(r"^benchmarking (\S+) against FP32$"), "benchmark {0}"),
    (re.compile(r"^playoff: "), "playoff"),
)


def stage_name(message: str) -> str:
    """The stage an engine progress message starts (the message itself when it is not one we know)."""
    rung = _RUNG.match(message)
    if rung:
        return f"{rung.group(1)}: {stage_name(rung.group(2))}"
    for pattern, name in _PATTERNS:
        found = pattern.match(message)
        if found:
            return name.format(*found.groups())
    return message


class StageLog:
    """Receives the engine's progress for one job: logs each stage's duration, stores the current one."""

    def __init__(
        self,
        job_id: int,
        store: Callable[[str, datetime], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job_id = job_id
        self.store = store
        self.clock = clock
        self.current: str | None = None
        self.started = 0.0
        self.durations: list[tuple[str, float]] = []

    def report(self, message: str) -> None:
        stage = stage_name(message)
        if stage == self.current:
            return
        self._close()
        self.current, self.started = stage, self.clock()
        self.store(stage, datetime.now(UTC))

    def finish(self) -> None:
        self._close()
        self.current = None

    def _close(self) -> None:
        if self.current is None:
            return
        seconds = self.clock() - self.started
        self.durations.append((self.current, seconds))
        logger.info(
            "job %s: %s took %.1f s",
            self.job_id,
            self.current,
            seconds,
            extra={
                "action": "job_stage",
                "job_id": self.job_id,
                "stage": self.current,
                "stage_seconds": round(seconds, 3),
            },
        )
