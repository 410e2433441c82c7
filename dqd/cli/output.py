"""Output formats shared by the CLI's list commands: a readable table, ``--json``, ``--csv``.

``--json`` prints the complete objects as one JSON array (machines want every
field, nested); the table and CSV print the same flat columns, the table
humanized for people, the CSV exact for spreadsheets and scripts.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum, StrEnum
from typing import IO, Any

from pydantic_core import PydanticSerializationError, to_json, to_jsonable_python

from dqd.errors import UsageError
from dqd.pathtext import displayable_json, for_display


class Format(StrEnum):
    TABLE = "table"
    JSON = "json"
    CSV = "csv"


def choose_format(as_json: bool, as_csv: bool) -> Format:
    if as_json and as_csv:
        raise UsageError("--json and --csv are exclusive: pick one")
    return Format.JSON if as_json else Format.CSV if as_csv else Format.TABLE


@dataclass(frozen=True)
class Column:
    """A flat column: ``get`` extracts the raw value, ``show`` humanizes it for the table."""

    header: str
    get: Callable[[Any], Any]
    show: Callable[[Any], str] | None = None


def jsonable(value: Any) -> Any:
    """Dataclasses, enums, datetimes, tuples and mappings as plain JSON types (NaN → null)."""
    return to_jsonable_python(value, inf_nan_mode="null")


def exact_cell(value: Any) -> str:
    """A CSV cell: nothing lost (full float precision, ISO times, JSON for nested values)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str | int | float):
        return str(value)
    return json.dumps(jsonable(value), sort_keys=True)


def human_cell(value: Any) -> str:
    """A table cell: short, single-line."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    if isinstance(value, list | tuple):
        return ", ".join(human_cell(v) for v in value) or "-"
    text = exact_cell(value)
    # Paths are user input: a newline or tab in one must not break the table's rows.
    return " ".join(text.split()) if any(c in text for c in "\n\r\t") else text


def table_cells(items: Iterable[Any], columns: Sequence[Column]) -> list[list[str]]:
    return [[(col.show or human_cell)(col.get(item)) for col in columns] for item in items]


def format_table(items: Iterable[Any], columns: Sequence[Column]) -> str:
    """Left-aligned columns separated by two spaces, header first."""
    rows = table_cells(items, columns)
    headers = [col.header for col in columns]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines) + "\n"


def parse_table(text: str) -> list[dict[str, str]]:
    """Read :func:`format_table` output back (tests, and scripts that screen-scrape)."""
    lines = text.splitlines()
    if not lines:
        return []
    header = lines[0]
    starts = [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 2 : i] == "  ")]
    names = [header[s:e].strip() for s, e in zip(starts, [*starts[1:], None], strict=True)]
    return [
        {name: line[s:e].strip() for name, s, e in zip(names, starts, [*starts[1:], None], strict=True)}
        for line in lines[1:]
    ]


def format_csv(items: Iterable[Any], columns: Sequence[Column]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([col.header for col in columns])
    for item in items:
        writer.writerow([exact_cell(col.get(item)) for col in columns])
    return buffer.getvalue()


def format_json(items: Iterable[Any]) -> str:
    listed = list(items)
    try:
        # pydantic-core serializes dataclasses natively: 7x faster than json.dumps(jsonable(...)) here.
        return to_json(listed, inf_nan_mode="null").decode() + "\n"
    except PydanticSerializationError:  # a file name that is not UTF-8: shown as dqd.pathtext says
        return displayable_json(jsonable(listed)) + "\n"


def emit(items: Sequence[Any], columns: Sequence[Column], fmt: Format, stream: IO[str] | None = None) -> None:
    """Print ``items`` in ``fmt``; a table with no rows says so instead of printing a bare header.

    File names that are not UTF-8 print in dqd.pathtext's displayed form (``caf\\xe9.onnx``),
    which the commands that take a model accept back.
    """
    out = stream or sys.stdout
    if fmt is Format.JSON:
        out.write(format_json(items))
    elif fmt is Format.CSV:
        out.write(for_display(format_csv(items, columns)))
    elif items:
        out.write(for_display(format_table(items, columns)))
    else:
        out.write("(none)\n")
