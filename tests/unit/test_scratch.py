"""dqd.scratch: what a stopped dqd process left is swept; what a live one or another host writes is not."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

from dqd.scratch import ABANDONED_SECONDS, publish_scratch_prefix, sweep, writer_tag
from dqd.scratchnames import BUILD_PREFIX, WORK_PREFIX


def test_only_what_a_gone_process_of_this_host_left_or_what_is_abandoned_is_removed(tmp_path: Path) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()  # its pid names no process now
    host = socket.gethostname()
    variant = tmp_path / "out" / "m" / "0123456789ab"
    variant.mkdir(parents=True)
    (variant / "u8u8-key.onnx").write_bytes(b"a variant")
    entries = {
        f"{WORK_PREFIX}{host}-{gone.pid}-abc": True,  # ours, its writer is gone
        f"{BUILD_PREFIX}{host}-{gone.pid}-abc": True,
        f"{WORK_PREFIX}{host}-{os.getpid()}-abc": False,  # a live writer's
        f"{BUILD_PREFIX}other-host-{gone.pid}-abc": False,  # another host's: it sweeps its own
        f"{WORK_PREFIX}x1y2z3": False,  # named before writers were: young, kept
        ".model.onnx.dqd-" + f"{host}-{gone.pid}-q7.tmp": True,  # a publish copy cut short
        ".notes.tmp": False,  # not dqd's
    }
    for name in entries:
        target = variant / name
        target.mkdir() if name.startswith((WORK_PREFIX, BUILD_PREFIX)) else target.write_bytes(b"")
    old = variant / f"{BUILD_PREFIX}other-host-{gone.pid}-old"
    old.mkdir()
    long_ago = time.time() - ABANDONED_SECONDS - 60
    os.utime(old, (long_ago, long_ago))  # whoever wrote it, no job lives this long

    removed = sweep([tmp_path / "out", tmp_path / "missing"])

    expected = {variant / name for name, gone_ in entries.items() if gone_} | {old}
    assert set(removed) == expected
    assert sorted(p.name for p in variant.iterdir()) == sorted(
        ["u8u8-key.onnx", *(name for name, gone_ in entries.items() if not gone_)]
    )


def test_scratch_names_carry_their_writer() -> None:
    tag = writer_tag()
    assert tag == f"{socket.gethostname()}-{os.getpid()}-"
    assert publish_scratch_prefix("m.onnx") == f".m.onnx.dqd-{tag}"
