"""File names that are not valid UTF-8, as text: one reversible form for the catalog, one for people.

On Linux a file name is bytes. Python hands a name that is not valid UTF-8
(``caf\\xe9.onnx``, copied from a Latin-1 share) to dqd as a ``str`` holding
lone surrogates (``os.fsdecode``'s surrogateescape), which the OS accepts back
unchanged but which no database driver, JSON encoder or terminal takes. dqd
keeps such names exactly as Python gives them everywhere a file is touched,
and converts them only where text leaves the process:

* the catalog stores :func:`to_text` and reads back :func:`from_text`: every
  byte that is not UTF-8 becomes ``\\xNN`` (two lowercase hex digits) and a
  backslash becomes ``\\\\``; any other text, so every valid UTF-8 name
  without a backslash, is stored as it is;
* people and programs (CLI output, the HTTP API, the report) see
  :func:`for_display`: the same ``\\xNN`` for each such byte, backslashes left
  alone (Python's ``backslashreplace``);
* a name typed on the command line (``dqd show 'caf\\xe9.onnx'``) is read with
  :func:`from_text`, which takes the displayed form as well.

:func:`display_on` makes a text stream print the displayed form of whatever
it is given (the CLI's stdout and stderr), so no message naming such a file
can fail to print.
"""

from __future__ import annotations

import codecs
import io
import json
import os
import re
from pathlib import PurePath, PurePosixPath
from typing import Any, TextIO

_SURROGATES = re.compile("[\udc80-\udcff\\\\]")
_ESCAPES = re.compile(r"\\(\\|x[0-9a-f]{2})")


def to_text(name: str) -> str:
    """The catalog's form of ``name``: reversible by :func:`from_text`, valid UTF-8."""
    return _SURROGATES.sub(_escape, name)


def from_text(text: str) -> str:
    """``name`` back from :func:`to_text`'s form (or the displayed one): ``\\xNN`` with NN from 80 to
    ff is that byte, ``\\\\`` one backslash; any other backslash stays as it is."""
    return _ESCAPES.sub(_unescape, text)


def for_display(text: str) -> str:
    """``text`` with every byte that is not UTF-8 shown as ``\\xNN``: printable and JSON-safe."""
    if not _has_surrogates(text):
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def displayable(value: Any) -> Any:
    """``value`` (JSON-shaped: dicts, lists, strings...) with :func:`for_display` applied to every
    string, keys included; what is already displayable is returned as it is."""
    if isinstance(value, str):
        return for_display(value)
    if isinstance(value, dict):
        return {displayable(k): displayable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [displayable(v) for v in value]
    return value


NAME_MAX = 255  # bytes in one file name on Linux filesystems


def fits(path: PurePath) -> bool:
    """Whether ``path``'s last name is within ``NAME_MAX`` bytes: a companion named after a model at
    the limit (``<stem>.dqd.toml``) cannot exist, and asking the OS about it fails (ENAMETOOLONG)."""
    return len(os.fsencode(path.name)) <= NAME_MAX


def for_tools(name: str) -> str:
    """One file name (no ``/``) as tools that take UTF-8 paths can be given it: the displayed form,
    its backslashes as ``_`` (onnx reads a backslash as a folder separator), cut to ``NAME_MAX``
    bytes keeping its suffix. Identity for a UTF-8 name without a backslash that fits."""
    shown = for_display(name).replace("\\", "_")
    encoded = shown.encode("utf-8")
    if len(encoded) <= NAME_MAX:
        return shown
    suffix = shown[shown.rfind(".") :] if "." in shown[-16:] else ""
    return encoded[: NAME_MAX - len(suffix.encode("utf-8"))].decode("utf-8", "ignore") + suffix


def displayable_json(value: Any) -> str:
    """``value`` (JSON-shaped) as compact JSON text, names in their displayed form: the fallback of
    the fast serializers (pydantic-core), which refuse the lone surrogates of such a name."""
    return json.dumps(displayable(value), ensure_ascii=False, separators=(",", ":"))


DISPLAY_ERRORS = "dqd-display"  # a codec error handler: a lone surrogate from a name's byte -> \xNN


def _display_error(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    chunk = error.object[error.start : error.end]
    if not all("\udc80" <= c <= "\udcff" for c in chunk):
        raise error
    return "".join(f"\\x{ord(c) - 0xDC00:02x}" for c in chunk), error.end


codecs.register_error(DISPLAY_ERRORS, _display_error)


def display_on(stream: TextIO) -> None:
    """Make ``stream`` (a text file such as ``sys.stdout``) write a name's bytes that are not UTF-8
    as ``\\xNN`` instead of failing; streams that cannot be reconfigured are left alone."""
    if isinstance(stream, io.TextIOWrapper):
        stream.reconfigure(errors=DISPLAY_ERRORS)


def _has_surrogates(text: str) -> bool:
    return any("\udc80" <= c <= "\udcff" for c in text)


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    return "\\\\" if char == "\\" else f"\\x{ord(char) - 0xDC00:02x}"


def _unescape(match: re.Match[str]) -> str:
    escape = match.group(1)
    if escape == "\\":
        return "\\"
    byte = int(escape[1:], 16)
    return chr(0xDC00 + byte) if byte >= 0x80 else match.group(0)


def is_inside_root(rel: str) -> bool:
    """A path recorded relative to the watched folder (``dqd process`` records others absolute)."""
    path = PurePosixPath(rel)
    return not path.is_absolute() and ".." not in path.parts
