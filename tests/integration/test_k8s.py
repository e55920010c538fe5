"""The Kubernetes manifests (deploy/k8s), checked offline and run without Kubernetes.

The manifests are validated against the Kubernetes API's JSON schemas
(kubernetes-validate, strict: an unknown field fails). Then the StatefulSet's one
container spec is run as local processes, one per ordinal, as the kubelet would run
it: POD_NAME/POD_NAMESPACE from the downward API, the token from a Secret, $(VAR)
references expanded, each pod on its own loopback address (its DNS name on the
headless Service mapped there), its volume claim a directory under tmp_path.
"""

from __future__ import annotations

import functools
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import kubernetes_validate
import pytest
import yaml

from support.cluster import BIN, Node
from support.deploy import address_with_free_port, all_env_names
from support.waiting import wait_until
from tools.harness import http

ROOT = Path(__file__).resolve().parents[2]
K8S_DIR = ROOT / "deploy" / "k8s"
NAMESPACE = "replog-test"
K8S_VERSIONS = ("1.29.0", "1.37.0")


@functools.cache
def documents() -> list[dict[str, Any]]:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    out = []
    for name in kustomization["resources"]:
        out.extend(doc for doc in yaml.safe_load_all((K8S_DIR / name).read_text()) if doc)
    return out


def resource(kind: str, name: str) -> dict[str, Any]:
    (found,) = [d for d in documents() if d["kind"] == kind and d["metadata"]["name"] == name]
    return found


def statefulset() -> dict[str, Any]:
    return resource("StatefulSet", "replog")


