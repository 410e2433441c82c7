"""dqd.text.first_line: the one rendering of an error on one line."""

from __future__ import annotations

from dqd.text import ERROR_TEXT_LIMIT, first_line


def test_first_line_is_the_first_stripped_line() -> None:
    assert first_line(ValueError("\n  bad shape\nTraceback follows\n")) == "bad shape"


def test_an_empty_message_reads_as_the_type_name() -> None:
    assert first_line(AssertionError()) == "AssertionError"
    assert first_line(KeyError("  ")) == "'  '"  # a KeyError's str() quotes its key: not empty
    assert first_line(RuntimeError("   \n ")) == "RuntimeError"
    assert first_line(AssertionError(), with_type=True) == "AssertionError"


def test_the_line_is_cut_at_the_limit() -> None:
    long = "x" * (ERROR_TEXT_LIMIT + 50)
    assert first_line(ValueError(long)) == "x" * ERROR_TEXT_LIMIT
    assert first_line(ValueError(long), limit=10) == "x" * 10
    assert first_line(ValueError(long), limit=None) == long


def test_with_type_prefixes_the_type_name_and_cuts_only_the_message() -> None:
    assert first_line(KeyError("x"), with_type=True) == "KeyError: 'x'"
    assert first_line(ValueError("abcdef\nmore"), limit=3, with_type=True) == "ValueError: abc"
