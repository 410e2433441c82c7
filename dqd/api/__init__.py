"""Read-only HTTP API and report."""
