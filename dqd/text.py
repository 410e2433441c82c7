"""Short, one-line renderings of errors for logs, reasons and catalog rows."""

from __future__ import annotations

import re

# Long enough for an onnxruntime or driver message, short enough for a table cell.
ERROR_TEXT_LIMIT = 300


def first_line(error: BaseException, *, limit: int | None = ERROR_TEXT_LIMIT, with_type: bool = False) -> str:
    """The first line of ``error``'s message, cut at ``limit`` characters (None: no cut).

    A message-less exception (a bare ``assert`` in a library) reads as its type
    name, never as an empty string; ``with_type`` prefixes the type name
    (``KeyError: 'x'``), for callers whose message alone would not say what failed.
    """
    text = str(error).strip()
    if not text:
        return type(error).__name__
    line = text.splitlines()[0]
    if limit is not None:
        line = line[:limit]
    return f"{type(error).__name__}: {line}" if with_type else line


# "[ONNXRuntimeError] : 1 : FAIL : " and C++ source locations: noise in a reason for people.
_ORT_NOISE = re.compile(r"^\[ONNXRuntimeError\] : \d+ : \w+ : |/onnxruntime_src/\S+ ")


def without_ort_noise(message: str) -> str:
    """onnxruntime's message without its status prefix and source locations."""
    return _ORT_NOISE.sub("", message)


def human_size(value: int | None) -> str:
    """A byte count as people read it: ``812 B``, ``2.7 KiB``, ``155.9 MiB``; ``-`` for None."""
    if value is None:
        return "-"
    if value < 1024:
        return f"{value} B"
    amount = value / 1024
    for unit in ("KiB", "MiB"):
        if amount < 1024:
            return f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{amount:.1f} GiB"
