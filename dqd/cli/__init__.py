"""The command line. Each area registers its commands from its own module."""

from __future__ import annotations

from dqd.cli.app import app, main

__all__ = ["app", "main"]
