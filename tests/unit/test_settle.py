"""Completion detection, with time and file sizes as plain arguments."""

from __future__ import annotations

from dqd.daemon.settle import SettleTracker, Stat


class FakeFiles:
    """Sizes and mtimes of imaginary files (the tracker's ``stat`` argument)."""

    def __init__(self) -> None:
        self.stats: dict[str, Stat] = {}

    def write(self, path: str, size: int, mtime: int) -> None:
        self.stats[path] = (size, mtime)

    def __call__(self, path: str) -> Stat | None:
        return self.stats.get(path)


def ready_paths(tracker: SettleTracker, now: float, files: FakeFiles) -> list[str]:
    return [r.rel_path for r in tracker.due(now, files)]


def test_close_after_write_is_ready_after_a_short_grace() -> None:
    tracker, files = SettleTracker(2.0, close_grace=0.25), FakeFiles()
    files.write("m.onnx", 10, 1)
    tracker.written("m.onnx", 0.0)
    assert ready_paths(tracker, 0.1, files) == []
    tracker.closed("m.onnx", 0.2)
    assert ready_paths(tracker, 0.3, files) == []  # an external-data file may be about to appear
    assert ready_paths(tracker, 0.45, files) == ["m.onnx"]
    assert len(tracker) == 0  # handed out once only
    assert ready_paths(tracker, 10.0, files) == []


def test_without_close_event_waits_for_size_and_mtime_to_settle() -> None:
    tracker, files = SettleTracker(2.0), FakeFiles()
    files.write("m.onnx", 10, 1)
    tracker.written("m.onnx", 0.0)
    assert ready_paths(tracker, 1.0, files) == []
    # Grows with no event at all (polling observer between polls, NFS).
    files.write("m.onnx", 20, 2)
    assert ready_paths(tracker, 1.9, files) == []
    assert ready_paths(tracker, 3.8, files) == []  # changed at 1.9: not settled until 3.9
    assert ready_paths(tracker, 3.9, files) == ["m.onnx"]


def test_a_write_after_close_reopens_the_file() -> None:
    tracker, files = SettleTracker(2.0), FakeFiles()
    files.write("m.onnx", 10, 1)
    tracker.closed("m.onnx", 0.0)
    tracker.written("m.onnx", 0.1)  # an appending writer opened it again
    assert ready_paths(tracker, 0.2, files) == []
    assert ready_paths(tracker, 2.1, files) == ["m.onnx"]


def test_size_change_after_close_cancels_the_close_but_earlier_growth_does_not() -> None:
    tracker, files = SettleTracker(2.0), FakeFiles()
    files.write("m.onnx", 10, 1)
    tracker.written("m.onnx", 0.0)
    assert ready_paths(tracker, 0.5, files) == []  # stat recorded as (10, 1)
    files.write("m.onnx", 20, 2)  # the rest of the write...
    tracker.closed("m.onnx", 0.6)  # ...then the close: the growth before it does not count
    assert ready_paths(tracker, 0.7, files) == []
    files.write("m.onnx", 30, 3)  # changed again after the close, and we missed the event
    assert ready_paths(tracker, 0.9, files) == []
    assert ready_paths(tracker, 2.8, files) == []
    assert ready_paths(tracker, 2.9, files) == ["m.onnx"]


def test_data_file_after_the_model_within_the_grace_holds_it_back() -> None:
    tracker, files = SettleTracker(2.0, close_grace=0.25), FakeFiles()
    files.write("x.onnx", 10, 1)
    files.write("x.onnx.data", 100, 1)
    tracker.closed("x.onnx", 0.0)
    tracker.written("x.onnx.data", 0.1, companion=True)
    assert ready_paths(tracker, 0.3, files) == []
    tracker.closed("x.onnx.data", 1.0, companion=True)
    assert ready_paths(tracker, 1.3, files) == ["x.onnx"]


def test_model_waits_for_its_external_data_file() -> None:
    tracker, files = SettleTracker(2.0), FakeFiles()
    files.write("a/x.onnx", 10, 1)
    files.write("a/x.onnx.data", 100, 1)
    tracker.written("a/x.onnx.data", 0.0, companion=True)
    tracker.closed("a/x.onnx", 0.1)
    assert ready_paths(tracker, 0.2, files) == []  # data file still being written
    tracker.closed("a/x.onnx.data", 0.5, companion=True)
    assert ready_paths(tracker, 0.6, files) == []
    assert ready_paths(tracker, 0.75, files) == ["a/x.onnx"]
    assert len(tracker) == 0


def test_companions_in_other_folders_do_not_block() -> None:
    tracker, files = SettleTracker(2.0), FakeFiles()
    files.write("a/x.onnx", 10, 1)
    files.write("b/y.onnx.data", 100, 1)
    tracker.written("b/y.onnx.data", 0.0, companion=True)
    tracker.closed("a/x.onnx", 0.1)
    assert ready_paths(tracker, 0.4, files) == ["a/x.onnx"]


