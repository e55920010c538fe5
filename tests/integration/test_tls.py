"""TLS against real processes: a CA and node certificates made in the test, every node
serving HTTPS, the master streaming over WSS, peers verified against --tls-ca."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trustme

from support.cluster import Cluster, Node, TlsFiles
from support.waiting import wait_until
from tools.harness import http

TOKEN = "tls-test-token"


def events(node: Node, name: str) -> list[dict]:
    return [e for e in node.events() if e["event"] == name]


def issue(ca: trustme.CA, host: str, directory: Path) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    cert = ca.issue_cert(host)
    files = TlsFiles(directory / "cert.pem", directory / "key.pem", directory / "ca.pem")
    cert.cert_chain_pems[0].write_to_path(str(files.cert))
    cert.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca))
    return files


@pytest.fixture
def tls_cluster(cluster_factory) -> Cluster:
    """Master and two secondaries serving HTTPS with certificates of a CA made here."""
    cluster = cluster_factory(secondaries=2)
    cluster.token = TOKEN
    cluster.tls = issue(trustme.CA(), cluster.host, cluster.tmp_path / "tls")
    cluster.start_master()
    cluster.add_secondary("s1")
    cluster.add_secondary("s2")
    return cluster


def test_a_tls_cluster_replicates_over_https_and_wss(tls_cluster: Cluster):
    cluster = tls_cluster
    health = cluster.master.health()
    assert cluster.master_url.startswith("https://")
    # Each secondary advertised https, so the master dialled wss://.
    assert {s["id"]: s["url"] for s in health["secondaries"]} == {
        name: node.url for name, node in cluster.secondaries.items()
    }
    assert all(s["url"].startswith("https://") for s in health["secondaries"])
    for node in cluster.nodes():
        node_health = node.health()
        assert node_health["tls"] is True and node_health["auth"] is True

    resp = cluster.write("over tls", w=3, id="t1")
    assert resp.status == 201 and sorted(resp.body["acked_by"]) == ["master", "s1", "s2"]
    log = cluster.master.messages()
    assert [m["message"] for m in log] == ["over tls"]
    for node in cluster.secondaries.values():
        assert node.messages() == log  # read over https, verified against the CA

    # The internal endpoints over https still want the token.
    url = cluster.secondaries["s1"].url + "/replication/log"
    assert http.get(url, context=cluster.ssl_context).status == 401
    resp = http.get(url, context=cluster.ssl_context, headers={"Authorization": f"Bearer {TOKEN}"})
    assert resp.status == 200 and [e[3] for e in resp.body["entries"]] == ["over tls"]
    # A client that does not trust the CA is refused by its own TLS check.
    with pytest.raises(ssl.SSLCertVerificationError):
        http.get(cluster.master_url + "/health", context=ssl.create_default_context())
    # Plain HTTP to a TLS node gets no answer.
    with pytest.raises(Exception):  # noqa: B017  (RemoteDisconnected or a reset: either)
        http.get(cluster.master_url.replace("https://", "http://") + "/health", timeout=5)


def test_a_secondary_without_the_ca_does_not_register_and_says_why(tls_cluster: Cluster):
    cluster = tls_cluster
    assert cluster.tls is not None
    # It serves TLS itself, but has no --tls-ca: the master's certificate (from a CA the
    # system does not know) does not verify, so it never registers.
    lost = cluster.add_secondary("lost", wait=False, tls_args=cluster.tls.args(ca=False))
    wait_until(lambda: len(events(lost, "register_failed")) >= 2, what="lost refused twice")
    failure = events(lost, "register_failed")[0]
    assert failure["level"] == "error"
    assert "CERTIFICATE_VERIFY_FAILED" in failure["error"] and "--tls-ca" in failure["error"]
    assert "Traceback" not in lost.log_path.read_text()
    health = cluster.master.health()
    assert [s["id"] for s in health["secondaries"]] == ["s1", "s2"]
    assert health["cluster_size"] == 3
    assert lost.health()["stream"] is False and lost.messages() == []
    resp = cluster.write("without lost", w=3)
    assert resp.status == 201 and "lost" not in resp.body["acked_by"]


def test_a_master_that_cannot_verify_a_secondary_does_not_stream_to_it(cluster_factory):
    """The master's --tls-ca is another CA: its wss dial is refused by its own check."""
    cluster = cluster_factory(secondaries=1)
    cluster.token = TOKEN
    ca, other_ca = trustme.CA(), trustme.CA()
    cluster.tls = issue(ca, cluster.host, cluster.tmp_path / "tls")
    wrong_ca = cluster.tmp_path / "other-ca.pem"
    other_ca.cert_pem.write_to_path(str(wrong_ca))
    cluster.start_master(tls_args=[*cluster.tls.args(ca=False), "--tls-ca", str(wrong_ca)])
    s1 = cluster.add_secondary("s1", wait=False)
    wait_until(lambda: len(events(cluster.master, "stream_tls_error")) >= 2, what="dial refused")
    event = events(cluster.master, "stream_tls_error")[0]
    assert event["secondary"] == "s1" and event["url"] == s1.url
    assert "CERTIFICATE_VERIFY_FAILED" in event["error"] and event["level"] == "error"
    assert "Traceback" not in cluster.master.log_path.read_text()
    assert s1.health()["stream"] is False
