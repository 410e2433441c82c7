"""The command line both golden recordings share: compare with the expected files, or ``--write``."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from pathlib import Path

Describe = Callable[[str, str], list[str]]  # (expected text, actual text) -> lines saying what changed


def write_or_compare(
    doc: str, expected: Path, record: Callable[[], Mapping[str, str]], describe: Describe | None = None
) -> None:
    """``name: unchanged|DIFFERENT`` per recorded output, or each file rewritten with ``--write``."""
    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--write", action="store_true", help="overwrite the expected outputs")
    args = parser.parse_args()
    expected.mkdir(parents=True, exist_ok=True)
    for name, text in record().items():
        target = expected / f"{name}.jsonl"
        if args.write:
            target.write_text(text)
            print(f"wrote {target} ({len(text)} bytes)")
            continue
        same = target.exists() and target.read_text() == text
        print(f"{name}: {'unchanged' if same else 'DIFFERENT'}")
        if not same and target.exists() and describe is not None:
            print("\n".join("  " + line for line in describe(target.read_text(), text)))
