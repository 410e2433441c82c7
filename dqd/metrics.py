"""Prometheus metrics updated in-process by the daemon and exposed by the API.

Catalog-wide figures (queue depth, decisions by outcome) are read from the
catalog at scrape time by the API; these are the ones only a running process knows.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

_DURATION_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)

OBSERVER_LAG = Histogram(
    "dqd_observer_lag_seconds",
    "Time from a file's last write to its job being queued.",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 30, 60),
)
JOBS_PROCESSED = Counter("dqd_jobs_processed_total", "Jobs finished by this process.", ["outcome"])
JOBS_FAILED = Counter("dqd_jobs_failed_total", "Job attempts that ended in an error.", ["permanent"])
QUANTIZE_SECONDS = Histogram(
    "dqd_quantize_seconds", "Time to quantize one variant.", buckets=_DURATION_BUCKETS
)
BENCHMARK_SECONDS = Histogram(
    "dqd_benchmark_seconds", "Time to benchmark one model.", buckets=_DURATION_BUCKETS
)
JOB_SECONDS = Histogram("dqd_job_seconds", "Time from claim to decision.", buckets=_DURATION_BUCKETS)
NOTIFICATIONS = Counter(
    "dqd_notifications_total",
    "Webhook calls made by this process: delivered, retry (will be tried again), failed (given up).",
    ["result"],
)
GC_BYTES_FREED = Counter(
    "dqd_gc_bytes_freed_total", "Bytes of variant and published files removed by retention in this process."
)
JOBS_DEFERRED = Counter(
    "dqd_jobs_deferred_total", "Jobs put back to wait because the host was busy during a benchmark."
)