def test_vanished_file_is_dropped() -> None:
    tracker, files = SettleTracker(0.5), FakeFiles()
    tracker.written("gone.onnx", 0.0)
    assert ready_paths(tracker, 5.0, files) == []
    assert len(tracker) == 0


def test_forget_and_latency_reference() -> None:
    tracker, files = SettleTracker(1.0), FakeFiles()
    files.write("m.onnx", 1, 1)
    tracker.written("m.onnx", 3.0)
    tracker.forget("m.onnx")
    assert ready_paths(tracker, 10.0, files) == []
    tracker.written("m.onnx", 20.0)
    tracker.written("m.onnx", 21.0)
    (ready,) = tracker.due(22.5, files)
    assert (ready.first_event, ready.last_change) == (20.0, 21.0)


def test_zero_settle_interval_means_ready_on_first_check() -> None:
    tracker, files = SettleTracker(0.0), FakeFiles()
    files.write("m.onnx", 1, 1)
    tracker.written("m.onnx", 0.0)
    assert ready_paths(tracker, 0.0, files) == ["m.onnx"]


def test_next_deadline_is_when_the_earliest_entry_could_be_complete() -> None:
    tracker = SettleTracker(2.0, close_grace=0.25)
    assert tracker.next_deadline() is None
    tracker.written("a.onnx", 1.0)
    tracker.closed("b.onnx", 1.5)
    assert tracker.next_deadline() == 1.75
    tracker.forget("b.onnx")
    assert tracker.next_deadline() == 3.0


def test_require_close_an_open_file_pausing_past_the_settle_time_is_not_complete() -> None:
    """Native observer: a slow copy's pause is not the end of the file (issue 9, scenario 1)."""
    tracker, files = SettleTracker(1.0, close_grace=0.25, require_close=True, stall_seconds=60), FakeFiles()
    for chunk in range(5):
        files.write("m.onnx", 10 * (chunk + 1), chunk)
        tracker.written("m.onnx", 3.0 * chunk)
        assert ready_paths(tracker, 3.0 * chunk + 2.9, files) == []  # paused 2.9 s, still open
    assert tracker.is_open("m.onnx") and (tracker.next_deadline() or 0) > 60
    tracker.closed("m.onnx", 13.0)
    assert not tracker.is_open("m.onnx")
    (ready,) = tracker.due(13.3, files)
    assert (ready.rel_path, ready.stat) == ("m.onnx", (50, 4))


def test_require_close_a_lost_close_event_ends_after_the_stall_time() -> None:
    tracker, files = SettleTracker(1.0, require_close=True, stall_seconds=60), FakeFiles()
    files.write("m.onnx", 10, 1)
    tracker.written("m.onnx", 0.0)
    assert ready_paths(tracker, 59.0, files) == []
    assert ready_paths(tracker, 60.0, files) == ["m.onnx"]


def test_require_close_a_create_alone_settles_by_quiet_time() -> None:
    """inotify reports a file moved in from outside the tree as created, with no close after it."""
    tracker, files = SettleTracker(1.0, require_close=True), FakeFiles()
    files.write("m.onnx", 10, 1)
    tracker.written("m.onnx", 0.0, data=False)
    assert not tracker.is_open("m.onnx")
    assert ready_paths(tracker, 1.0, files) == ["m.onnx"]


def test_a_file_noticed_by_a_scan_settles_by_quiet_time_unless_written_again() -> None:
    tracker, files = SettleTracker(1.0, require_close=True, stall_seconds=60), FakeFiles()
    files.write("old.onnx", 10, 1)
    files.write("busy.onnx", 10, 1)
    tracker.noticed("old.onnx", 0.0)
    tracker.noticed("busy.onnx", 0.0)
    tracker.written("busy.onnx", 0.5)  # events after the scan: a writer is at work
    tracker.noticed("busy.onnx", 0.6)  # the next scan does not reset what events told
    assert tracker.is_pending("busy.onnx") and tracker.is_open("busy.onnx")
    assert ready_paths(tracker, 1.0, files) == ["old.onnx"]
    assert ready_paths(tracker, 30.0, files) == []


def test_a_file_held_open_for_writing_is_kept_past_its_quiet_time() -> None:
    tracker, files = SettleTracker(1.0), FakeFiles()
    files.write("m.onnx", 10, 1)
    tracker.noticed("m.onnx", 0.0)
    writers = {"m.onnx"}
    assert [r.rel_path for r in tracker.due(1.0, files, writers.__contains__)] == []
    assert [r.rel_path for r in tracker.due(1.5, files, writers.__contains__)] == []  # asked again at 2.0
    writers.clear()
    assert [r.rel_path for r in tracker.due(2.0, files, writers.__contains__)] == ["m.onnx"]


def test_a_closed_file_is_not_asked_about_writers() -> None:
    tracker, files = SettleTracker(1.0, require_close=True), FakeFiles()
    files.write("m.onnx", 10, 1)
    tracker.closed("m.onnx", 0.0)
    # Another writer may have it open too, but the close is the signal; a new write makes a new version.
    assert [r.rel_path for r in tracker.due(0.3, files, lambda _rel: True)] == ["m.onnx"]
