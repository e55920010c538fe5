"""GET /metrics, /livez and /readyz in-process, on a master and a secondary."""

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from replog.common.metrics import METRICS
from replog.master.app import make_app as master_app
from replog.master.config import MasterConfig
from replog.master.node import MasterNode
from replog.secondary.app import make_app as secondary_app
from replog.secondary.config import SecondaryConfig
from replog.secondary.node import SecondaryNode
from support import masters


def samples(text: str) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} of an exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def scrape(http_client, base_url) -> dict[tuple[str, tuple], float]:
    resp = await http_client.fetch(base_url + "/metrics")
    assert resp.code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=")
    text = resp.body.decode()
    assert "_created" not in text  # no creation-timestamp series beside each counter
    return samples(text)


async def get(http_client, base_url, path):
    resp = await http_client.fetch(base_url + path, raise_error=False)
    return resp.code, json.loads(resp.body)


@pytest.fixture
def node(request):
    role = getattr(request, "param", "master")
    if role == "master":
        return masters.open_master()
    if role == "read_only_master":
        node = MasterNode(MasterConfig(secondaries=2))
        node.log.adopt([], epoch=1)  # open, but no secondary: no quorum
        return node
    return SecondaryNode(
        SecondaryConfig(host="127.0.0.1", port=0, master_url="http://m:5000", secondary_id="s1")
    )


@pytest.fixture
def app(node):
    return master_app(node) if isinstance(node, MasterNode) else secondary_app(node)


@pytest.mark.gen_test
async def test_master_metrics_count_writes_by_outcome(http_client, base_url, node):
    before = await scrape(http_client, base_url)
    assert before[("replog_writes_total", (("result", "ok"),))] == 0

    async def post(body):
        resp = await http_client.fetch(
            base_url + "/", method="POST", body=json.dumps(body), raise_error=False
        )
        return resp.code

    assert await post({"message": "a", "w": 1, "id": 1}) == 201
    assert await post({"message": "b", "w": 1, "id": 2}) == 201
    assert await post({"message": "a", "w": 1, "id": 1}) == 200
    assert await post({"message": "other", "w": 1, "id": 1}) == 409
    assert await post({"message": "x", "w": 9}) == 400
    assert await post({"mesage": "x"}) == 400
    after = await scrape(http_client, base_url)
    results = {
        r: after[("replog_writes_total", (("result", r),))]
        for r in ["ok", "duplicate", "conflict", "timeout", "read_only", "bad_request"]
    }
    assert results == {
        "ok": 2, "duplicate": 1, "conflict": 1, "timeout": 0, "read_only": 0, "bad_request": 2
    }  # fmt: skip
    assert after[("replog_write_latency_seconds_count", (("w", "1"),))] == 3
    assert after[("replog_log_last_seq", ())] == 2 == node.log.last_seq
    assert after[("replog_commit_seq", ())] == node.log.commit_seq
    assert after[("replog_read_only", ())] == 0
    # The core counts s1 and s2 as streaming and healthy; neither acknowledged anything.
    for name in ("s1", "s2"):
        assert after[("replog_secondary_acked_seq", (("secondary", name),))] == 0
        assert after[("replog_secondary_lag", (("secondary", name),))] == 2
        status = {
            s: after[("replog_secondary_status", (("secondary", name), ("status", s)))]
            for s in ("healthy", "suspected", "unhealthy")
        }
        assert status == {"healthy": 1, "suspected": 0, "unhealthy": 0}


@pytest.mark.gen_test
async def test_master_exposes_every_documented_master_metric(http_client, base_url, node):
    resp = await http_client.fetch(base_url + "/metrics")
    names = {family.name for family in text_string_to_metric_families(resp.body.decode())}
    # The parser drops a counter's _total from the family name.
    names = {n + "_total" if n + "_total" in METRICS else n for n in names}
    wanted = {n for n, (_, _, roles, _) in METRICS.items() if "master" in roles}
    assert wanted <= names


@pytest.mark.gen_test
@pytest.mark.parametrize("node", ["master", "secondary"], indirect=True)
async def test_livez_answers_200(http_client, base_url, node):
    assert await get(http_client, base_url, "/livez") == (200, {"live": True})


@pytest.mark.gen_test
@pytest.mark.parametrize("node", ["master", "secondary"], indirect=True)
async def test_head_answers_as_get_without_a_body(http_client, base_url, node):
    ready = 200 if isinstance(node, MasterNode) else 503  # the secondary: no stream here
    for path, code in (("/livez", 200), ("/readyz", ready), ("/health", 200), ("/metrics", 200)):
        resp = await http_client.fetch(base_url + path, method="HEAD", raise_error=False)
        assert (resp.code, resp.body) == (code, b""), path
        assert int(resp.headers["Content-Length"]) > 0, path  # the GET's length


@pytest.mark.gen_test
async def test_readyz_on_an_open_master(http_client, base_url, node):
    assert await get(http_client, base_url, "/readyz") == (200, {"ready": True})


@pytest.mark.gen_test
@pytest.mark.parametrize("node", ["read_only_master"], indirect=True)
async def test_readyz_on_a_read_only_master_is_503_with_the_reason(http_client, base_url, node):
    code, body = await get(http_client, base_url, "/readyz")
    assert code == 503
    assert body["ready"] is False and body["error"].startswith("no quorum: 1 of 3 nodes are up")
    assert (await scrape(http_client, base_url))[("replog_read_only", ())] == 1


@pytest.mark.gen_test
@pytest.mark.parametrize("node", ["secondary"], indirect=True)
async def test_secondary_without_a_stream_is_not_ready(http_client, base_url, node):
    code, body = await get(http_client, base_url, "/readyz")
    assert code == 503
    assert body == {
        "ready": False,
        "reason": "no replication stream from the master (http://m:5000)",
        "error": "no replication stream from the master (http://m:5000)",
    }
    metrics = await scrape(http_client, base_url)
    assert metrics[("replog_stream_connected", ())] == 0
    assert metrics[("replog_log_last_seq", ())] == 0
    assert ("replog_writes_total", (("result", "ok"),)) not in metrics  # a master's only
