"""File names that are not valid UTF-8: the catalog's reversible form and the displayed one."""

from __future__ import annotations

import json
import os

from hypothesis import given
from hypothesis import strategies as st

from dqd.pathtext import NAME_MAX, displayable, for_display, for_tools, from_text, to_text

LATIN1 = os.fsdecode(b"caf\xe9.onnx")  # what os.listdir gives for a Latin-1 name


def test_a_latin1_name_is_stored_and_shown_with_its_byte_escaped() -> None:
    assert to_text(LATIN1) == "caf\\xe9.onnx" == for_display(LATIN1)
    assert from_text("caf\\xe9.onnx") == LATIN1
    assert os.fsencode(from_text(to_text(LATIN1))) == b"caf\xe9.onnx"


def test_valid_names_are_stored_as_they_are_and_backslashes_only_doubled() -> None:
    assert to_text("models/café/bert.onnx") == "models/café/bert.onnx"
    assert to_text("a\\x41.onnx") == "a\\\\x41.onnx" and from_text("a\\\\x41.onnx") == "a\\x41.onnx"
    # The displayed form of a valid name with a backslash reads back as itself too.
    assert from_text(for_display("a\\b.onnx")) == "a\\b.onnx" and from_text("a\\x41") == "a\\x41"


@given(st.lists(st.sampled_from([b"a", b"/", b"\\", b"x", b"e9", b"\xe9", b"\xff", b"\x80", "é".encode()])))
def test_every_byte_name_survives_the_catalog_and_displays_as_valid_utf8(parts: list[bytes]) -> None:
    name = os.fsdecode(b"".join(parts))
    stored = to_text(name)
    stored.encode("utf-8")  # no surrogates left: any driver takes it
    assert from_text(stored) == name
    for_display(name).encode("utf-8")


def test_json_shaped_values_become_displayable_keys_included() -> None:
    value = {"path": LATIN1, LATIN1: [LATIN1, 1, None], "n": 2.5}
    shown = displayable(value)
    assert shown == {"path": "caf\\xe9.onnx", "caf\\xe9.onnx": ["caf\\xe9.onnx", 1, None], "n": 2.5}
    json.dumps(shown, ensure_ascii=False).encode("utf-8")


def test_names_for_tools_are_utf8_without_backslashes_and_fit_the_file_name_limit() -> None:
    assert for_tools("bert.onnx") == "bert.onnx" and for_tools("café.onnx") == "café.onnx"
    assert for_tools(os.fsdecode(b"a\\b\xff.onnx")) == "a_b_xff.onnx"  # onnx reads '\' as a separator
    long = os.fsdecode(b"\xe9" * 200 + b".onnx")  # 205 bytes on disk, 805 once displayed
    fitted = for_tools(long)
    assert len(fitted.encode()) <= NAME_MAX and fitted.endswith(".onnx") and fitted.startswith("_xe9_xe9")


@given(st.lists(st.sampled_from([b"a", b".", b"\\", b"\xe9", "é".encode()]), max_size=300))
def test_every_name_for_tools_encodes_and_fits(parts: list[bytes]) -> None:
    fitted = for_tools(os.fsdecode(b"".join(parts)))
    assert len(fitted.encode("utf-8")) <= NAME_MAX and "\\" not in fitted
