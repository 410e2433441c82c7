"""What the host must provide before the engine's child starts: packages, the host lock, the output folder.

Each failure is an :class:`EnvironmentFailure` naming the setting to fix, so
``dqd process`` exits 3 and the daemon retries the job, and none of them is
ever recorded as the model's decision. The child raises the same class for
what only shows while it works (a disk filling up).
"""

from __future__ import annotations

import errno
import functools
import importlib.util
import logging
import os
import sys
from pathlib import Path

from dqd.errors import EnvironmentFailure
from dqd.hostlock import check_lock, fallback_warning
from dqd.pipeline.quantize import OutputDirError

logger = logging.getLogger(__name__)
REQUIRED_PACKAGES = ("onnx", "onnxruntime")


def check_environment(host_lock: Path | None, output_dir: Path) -> None:
    """Raise :class:`EnvironmentFailure` for the first thing missing (see the module docstring)."""
    missing = [name for name in REQUIRED_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise EnvironmentFailure(
            f"{' and '.join(missing)} not installed for {sys.executable}: reinstall dqd there "
            "(pip install dqd) or run the dqd of an environment that has them"
        )
    if host_lock is not None:
        _warn_once_about(host_lock)
        check_lock(host_lock)
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(output_dir, exc) from exc
    if not os.access(output_dir, os.W_OK | os.X_OK):
        raise OutputDirError(output_dir, PermissionError(errno.EACCES, "permission denied"))


def missing_module(exc: ModuleNotFoundError) -> EnvironmentFailure:
    """A package the child could not import: a broken install, whichever model runs."""
    return EnvironmentFailure(f"{exc.name} cannot be imported for {sys.executable}: {exc}")


@functools.cache
def _warn_once_about(lock: Path) -> None:
    warning = fallback_warning(lock)
    if warning:
        logger.warning(warning, extra={"action": "host_lock_fallback", "setting": "host_lock"})
