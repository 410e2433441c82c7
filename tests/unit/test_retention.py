"""The pure retention rule: why a variant file stays, in order of precedence."""

from __future__ import annotations

from pathlib import PurePath

from dqd.retention import Kept, variant_verdict

OUT = PurePath("/srv/dqd-out")
FILE = OUT / "team" / "m" / "abc" / "u8u8-1.onnx"


def verdict(path: PurePath = FILE, **given: object) -> Kept | None:
    args: dict[str, object] = {
        "output_dir": OUT,
        "sources": frozenset(),
        "selected": frozenset(),
        "busy": False,
        "age_seconds": 8 * 86400.0,
        "keep_days": 7.0,
    }
    return variant_verdict(path, **{**args, **given})  # type: ignore[arg-type]


def test_an_old_unselected_idle_file_inside_output_dir_goes() -> None:
    assert verdict() is None
    assert verdict(keep_days=0.0, age_seconds=0.0) is None


def test_each_reason_to_keep() -> None:
    assert verdict(selected=frozenset({FILE})) is Kept.SELECTED
    assert verdict(busy=True) is Kept.BUSY
    assert verdict(age_seconds=6 * 86400.0) is Kept.RECENT
    assert verdict(PurePath("/srv/models/m.onnx")) is Kept.FOREIGN
    assert verdict(OUT) is Kept.FOREIGN
    assert verdict(PurePath("/srv/dqd-out-old/m.onnx")) is Kept.FOREIGN  # a sibling, not inside
    # output_dir set to the watched folder by mistake: a source model is never removed.
    assert verdict(sources=frozenset({FILE})) is Kept.FOREIGN


def test_foreign_wins_over_everything_and_selected_over_busy() -> None:
    assert (
        verdict(PurePath("/elsewhere/x.onnx"), selected=frozenset({PurePath("/elsewhere/x.onnx")}))
        is Kept.FOREIGN
    )
    assert verdict(selected=frozenset({FILE}), busy=True, age_seconds=0.0) is Kept.SELECTED
