"""Catalog-wide Prometheus gauges, read from the catalog at scrape time.

Queue depth and decisions by outcome belong to the catalog, not to one
process: every replica reports the same numbers, so they are computed when
scraped rather than counted in memory.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from dqd.catalog import Catalog
from dqd.errors import DqdError


class CatalogCollector(Collector):
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return []  # nothing to describe up front: registering must not query the catalog

    def collect(self) -> Iterable[GaugeMetricFamily]:
        up = GaugeMetricFamily("dqd_catalog_up", "1 when the catalog answered this scrape.")
        try:
            depth = self.catalog.queue_depth()
            outcomes = self.catalog.latest_outcome_counts()
            queue_ages, heartbeat_ages = self.catalog.fleet_ages()
        except DqdError:
            # A scrape must still succeed when the catalog is down: say so instead of failing.
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        queue = GaugeMetricFamily("dqd_queue_depth", "Jobs in the catalog by state.", labels=["state"])
        for state, count in sorted(depth.items()):
            queue.add_metric([state], count)
        yield queue
        decisions = GaugeMetricFamily(
            "dqd_decisions",
            "Model versions by the outcome of their latest decision, per host class.",
            labels=["host_class", "outcome"],
        )
        for (host_class, outcome), count in sorted(outcomes.items()):
            decisions.add_metric([host_class, outcome], count)
        yield decisions
        oldest = GaugeMetricFamily(
            "dqd_queue_oldest_age_seconds",
            "Seconds since the oldest queued job of each host class was queued (database clock).",
            labels=["host_class"],
        )
        for host_class, age in sorted(queue_ages.items()):
            oldest.add_metric([host_class], age)
        yield oldest
        heartbeats = GaugeMetricFamily(
            "dqd_host_heartbeat_age_seconds",
            "Seconds since each host's last heartbeat (database clock); a class whose every host is "
            "older than worker.host_ttl_seconds gets no new jobs.",
            labels=["host_class", "host_id"],
        )
        for (host_class, host_id), age in sorted(heartbeat_ages.items()):
            heartbeats.add_metric([host_class, host_id], age)
        yield heartbeats
