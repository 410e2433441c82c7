"""One exception root; subclasses say what went wrong and carry the data to act on it.

The CLI maps them to exit codes: configuration/usage → 2, environment
unavailable → 3, no result → 1.
"""

from __future__ import annotations


class DqdError(Exception):
    """dqd failed."""

    exit_code = 1

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ConfigError(DqdError):
    """Invalid configuration."""

    exit_code = 2

    def __init__(self, key: str, value: object, allowed: str) -> None:
        self.key = key
        self.value = value
        self.allowed = allowed
        super().__init__(f"invalid configuration: {key} = {value!r}; allowed: {allowed}")


class UsageError(DqdError):
    """Invalid command-line usage."""

    exit_code = 2


class CatalogError(DqdError):
    """The catalog could not be reached or used."""

    exit_code = 3


class CatalogUnavailable(CatalogError):
    """The catalog database is unreachable (connection refused, locked, gone)."""


class SchemaMismatch(CatalogError):
    """The catalog schema is not the one this code expects."""

    def __init__(self, current: str | None, head: str, hint: str) -> None:
        self.current = current
        self.head = head
        super().__init__(f"catalog schema is at {current or 'nothing'}, code expects {head}: {hint}")


class NotFound(DqdError):
    """Nothing matched."""

    exit_code = 1


class EnvironmentUnavailable(DqdError):
    """A folder or service this command needs is not available."""

    exit_code = 3


class EnvironmentFailure(EnvironmentUnavailable):
    """Something the host provides failed (a lock, a folder, the disk, a package).

    Never a model's decision: ``dqd process`` exits 3 recording nothing, the
    daemon fails the job's attempt and retries it. ``setting`` names the key to fix.
    """

    def __init__(self, message: str, *, setting: str | None = None) -> None:
        self.setting = setting
        super().__init__(message)


class HostBusy(EnvironmentFailure):
    """Other processes used the CPU while a benchmark ran: its timings are not trusted.

    The daemon puts the job back to wait (the attempt is not counted); ``dqd
    process`` waits and tries again; nothing is decided from the run.
    """

    def __init__(self, message: str, *, load: float, source: str) -> None:
        self.load = load
        self.source = source
        super().__init__(message, setting="benchmark.max_foreign_load")


class ModelError(DqdError):
    """A model could not be processed.

    ``permanent`` errors (an invalid model) are not retried; transient ones
    (timeout, out of memory, catalog briefly down) are.
    """

    def __init__(self, message: str, *, path: str | None = None, permanent: bool = True) -> None:
        self.path = path
        self.permanent = permanent
        super().__init__(message)
