"""The deployment files agree with each other on the host lock (issue 9, scenario 2).

The Kubernetes pod runs as a non-root uid while the kubelet creates a
missing hostPath folder root-owned 0755: something must hand the lock folder
to that uid, and host_lock must point into the folder the daemon mounts.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _deployment() -> dict[str, Any]:
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "deployment.yaml").read_text()))
    return next(d for d in docs if d and d.get("kind") == "Deployment")


def _config() -> dict[str, Any]:
    configmap = yaml.safe_load((DEPLOY / "k8s" / "configmap.yaml").read_text())
    return tomllib.loads(configmap["data"]["dqd.toml"])


def test_k8s_host_lock_is_in_the_node_folder_and_that_folder_is_handed_to_the_pod_uid() -> None:
    pod = _deployment()["spec"]["template"]["spec"]
    uid = pod["securityContext"]["runAsUser"]
    (volume,) = [v for v in pod["volumes"] if "hostPath" in v]
    daemon = next(c for c in pod["containers"] if c["args"][0] == "run")
    mount = next(m for m in daemon["volumeMounts"] if m["name"] == volume["name"])
    lock = Path(_config()["host_lock"])
    assert lock.parent == Path(mount["mountPath"])
    init = [
        c
        for c in pod.get("initContainers", [])
        if any(m["name"] == volume["name"] for m in c.get("volumeMounts", []))
    ]
    assert init, "nothing makes the root-owned hostPath folder writable for the pod's uid"
    command = " ".join(init[0]["command"])
    assert f"chown {uid}:" in command and mount["mountPath"] in command


def test_systemd_unit_can_write_the_default_lock_outside_its_private_tmp() -> None:
    unit = (DEPLOY / "systemd" / "dqd.service").read_text()
    assert "PrivateTmp=yes" in unit and "ProtectSystem=strict" in unit
    writable = next(line for line in unit.splitlines() if line.startswith("ReadWritePaths="))
    assert "/run/lock" in [path.lstrip("-") for path in writable.split("=", 1)[1].split()]


def test_k8s_configuration_is_valid_dqd_settings(tmp_path: Path) -> None:
    """A typo in the ConfigMap would stop every pod at start-up (exit 2): load it as dqd does."""
    from dqd.settings import load

    config = tmp_path / "dqd.toml"
    configmap = yaml.safe_load((DEPLOY / "k8s" / "configmap.yaml").read_text())
    config.write_text(configmap["data"]["dqd.toml"])
    settings = load(config)
    # The mount is polled: the quiet time that applies there is the polling one.
    assert settings.watch.observer == "polling"
    assert settings.watch.polling_settle_seconds >= 3 * settings.watch.poll_interval
