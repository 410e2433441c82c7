"""Filesystem type → observer choice, from /proc/mounts text."""

from __future__ import annotations

import pytest

from dqd.daemon.mounts import choose_observer, is_network_fs, mount_for, parse_mounts

MOUNTS = """\
/dev/vda / ext4 rw,relatime 0 0
proc /proc proc rw 0 0
server:/export /mnt/nfs nfs4 rw,relatime,vers=4.2 0 0
//nas/share /mnt/smb cifs rw 0 0
bucket /mnt/s3 fuse.s3fs rw,nosuid 0 0
bucket2 /mnt/gcs fuse.gcsfuse rw 0 0
mountpoint-s3 /mnt/mps3 fuse.mountpoint-s3 rw 0 0
models /mnt/9p 9p rw 0 0
/dev/vdb /mnt/nfs/local ext4 rw 0 0
tmpfs /mnt/with\\040space tmpfs rw 0 0
"""


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/srv/models", "native"),
        ("/mnt/nfs/models", "polling"),
        ("/mnt/nfs", "polling"),
        ("/mnt/nfsx", "native"),  # a prefix of the name is not the mount
        ("/mnt/smb/a", "polling"),
        ("/mnt/s3/repo/1", "polling"),
        ("/mnt/gcs", "polling"),
        ("/mnt/mps3/x", "polling"),
        ("/mnt/9p/models", "polling"),
        ("/mnt/nfs/local/models", "native"),  # a local disk mounted inside the NFS tree
        ("/mnt/with space/m", "native"),
    ],
)
def test_auto_picks_polling_on_network_and_fuse_mounts(path: str, expected: str) -> None:
    assert choose_observer("auto", path, parse_mounts(MOUNTS)) == expected


def test_explicit_setting_wins() -> None:
    mounts = parse_mounts(MOUNTS)
    assert choose_observer("native", "/mnt/nfs/x", mounts) == "native"
    assert choose_observer("polling", "/srv", mounts) == "polling"


def test_octal_escapes_are_decoded() -> None:
    mount = mount_for("/mnt/with space/m", parse_mounts(MOUNTS))
    assert mount is not None and mount.mount_point == "/mnt/with space"


def test_unknown_mount_table_means_native() -> None:
    assert choose_observer("auto", "/anything", []) == "native"


@pytest.mark.parametrize(
    "fs", ["nfs", "NFS4", "cifs", "smb3", "fuse.sshfs", "fuse.rclone", "9p", "virtiofs", "ceph"]
)
def test_network_types(fs: str) -> None:
    assert is_network_fs(fs)


@pytest.mark.parametrize("fs", ["ext4", "xfs", "btrfs", "tmpfs", "overlay", "zfs"])
def test_local_types(fs: str) -> None:
    assert not is_network_fs(fs)


def test_sqlite_catalog_on_nfs_is_warned_about() -> None:
    from dqd.daemon.service import warn_if_sqlite_on_network

    mounts = parse_mounts(MOUNTS)
    warning = warn_if_sqlite_on_network("sqlite:////mnt/nfs/dqd/dqd.db", mounts)
    assert warning is not None and "nfs4" in warning and "Postgres" in warning
    assert warn_if_sqlite_on_network("sqlite:////srv/dqd.db", mounts) is None
    assert warn_if_sqlite_on_network("postgresql+psycopg://u:p@h/db", mounts) is None
