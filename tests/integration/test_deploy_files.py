"""Issue 14: the deployment files, verified offline by the tools their platforms use.

systemd-analyze on the unit, hadolint on the Containerfile, the Kubernetes
JSON schemas (kubernetes-validate) on every manifest, and the rules that make
the manifests right for dqd: one Deployment per CPU class, Guaranteed pods,
restricted containers, a migration Job named per release, alert rules on
metrics dqd really serves, a compose file whose settings dqd accepts.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from dqd import __version__

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
K8S_VERSION = "1.30.0"
ON_CI = bool(os.environ.get("CI"))


def _tool(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        if ON_CI:
            pytest.fail(f"{name} must be installed on CI (.ci/run, or the dev extra)")
        pytest.skip(f"{name} is not installed")
    return found


def _documents(*folders: str) -> list[tuple[Path, dict[str, Any]]]:
    found = []
    for folder in folders:
        for path in sorted((DEPLOY / folder).glob("*.yaml")):
            found += [(path, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return found


def _kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in _documents("k8s") if doc["kind"] == kind]


def test_the_systemd_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze")
    unit = (DEPLOY / "systemd" / "dqd.service").read_text()
    executable = re.search(r"^ExecStart=(\S+)", unit, re.MULTILINE)
    assert executable is not None
    stub = tmp_path / "dqd"  # systemd-analyze checks that ExecStart's program exists
    stub.write_text("#!/bin/sh\nexit 0\n")
    stub.chmod(0o755)
    copy = tmp_path / "dqd.service"
    copy.write_text(unit.replace(executable.group(1), str(stub)))
    done = subprocess.run(
        [analyze, "verify", "--man=no", str(copy)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


def test_the_systemd_install_comment_and_the_readme_agree() -> None:
    unit = (DEPLOY / "systemd" / "dqd.service").read_text()
    readme = (DEPLOY.parent / "README.md").read_text()
    assert "deploy/systemd" in readme
    for needed in ("useradd --system", "systemctl enable --now dqd", "/etc/dqd/dqd.toml"):
        assert needed in unit
    assert re.search(r"^User=dqd$", unit, re.MULTILINE)


def test_the_containerfile_lints_clean_and_runs_as_a_numeric_user() -> None:
    hadolint = _tool("hadolint")
    containerfile = DEPLOY / "container" / "Containerfile"
    done = subprocess.run(
        [hadolint, "--no-color", str(containerfile)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")
    (user,) = re.findall(r"^USER (\S+)$", containerfile.read_text(), re.MULTILINE)
    assert re.fullmatch(r"\d+(:\d+)?", user), user


def test_every_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    import kubernetes_validate

    documents = _documents("k8s", "examples")
    assert len(documents) >= 8
    for path, doc in documents:
        try:
            kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{path.name} {doc['kind']} {doc['metadata']['name']}: {exc.message}")


def test_no_secret_is_kept_in_the_applied_folder() -> None:
    assert not _kind("Secret"), "kubectl apply -f deploy/k8s/ would overwrite the real Secret"


def _pod(deployment: dict[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"]["spec"])


def test_one_deployment_per_cpu_class_pinned_by_cpu_feature_and_otherwise_alike() -> None:
    deployments = _kind("Deployment")
    assert len(deployments) >= 2
    classes = set()
    for deployment in deployments:
        pod = _pod(deployment)
        (label,) = pod["nodeSelector"]
        assert label.startswith("feature.node.kubernetes.io/cpu-cpuid.")
        host_class = deployment["spec"]["template"]["metadata"]["labels"]["dqd/host-class"]
        assert deployment["spec"]["selector"]["matchLabels"]["dqd/host-class"] == host_class
        classes.add(host_class)
    assert len(classes) == len(deployments)
    # The pods differ in where they run only.
    first, *others = [_pod(d) for d in deployments]
    for key in ("nodeSelector", "affinity", "topologySpreadConstraints"):
        first.pop(key, None)
        for other in others:
            other.pop(key, None)
    assert all(other == first for other in others)


def test_pods_are_guaranteed_restricted_and_probed() -> None:
    for deployment in _kind("Deployment"):
        pod = _pod(deployment)
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["securityContext"]["runAsNonRoot"] is True
        for container in pod["initContainers"] + pod["containers"]:
            resources = container["resources"]
            assert resources["requests"] == resources["limits"], container["name"]  # Guaranteed QoS
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
            assert context["capabilities"]["drop"] == ["ALL"]
        containers = {c["name"]: c for c in pod["containers"]}
        daemon, api = containers["daemon"], containers["api"]
        assert str(daemon["resources"]["limits"]["cpu"]).isdigit()  # whole cores: static CPU manager
        assert "--serve" in daemon["args"]
        ports = {c["name"]: c["ports"][0]["containerPort"] for c in (daemon, api)}
        assert ports["daemon"] != ports["api"]  # one pod network
        env = {e["name"]: e.get("value") for e in daemon["env"]}
        assert env["DQD_API__PORT"] == str(ports["daemon"])
        for container in (daemon, api):
            assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
            assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        waits = [c for c in pod["initContainers"] if "dqd db current --check" in " ".join(c["command"])]
        assert waits, "nothing holds the daemon until the migration Job has run"


def test_each_deployment_has_a_disruption_budget() -> None:
    budgets = [b["spec"]["selector"]["matchLabels"] for b in _kind("PodDisruptionBudget")]
    for deployment in _kind("Deployment"):
        assert deployment["spec"]["selector"]["matchLabels"] in budgets


def test_the_migration_job_is_named_for_the_release_its_image_carries() -> None:
    (job,) = _kind("Job")
    images = {
        c["image"]
        for _, doc in _documents("k8s")
        if doc["kind"] in ("Deployment", "Job")
        for c in doc["spec"]["template"]["spec"].get("initContainers", [])
        + doc["spec"]["template"]["spec"]["containers"]
        if "/dqd:" in c["image"]
    }
    (image,) = images
    tag = image.rsplit(":", 1)[1]
    assert tag == __version__
    assert job["metadata"]["name"] == f"dqd-db-upgrade-{tag.replace('.', '-')}"


def test_alert_rules_use_only_metrics_dqd_serves(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from dqd.api import create_app
    from dqd.catalog import Catalog
    from dqd.catalog.migrate import upgrade
    from dqd.settings import Settings
    from tests.query_factory import add_model, host, sha_of

    catalog = Catalog.from_url(f"sqlite:///{tmp_path / 'dqd.db'}")
    upgrade(catalog.engine)
    try:
        add_model(catalog, "a.onnx")
        catalog.upsert_host(host())
        catalog.observe_file("q.onnx", sha_of("q"), 1)
        catalog.enqueue(sha_of("q"), "x86_64-avx2", source_path="q.onnx")
        with TestClient(create_app(catalog, Settings())) as client:
            served = client.get("/metrics").text
    finally:
        catalog.close()
    from prometheus_client import REGISTRY

    import dqd.metrics  # noqa: F401  (the daemon's own metrics, served by `dqd run --serve`)

    names = set(re.findall(r"^(dqd_\w+?)(?:_bucket|_count|_sum|_created|_total)?[{ ]", served, re.MULTILINE))
    names |= {metric.name for metric in REGISTRY.collect() if metric.name.startswith("dqd_")}
    rules = yaml.safe_load((DEPLOY / "prometheus" / "dqd-alerts.yaml").read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {"DqdCatalogDown", "DqdJobsFailing", "DqdQueueStuck", "DqdHostClassWithoutHosts"} <= {
        a["alert"] for a in alerts
    }
    for alert in alerts:
        used = set(re.findall(r"\bdqd_\w+", alert["expr"]))
        assert used and used <= names, (alert["alert"], used - names)
        assert alert["labels"]["severity"] in ("warning", "critical") and alert["annotations"]["summary"]


def test_the_compose_file_orders_the_upgrade_first_and_its_settings_load(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dqd.settings import load

    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "migrate", "daemon", "api"} <= set(services)
    assert services["migrate"]["command"] == ["db", "upgrade"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("daemon", "api"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert any(v.endswith(":/models:ro") for v in services["daemon"]["volumes"])
    assert all(port.startswith("127.0.0.1:") for port in services["api"]["ports"])
    # Every DQD_* variable is a setting dqd accepts (a typo would stop the container with exit 2).
    for name in ("migrate", "daemon", "api"):
        for key in [k for k in os.environ if k.startswith("DQD_")]:
            monkeypatch.delenv(key)
        for key, value in services[name]["environment"].items():
            monkeypatch.setenv(key, re.sub(r"\$\{[^}]*\}", "secret", str(value)))
        settings = load()
        assert settings.database_url_plain.startswith("postgresql+psycopg://dqd:secret@postgres")
