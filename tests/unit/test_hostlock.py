"""The host lock's place and the errors that name ``host_lock``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dqd import hostlock
from dqd.errors import EnvironmentFailure
from dqd.hostlock import HostLockError, check_lock, default_lock_path, fallback_warning, host_lock
from dqd.settings import load


def test_default_is_under_run_lock_when_writable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(hostlock, "SHARED_LOCK_DIR", tmp_path)
    assert default_lock_path() == tmp_path / "dqd-host.lock"
    monkeypatch.setattr(hostlock, "SHARED_LOCK_DIR", tmp_path / "absent")
    fallback = default_lock_path()
    assert fallback.parent != tmp_path / "absent"
    warning = fallback_warning(fallback)
    assert warning is not None and "host_lock" in warning and "PrivateTmp" in warning
    assert fallback_warning(tmp_path / "custom.lock") is None  # set on purpose: nothing to say


def test_env_variable_is_the_settings_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DQD_HOST_LOCK", str(tmp_path / "node" / "host.lock"))
    assert load().host_lock == tmp_path / "node" / "host.lock"


def test_an_impossible_lock_is_an_environment_failure_naming_the_setting(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(HostLockError) as caught:
        check_lock(blocker / "host.lock")
    assert isinstance(caught.value, EnvironmentFailure) and caught.value.exit_code == 3
    assert caught.value.setting == "host_lock" and "host_lock" in str(caught.value)
    with pytest.raises(HostLockError), host_lock(exclusive=True, path=blocker / "host.lock"):
        pass


def test_another_users_lock_file_is_opened_read_only(tmp_path: Path) -> None:
    lock = tmp_path / "host.lock"
    lock.write_text("")
    os.chmod(
        lock, 0o444
    )  # as the daemon's file looks to an admin's shell (root ignores modes, hence the patched open)
    real_open = os.open

    def refuse_write(path: str | os.PathLike[str], flags: int, *args: int) -> int:
        if Path(path) == lock and flags & os.O_RDWR:
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(os, "open", refuse_write)
        with host_lock(exclusive=True, path=lock) as waited:
            assert waited >= 0