def container() -> dict[str, Any]:
    (only,) = statefulset()["spec"]["template"]["spec"]["containers"]
    return only


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S_DIR / "kustomization.yaml").read_text())
    manifests = {p.name for p in K8S_DIR.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_manifests_are_valid_kubernetes_objects(version: str) -> None:
    kinds = set()
    for doc in documents():
        kubernetes_validate.validate(doc, version, strict=True)
        kinds.add(doc["kind"])
    assert kinds == {"Service", "StatefulSet", "PodDisruptionBudget"}


def test_the_schema_check_catches_a_mistake() -> None:
    broken = yaml.safe_load(yaml.safe_dump(statefulset()))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)
    broken = yaml.safe_load(yaml.safe_dump(statefulset()))
    broken["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[0], strict=True)


def test_services_route_writes_to_ordinal_0_and_reads_to_every_node() -> None:
    sts = statefulset()
    labels = sts["spec"]["template"]["metadata"]["labels"]
    assert sts["spec"]["selector"]["matchLabels"].items() <= labels.items()
    headless = resource("Service", sts["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    # The master is ready only after a majority registered through these names.
    assert headless["spec"]["publishNotReadyAddresses"] is True
    assert sts["spec"]["podManagementPolicy"] == "Parallel"
    master = resource("Service", "replog-master")
    # A read-only master still answers writes, with a 503 saying why.
    assert master["spec"]["publishNotReadyAddresses"] is True
    assert master["spec"]["selector"] == {
        **sts["spec"]["selector"]["matchLabels"],
        "statefulset.kubernetes.io/pod-name": f"{sts['metadata']['name']}-0",
    }
    reads = resource("Service", "replog")
    assert reads["spec"]["selector"] == sts["spec"]["selector"]["matchLabels"]
    pdb = resource("PodDisruptionBudget", "replog")
    assert pdb["spec"]["selector"]["matchLabels"] == sts["spec"]["selector"]["matchLabels"]
    assert pdb["spec"]["maxUnavailable"] == 1
    (port,) = container()["ports"]
    for svc in (headless, master, reads):
        assert [p["targetPort"] for p in svc["spec"]["ports"]] == [port["name"]]


def test_container_has_probes_resources_token_and_a_volume_at_its_data_dir() -> None:
    spec = container()
    port = spec["ports"][0]["name"]
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/livez", "port": port}
    assert spec["startupProbe"]["httpGet"] == {"path": "/livez", "port": port}
    assert set(spec["resources"]["requests"]) == {"cpu", "memory"}
    env = {e["name"]: e for e in spec["env"]}
    assert "REPLOG_CLUSTER_TOKEN" not in env  # a file, not the environment
    token_file = PurePosixPath(env["REPLOG_CLUSTER_TOKEN_FILE"]["value"])
    (secret_volume,) = statefulset()["spec"]["template"]["spec"]["volumes"]
    assert secret_volume["secret"]["secretName"] == "replog-cluster-token"
    assert secret_volume["secret"]["items"] == [{"key": "token", "path": token_file.name}]
    # Readable by the group the pod's fsGroup gives it, and the process runs in it.
    security = statefulset()["spec"]["template"]["spec"]["securityContext"]
    assert secret_volume["secret"]["defaultMode"] == 0o440
    assert security["fsGroup"] == security["runAsGroup"]
    token_mount = next(m for m in spec["volumeMounts"] if m["name"] == secret_volume["name"])
    assert token_mount["mountPath"] == str(token_file.parent) and token_mount["readOnly"]
    # Scaled away, a pod's claim goes (a removed node rejoins only empty); deleted, kept.
    assert statefulset()["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Delete",
    }
    readme = (ROOT / "README.md").read_text()
    assert "kubectl create secret generic replog-cluster-token --from-literal=token=" in readme
    (claim,) = statefulset()["spec"]["volumeClaimTemplates"]
    mounts = {m["mountPath"]: m["name"] for m in spec["volumeMounts"]}
    assert mounts[env["REPLOG_DATA_DIR"]["value"]] == claim["metadata"]["name"]
    names = set(env) - {"POD_NAME", "POD_NAMESPACE"}
    unknown = names - all_env_names()
    assert not unknown


# ----- the container spec as local processes ---------------------------------------

REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


def expand(value: str, env: dict[str, str]) -> str:
    """The kubelet's $(VAR) expansion: defined names replaced, $$ is $, others kept."""

    def sub(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        return env.get(match[1], match.group(0))

    return REFERENCE.sub(sub, value)


def pod_env(pod: str) -> dict[str, str]:
    env: dict[str, str] = {}
    fields = {"metadata.name": pod, "metadata.namespace": NAMESPACE}
    for item in container()["env"]:
        source = item.get("valueFrom")
        if source is None:
            env[item["name"]] = expand(item["value"], env)
        elif "fieldRef" in source:
            env[item["name"]] = fields[source["fieldRef"]["fieldPath"]]
        else:
            raise AssertionError(f"{item['name']}: an env source this emulation lacks")
    return env


def localize(value: str, addresses: dict[str, str]) -> str:
    """http://<pod>.<headless>[.<ns>.svc...]:port -> http://<pod's address>:port."""
    parts = urlsplit(value)
    headless = statefulset()["spec"]["serviceName"]
    if parts.scheme == "http" and parts.hostname:
        pod, _, domain = parts.hostname.partition(".")
        allowed = {headless, f"{headless}.{NAMESPACE}", f"{headless}.{NAMESPACE}.svc"}
        if pod in addresses and domain in allowed | {f"{headless}.{NAMESPACE}.svc.cluster.local"}:
            return urlunsplit(parts._replace(netloc=f"{addresses[pod]}:{parts.port}"))
    return value


def claim_dir(tmp_path: Path, pod: str) -> Path:
    """Where the emulation keeps the claim the StatefulSet makes for `pod`."""
    return tmp_path / "pvc" / f"data-{pod}"


def local_pod(ordinal: int, token: str, addresses: dict[str, str], tmp_path: Path) -> Node:
    pod = f"{statefulset()['metadata']['name']}-{ordinal}"
    addresses[pod] = address_with_free_port(int(container()["ports"][0]["containerPort"]))
    env = {key: localize(value, addresses) for key, value in pod_env(pod).items()}
    assert env["REPLOG_HOST"] == "0.0.0.0"
    env["REPLOG_HOST"] = addresses[pod]
    mounts = {m["name"]: PurePosixPath(m["mountPath"]) for m in container()["volumeMounts"]}
    (claim_template,) = statefulset()["spec"]["volumeClaimTemplates"]
    mount = mounts[claim_template["metadata"]["name"]]
    claim = claim_dir(tmp_path, pod)
    env["REPLOG_DATA_DIR"] = str(claim / PurePosixPath(env["REPLOG_DATA_DIR"]).relative_to(mount))
    # The Secret's volume: its items as files, the token with the newline a Secret made
    # with --from-file has.
    (secret_volume,) = statefulset()["spec"]["template"]["spec"]["volumes"]
    secret_dir = tmp_path / "secrets" / pod
    secret_dir.mkdir(parents=True, exist_ok=True)
    for item in secret_volume["secret"]["items"]:
        assert item["key"] == "token"
        (secret_dir / item["path"]).write_text(token + "\n")
    token_file = PurePosixPath(env["REPLOG_CLUSTER_TOKEN_FILE"])
    env["REPLOG_CLUSTER_TOKEN_FILE"] = str(
        secret_dir / token_file.relative_to(mounts[secret_volume["name"]])
    )
    env["PATH"] = f"{BIN}{os.pathsep}{os.environ['PATH']}"  # the image's replog-* scripts
    argv = [*container()["command"], *container().get("args", [])]
    return Node(
        pod, argv, f"http://{addresses[pod]}:{env['REPLOG_PORT']}", tmp_path / f"{pod}.log", env=env
    )


@pytest.fixture
def pods(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Node]]:
    for name in all_env_names():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    token = secrets.token_hex(16)
    addresses: dict[str, str] = {}
    replicas = statefulset()["spec"]["replicas"]
    nodes = {}
    for ordinal in range(replicas + 1):  # one more: scaling up
        node = local_pod(ordinal, token, addresses, tmp_path)
        nodes[node.name] = node
    try:
        for node in list(nodes.values())[:replicas]:  # podManagementPolicy: Parallel
            node.start()
        yield nodes
    finally:
        for node in reversed(nodes.values()):
            if node.alive():
                node.stop()
        for node in nodes.values():
            print(f"----- {node.name} {node.argv} env={node.env}")
            if node.log_path.exists():
                print(node.log_path.read_text(errors="replace")[-4000:])


def test_statefulset_pods_form_a_working_cluster_role_by_ordinal(pods: dict[str, Node]) -> None:
    master, one, two, three = pods.values()
    assert (master.name, one.name) == ("replog-0", "replog-1")

    def registered(ids: set[str]) -> dict | None:
        health = master.health()
        status = {s["id"]: s["status"] for s in health["secondaries"]}
        return health if status == dict.fromkeys(ids, "healthy") else None

    health = wait_until(
        lambda: registered({"replog-1", "replog-2"}), timeout=15, what="replog-1 and -2 registered"
    )
    assert health["role"] == "master" and health["cluster_size"] == 3
    assert {s["id"]: s["url"] for s in health["secondaries"]} == {
        "replog-1": one.url,
        "replog-2": two.url,
    }
    for node in pods.values():
        if node.alive():
            assert node.health()["auth"] is True
    assert http.post(master.url + "/register", {"id": "x", "url": one.url}).status == 401

    resp = http.post(master.url + "/", {"message": "hello k8s", "w": 3, "id": "k1"})
    assert resp.status == 201, resp
    log = master.messages()
    assert one.messages() == log and two.messages() == log
    assert http.post(one.url + "/", {"message": "no", "w": 1}).status != 201  # read-only

    # kubectl scale statefulset replog --replicas=4: replog-3 joins as a secondary.
    three.start()
    health = wait_until(
        lambda: registered({"replog-1", "replog-2", "replog-3"}), timeout=15, what="replog-3 joins"
    )
    assert health["cluster_size"] == 4
    wait_until(lambda: three.messages() == log, timeout=10, what="replog-3 catches up")

    # Each pod keeps its log in its own claim; the master restarts on its own.
    data_dirs = {node.health()["data_dir"] for node in pods.values()}
    assert len(data_dirs) == 4
    assert master.stop() == 0
    master.start()
    wait_until(lambda: master.health(), timeout=15, what="replog-0 back")
    assert master.messages() == log

    # README's scale-down: replicas back to 3 stops replog-3 and deletes its claim
    # (whenScaled: Delete); DELETE /secondaries/replog-3 makes N 3 again. Scaled up
    # once more, replog-3 starts on a new, empty claim and joins again.
    wait_until(
        lambda: registered({"replog-1", "replog-2", "replog-3"}), timeout=15, what="all back"
    )
    assert three.stop() == 0
    shutil.rmtree(claim_dir(three.log_path.parent, three.name))
    token = Path(three.env["REPLOG_CLUSTER_TOKEN_FILE"]).read_text().strip()
    resp = http.delete(master.url + "/secondaries/replog-3", headers=http.bearer(token))
    assert resp.status == 200 and resp.body["cluster_size"] == 3, resp
    three.start()
    health = wait_until(
        lambda: registered({"replog-1", "replog-2", "replog-3"}), timeout=15, what="replog-3 back"
    )
    assert health["cluster_size"] == 4
    wait_until(lambda: three.messages() == log, timeout=10, what="replog-3 refilled")


def test_probes_answer_on_the_pods(pods: dict[str, Node]) -> None:
    master = pods["replog-0"]
    wait_until(lambda: master.health(), timeout=15, what="replog-0 serving")
    for node in list(pods.values())[:3]:
        wait_until(
            lambda node=node: http.get(node.url + "/readyz").status == 200,
            timeout=15,
            what=f"{node.name} ready",
        )
        assert http.get(node.url + "/livez").status == 200
