"""The CLI's output formats: table, JSON and CSV read back to what was printed."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from dqd.cli.output import (
    Column,
    Format,
    choose_format,
    emit,
    exact_cell,
    format_csv,
    format_json,
    format_table,
    human_cell,
    jsonable,
    parse_table,
)
from dqd.domain import Outcome
from dqd.errors import UsageError


@dataclass(frozen=True)
class Row:
    path: str
    outcome: Outcome
    speedup: float | None
    when: datetime
    reasons: tuple[str, ...]


ROWS = [
    Row(
        "bert/1/model.onnx",
        Outcome.QUANTIZED,
        1.6123456789,
        datetime(2026, 11, 1, 12, 30, tzinfo=UTC),
        ("fast",),
    ),
    Row('we"ird, name\nwith newline.onnx', Outcome.KEPT_FP32, None, datetime(2026, 11, 2, tzinfo=UTC), ()),
    Row("a  b/ümlaut.onnx", Outcome.SKIPPED, 0.5, datetime(2026, 11, 3, tzinfo=UTC), ("x", "y")),
]
COLUMNS = [
    Column("PATH", lambda r: r.path),
    Column("OUTCOME", lambda r: r.outcome),
    Column("SPEEDUP", lambda r: r.speedup),
    Column("DECIDED", lambda r: r.when),
]


def test_json_is_one_array_of_complete_objects() -> None:
    data = json.loads(format_json(ROWS))
    assert isinstance(data, list) and len(data) == 3
    assert data[0] == {
        "path": "bert/1/model.onnx",
        "outcome": "quantized",
        "speedup": 1.6123456789,
        "when": "2026-11-01T12:30:00Z",
        "reasons": ["fast"],
    }
    assert data[1]["path"] == ROWS[1].path  # newline and quotes survive
    assert data[1]["speedup"] is None


def test_csv_round_trips_exact_values() -> None:
    text = format_csv(ROWS, COLUMNS)
    read = list(csv.DictReader(io.StringIO(text)))
    assert [r["PATH"] for r in read] == [r.path for r in ROWS]
    assert read[0]["SPEEDUP"] == "1.6123456789"  # full precision, unlike the table
    assert read[1]["SPEEDUP"] == ""
    assert datetime.fromisoformat(read[0]["DECIDED"]) == ROWS[0].when
    assert [r["OUTCOME"] for r in read] == ["quantized", "kept_fp32", "skipped"]


def test_table_round_trips_through_its_columns() -> None:
    text = format_table(ROWS, COLUMNS)
    lines = text.splitlines()
    assert len(lines) == 4  # the newline inside a path must not add a row
    parsed = parse_table(text)
    assert [p["PATH"] for p in parsed] == [
        "bert/1/model.onnx",
        'we"ird, name with newline.onnx',
        "a  b/ümlaut.onnx",
    ]
    assert [p["SPEEDUP"] for p in parsed] == ["1.612", "-", "0.5"]
    assert parsed[0]["DECIDED"] == "2026-11-01 12:30"
    assert [p["OUTCOME"] for p in parsed] == ["quantized", "kept_fp32", "skipped"]


def test_emit_empty_table_says_none_but_machine_formats_stay_parseable() -> None:
    out = io.StringIO()
    emit([], COLUMNS, Format.TABLE, out)
    assert out.getvalue() == "(none)\n"
    out = io.StringIO()
    emit([], COLUMNS, Format.JSON, out)
    assert json.loads(out.getvalue()) == []
    out = io.StringIO()
    emit([], COLUMNS, Format.CSV, out)
    assert out.getvalue() == "PATH,OUTCOME,SPEEDUP,DECIDED\n"


def test_choose_format_rejects_both() -> None:
    assert choose_format(False, False) is Format.TABLE
    assert choose_format(True, False) is Format.JSON
    assert choose_format(False, True) is Format.CSV
    with pytest.raises(UsageError):
        choose_format(True, True)


def test_cells() -> None:
    assert human_cell(None) == "-"
    assert human_cell(["a", 1.23456]) == "a, 1.235"
    assert exact_cell(True) == "true"
    assert exact_cell({"b": 1, "a": (1, 2)}) == '{"a": [1, 2], "b": 1}'
    assert jsonable(float("nan")) is None
