"""The read-only HTTP API inside the daemon (``dqd run --serve``).

Run in the daemon's own process, ``/metrics`` shows what only that process
knows (observer lag, job and quantize durations, jobs processed) beside the
catalog-wide gauges, and ``/healthz`` answers for the daemon itself.
"""

from __future__ import annotations

import logging
import threading
import time

import uvicorn

from dqd.catalog import Catalog
from dqd.errors import EnvironmentUnavailable
from dqd.settings import Settings

logger = logging.getLogger(__name__)


class ApiThread:
    def __init__(self, catalog: Catalog, settings: Settings) -> None:
        from dqd.api import create_app

        config = uvicorn.Config(
            create_app(catalog, settings),
            host=settings.api.host,
            port=settings.api.port,
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(config)
        # uvicorn installs signal handlers only on the main thread; the daemon keeps its own.
        self._thread = threading.Thread(target=self.server.run, name="dqd-api", daemon=True)

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started and self._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if not self.server.started:
            self.stop()
            raise EnvironmentUnavailable(
                f"the API could not listen on {self.server.config.host}:{self.server.config.port} "
                "(port in use? set api.port)"
            )
        logger.info(
            "serving the API on http://%s:%s",
            self.server.config.host,
            self.server.config.port,
            extra={"action": "api_started"},
        )

    def stop(self, timeout: float = 5.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
