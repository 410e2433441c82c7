"""Which filesystem holds a path, and whether inotify can be trusted there.

inotify only reports changes made through the local kernel. On network and
FUSE filesystems (NFS, SMB, s3fs, gcsfuse, mountpoint-s3, 9p, ...) files
written by other hosts, or by the FUSE daemon itself, produce no events, so
those mounts need the polling observer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MOUNTS_FILE = Path("/proc/mounts")

# Filesystem types whose changes inotify does not see (or sees only for local writers).
NETWORK_FS_TYPES = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "9p",
        "afs",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "ocfs2",
        "gfs2",
        "davfs",
        "sshfs",
        "virtiofs",
        "vboxsf",
        "vmhgfs",
        "prl_fs",
        "orangefs",
        "pvfs2",
        "fuse",
        "fuseblk",
    }
)


@dataclass(frozen=True)
class Mount:
    device: str
    mount_point: str
    fs_type: str


def parse_mounts(text: str) -> list[Mount]:
    """Entries of a /proc/mounts text (octal escapes such as ``\\040`` decoded)."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        mounts.append(Mount(_unescape(fields[0]), _unescape(fields[1]), fields[2]))
    return mounts


def _unescape(field: str) -> str:
    # The kernel writes space, tab, newline and backslash as \040 \011 \012 \134.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mount_for(path: str | os.PathLike[str], mounts: list[Mount]) -> Mount | None:
    """The mount holding ``path``: the longest mount point that is a prefix (the last one wins on ties)."""
    target = os.path.realpath(path)
    best: Mount | None = None
    for mount in mounts:
        point = mount.mount_point.rstrip("/") or "/"
        inside = target == point or target.startswith(point + "/") or point == "/"
        if inside and (best is None or len(point) >= len(best.mount_point.rstrip("/") or "/")):
            best = mount
    return best


def is_network_fs(fs_type: str) -> bool:
    """True for filesystems where inotify misses changes (network, FUSE, VM shares)."""
    fs_type = fs_type.lower()
    return fs_type in NETWORK_FS_TYPES or fs_type.startswith(("fuse.", "nfs", "smb", "cifs"))


def read_mounts(mounts_file: Path = MOUNTS_FILE) -> list[Mount]:
    try:
        return parse_mounts(mounts_file.read_text())
    except OSError:
        return []  # not Linux, or /proc not mounted: nothing known, assume local


def filesystem_type(path: str | os.PathLike[str], mounts: list[Mount] | None = None) -> str | None:
    mount = mount_for(path, read_mounts() if mounts is None else mounts)
    return mount.fs_type if mount else None


def choose_observer(setting: str, path: str | os.PathLike[str], mounts: list[Mount] | None = None) -> str:
    """``native`` or ``polling``: the configured choice, or for ``auto`` the one the mount needs."""
    if setting in {"native", "polling"}:
        return setting
    fs_type = filesystem_type(path, mounts)
    return "polling" if fs_type is not None and is_network_fs(fs_type) else "native"
