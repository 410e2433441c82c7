"""Read-only HTTP API, Prometheus metrics and the report."""

from dqd.api.app import create_app

__all__ = ["create_app"]
