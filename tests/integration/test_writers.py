"""Finding this host's writers of a file through the real /proc."""

from __future__ import annotations

from pathlib import Path

from dqd.daemon.writers import held_open_for_writing, writer_check


def test_a_file_open_for_writing_is_found_and_a_reader_is_not(tmp_path: Path) -> None:
    target, other = tmp_path / "m.onnx", tmp_path / "n.onnx"
    other.write_bytes(b"done")
    with target.open("wb") as writer:
        writer.write(b"half")
        writer.flush()
        assert held_open_for_writing(target)
        check = writer_check()
        assert check(target) and not check(other) and not check(tmp_path / "missing.onnx")
    with target.open("rb"):
        assert not held_open_for_writing(target)  # readers (our own hashing) do not count
    with target.open("r+b"):
        assert held_open_for_writing(target)
    assert not held_open_for_writing(target)
