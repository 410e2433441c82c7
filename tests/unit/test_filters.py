"""Which paths are models, companions, ignored or refused."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dqd.daemon.filters import Kind, PathFilter
from dqd.scratchnames import BUILD_PREFIX, PARTIAL_SUFFIXES, PREPARE_PREFIX, TMP_SUFFIX, WORK_PREFIX
from dqd.settings import WatchSettings


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    root.mkdir()
    return root


def make_filter(root: Path, skip: tuple[Path, ...] = ()) -> PathFilter:
    defaults = WatchSettings()
    return PathFilter(root, defaults.include, defaults.exclude, skip)


@pytest.mark.parametrize(
    ("rel", "kind"),
    [
        ("a.onnx", Kind.MODEL),
        ("repo/bert/1/model.onnx", Kind.MODEL),
        ("repo/bert/config.pbtxt", Kind.COMPANION),
        ("a.onnx.data", Kind.COMPANION),
        ("a.dqd.toml", Kind.COMPANION),
        (".hidden.onnx", Kind.IGNORED),
        (".git/objects/x.onnx", Kind.IGNORED),
        ("a.onnx.tmp", Kind.IGNORED),
        ("a.onnx.part", Kind.IGNORED),
        ("a.onnx.partial", Kind.IGNORED),
        ("a.onnx.crdownload", Kind.IGNORED),
        ("A.ONNX", Kind.COMPANION),  # globs are case-sensitive, like the filesystem
    ],
)
def test_default_rules(tree: Path, rel: str, kind: Kind) -> None:
    verdict = make_filter(tree).classify(tree / rel, check_links=False)
    assert verdict.kind is kind
    assert verdict.rel_path == rel


def test_outside_root_is_ignored(tree: Path) -> None:
    verdict = make_filter(tree).classify(tree.parent / "x.onnx")
    assert verdict.kind is Kind.IGNORED and verdict.rel_path is None


def test_output_and_publish_dirs_inside_tree_are_ignored(tree: Path) -> None:
    path_filter = make_filter(tree, (tree / "out", tree / "pub" / "x86"))
    assert path_filter.classify(tree / "out/m/u8u8.onnx", check_links=False).kind is Kind.IGNORED
    assert path_filter.classify(tree / "pub/x86/m.onnx", check_links=False).kind is Kind.IGNORED
    assert path_filter.classify(tree / "pub/other.onnx", check_links=False).kind is Kind.MODEL
    assert path_filter.classify(tree / "outside.onnx", check_links=False).kind is Kind.MODEL


def test_output_dir_outside_tree_changes_nothing(tree: Path) -> None:
    path_filter = make_filter(tree, (tree.parent / "dqd-out",))
    assert path_filter.classify(tree / "m.onnx", check_links=False).kind is Kind.MODEL


def test_symlink_escaping_root_is_refused(tree: Path) -> None:
    secret = tree.parent / "secret.onnx"
    secret.write_bytes(b"x")
    (tree / "link.onnx").symlink_to(secret)
    verdict = make_filter(tree).classify(tree / "link.onnx")
    assert verdict.kind is Kind.REFUSED
    assert "outside the watched root" in verdict.reason


def test_symlinked_folder_escaping_root_is_refused(tree: Path) -> None:
    elsewhere = tree.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "m.onnx").write_bytes(b"x")
    (tree / "linked").symlink_to(elsewhere, target_is_directory=True)
    assert make_filter(tree).classify(tree / "linked" / "m.onnx").kind is Kind.REFUSED


def test_symlink_inside_root_is_accepted(tree: Path) -> None:
    (tree / "real.onnx").write_bytes(b"x")
    (tree / "alias.onnx").symlink_to(tree / "real.onnx")
    assert make_filter(tree).classify(tree / "alias.onnx").kind is Kind.MODEL


def test_root_given_through_a_symlink(tree: Path) -> None:
    alias = tree.parent / "alias-root"
    alias.symlink_to(tree, target_is_directory=True)
    (tree / "m.onnx").write_bytes(b"x")
    verdict = make_filter(alias).classify(os.path.join(alias, "m.onnx"))
    assert verdict.kind is Kind.MODEL and verdict.rel_path == "m.onnx"


def test_custom_globs(tree: Path) -> None:
    path_filter = PathFilter(tree, ["*.onnx", "special/*.bin"], ["*.tmp", "scratch/*"])
    assert path_filter.classify(tree / "special/w.bin", check_links=False).kind is Kind.MODEL
    assert path_filter.classify(tree / "scratch/m.onnx", check_links=False).kind is Kind.IGNORED
    assert path_filter.classify(tree / "other/w.bin", check_links=False).kind is Kind.COMPANION


@pytest.mark.parametrize(
    "rel",
    [
        *(f"a.onnx{suffix}" for suffix in PARTIAL_SUFFIXES),
        f"out/m/abc/{BUILD_PREFIX}x1/u8u8.onnx",  # output_dir inside the tree: a variant being built
        f"out/m/abc/{WORK_PREFIX}x1/prepared.onnx",
        f"out/m/abc/{BUILD_PREFIX}x1/{PREPARE_PREFIX}x2/model.onnx",
        f"pub/.m.onnx.x1{TMP_SUFFIX}",  # a publish copy in flight
    ],
)
def test_dqds_own_scratch_and_partial_files_are_ignored_by_default(tree: Path, rel: str) -> None:
    assert make_filter(tree).classify(tree / rel, check_links=False).kind is Kind.IGNORED


def test_what_is_not_a_regular_file_is_refused_with_what_it_is_and_never_opened(tree: Path) -> None:
    os.mkfifo(tree / "fifo.onnx")  # opening it would block until someone writes
    (tree / "loop-a.onnx").symlink_to(tree / "loop-b.onnx")
    (tree / "loop-b.onnx").symlink_to(tree / "loop-a.onnx")
    (tree / "dangling.onnx").symlink_to(tree / "nowhere.onnx")
    (tree / "real.onnx").write_bytes(b"x")
    (tree / "link.onnx").symlink_to(tree / "real.onnx")
    verdicts = {p.name: make_filter(tree).classify(p) for p in tree.iterdir()}
    reasons = {name: v.reason for name, v in verdicts.items() if v.kind is Kind.REFUSED}
    assert reasons.keys() == {"fifo.onnx", "loop-a.onnx", "loop-b.onnx", "dangling.onnx"}
    assert "not a regular file (a FIFO)" in reasons["fifo.onnx"]
    assert reasons["loop-a.onnx"].startswith("symlink loop")
    assert (
        reasons["dangling.onnx"].startswith("dangling symlink") and "nowhere.onnx" in reasons["dangling.onnx"]
    )
    assert verdicts["link.onnx"].kind is Kind.MODEL and verdicts["real.onnx"].kind is Kind.MODEL
    # The watcher's classification touches no file: what is not there yet is a model name.
    assert make_filter(tree).classify(tree / "fifo.onnx", check_links=False).kind is Kind.MODEL
