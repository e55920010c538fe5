"""Fuzz a real master and secondary from their served OpenAPI documents (schemathesis).

For every operation of each role, schemathesis generates requests from the
document `GET /openapi.json` serves, valid ones (positive) and ones that break
it (negative). Internal operations are sent three times: without a token, with
a wrong one and with the cluster's; client operations once, the three cycling.
For every request:

- no 5xx (a `504` from `POST /` is the documented "w not reached within
  `wtimeout`", allowed only when the request set a `wtimeout`);
- no `Traceback` in either node's output since the previous request;
- the answer is one the document lists, with its content type and JSON schema,
  and a request that breaks the document is refused;
- an internal request without the right token is a `401`;
- every request but an accepted write leaves both logs as they were (the
  master's `last_seq`, the secondary's `contiguous_seq`).

Deterministic (derandomized, no example database, no shrinking) and bounded:
MAX_EXAMPLES per operation and mode. The number of generated requests is
printed per operation and in total, and must exceed floors so that a broken
generator cannot pass silently.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from replog.common.urls import is_node_url
from support.cluster import Cluster, Node
from support.waiting import wait_until
from tools.harness.net import free_port

pytestmark = pytest.mark.timeout(300)

# Generated requests per operation and generation mode (writes get more).
MAX_EXAMPLES = 150
MAX_EXAMPLES_FOR = {"master POST /": 300}
TOKEN = "fuzz-cluster-token-8d1f"
WRONG_TOKEN = "fuzz-wrong-token"
# An id the fuzzer will not generate: its requests never hit the real member.
SECONDARY = "fuzzed-secondary-5c2e9a"
INTERNAL_VARIANTS: tuple[str | None, ...] = (None, WRONG_TOKEN, TOKEN)
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
# Schemathesis' own checks: the answer is one the document describes, and a
# request that breaks the document is refused (4xx).
CHECKS = [
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
# The statuses replog refuses a request with that breaks the document.
REFUSALS = ["400", "401", "404", "405", "413"]
# Floors: an operation with inputs yields at least this many distinct requests
# per mode, and the whole run at least TOTAL_FLOOR requests.
PER_OPERATION_FLOOR = 100
TOTAL_FLOOR = 3000
WRITE = "POST /"
# Operations whose every input breaks the document only in ways no request can
# carry (an empty path segment is another path): no negative case exists.
NOTHING_TO_NEGATE = {"master DELETE /secondaries/{id}"}
# An answer of these never ends (an event stream), and a request is accepted
# whatever unknown parameters it carries: each would hold the fuzzer until a
# timeout. Not fuzzed; tests/integration/test_reads.py reads real streams and
# checks their refusals (bad from, read, Last-Event-ID).
NEVER_ENDS = {"master GET /stream", "secondary GET /stream", "master GET /ui/events"}
# Long polls (`GET /?wait=`) end this soon on the fuzzed nodes (--max-wait).
MAX_WAIT = "0.05"


@dataclass
class Fuzzer:
    cluster: Cluster
    master: Node
    secondary: Node
    session: requests.Session = field(default_factory=requests.Session)
    cases: Counter = field(default_factory=Counter)
    requests_sent: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    offsets: dict[str, int] = field(default_factory=dict)
    logs: tuple[int, int] = (0, 0)
    failure: BaseException | None = None
    # Where accepted fuzzed registrations point: our own host, a port nobody listens on.
    dead_url: str = ""

    def token_header(self, token: str | None) -> dict[str, str]:
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    def read_logs(self) -> tuple[int, int]:
        """(master last_seq, secondary contiguous_seq): what each node's log holds."""
        master = self.session.get(self.master.url + "/health", timeout=10).json()
        secondary = self.session.get(self.secondary.url + "/health", timeout=10).json()
        return master["last_seq"], secondary["contiguous_seq"]

    def settle(self) -> tuple[int, int]:
        """Wait until the secondary holds everything the master appended."""

        def caught_up() -> tuple[int, int] | None:
            logs = self.read_logs()
            return logs if logs[0] == logs[1] else None

        return wait_until(caught_up, 20, what="the secondary to catch up with the master")

    def new_output(self, node: Node) -> str:
        data = node.log_path.read_bytes()
        start = self.offsets.get(node.name, 0)
        self.offsets[node.name] = len(data)
        return data[start:].decode("utf-8", errors="replace")

    def check_output(self, what: Callable[[], str]) -> None:
        for node in (self.master, self.secondary):
            output = self.new_output(node)
            if "Traceback" in output:
                start = output.index("Traceback")
                raise AssertionError(
                    f"{node.name} logged a traceback after {what()}\n{output[start : start + 3000]}"
                )

    def variants(self, op: schemathesis.APIOperation) -> tuple[str | None, ...]:
        if op.definition.raw.get("security"):
            return INTERNAL_VARIANTS
        # Client operations take no token; send one now and then to show it changes nothing.
        return (INTERNAL_VARIANTS[self.cases[op.label] % len(INTERNAL_VARIANTS)],)

    def keep_local(self, case: schemathesis.Case) -> None:
        """A registration the master would accept makes it dial the URL: keep that on our host."""
        body = case.body
        if isinstance(body, dict) and is_node_url(body.get("url")):
            case.body = {**body, "url": self.dead_url}

    def send(self, role: str, case: schemathesis.Case) -> None:
        node = self.master if role == "master" else self.secondary
        op = case.operation
        label = f"{role} {op.label}"
        self.cases[label] += 1
        if op.label == "POST /register":
            self.keep_local(case)
        if case.headers:
            case.headers.pop("Authorization", None)
        for token in self.variants(op):
            self.send_one(node, label, case, token)

    def send_one(self, node: Node, label: str, case: schemathesis.Case, token: str | None) -> None:
        headers = self.token_header(token)
        response = case.call(base_url=node.url, session=self.session, headers=headers, timeout=30)
        self.requests_sent[label] += 1
        status = response.status_code
        self.statuses[status] += 1

        def what() -> str:
            curl = case.as_curl_command(headers=headers, base_url=node.url)
            if len(curl) > 2000:
                curl = curl[:2000] + f"... ({len(curl)} characters)"
            return f"{label} answered {status} {response.text[:300]!r} to\n{curl}"

        # A 504 is the documented answer of a write whose wtimeout ran out.
        timed_out = (
            label == f"master {WRITE}"
            and status == 504
            and isinstance(case.body, dict)
            and isinstance(case.body.get("wtimeout"), int)
            and case.body["wtimeout"] > 0
        )
        if not timed_out:
            case.validate_response(response, checks=[not_a_server_error], headers=headers)
        self.check_output(what)
        case.validate_response(response, checks=CHECKS, headers=headers)
        internal = bool(case.operation.definition.raw.get("security"))
        if internal and token != TOKEN:
            # 404 and 413 are decided before any handler: an unrouted path, a body too large.
            assert status in (401, 404, 413), f"expected 401: {what()}"
        wrote = label == f"master {WRITE}" and status in (200, 201, 504)
        if wrote:
            self.logs = self.settle()
        else:
            now = self.read_logs()
            assert now == self.logs, f"the logs changed {self.logs} -> {now} after {what()}"
        if label == "master POST /register" and status == 200:
            self.remove(response.json()["registered"])

    def remove(self, secondary_id: str) -> None:
        """Undo an accepted fuzzed registration, so that N and quorum stay as they were."""
        response = self.session.delete(
            f"{self.master.url}/secondaries/{requests.utils.quote(secondary_id, safe='')}",
            headers=self.token_header(TOKEN),
            timeout=30,
        )
        what = (
            f"DELETE /secondaries/{secondary_id} answered {response.status_code} {response.text!r}"
        )
        assert response.status_code == 200, what
        self.check_output(lambda: what)

    def fuzz(self, role: str, op: schemathesis.APIOperation, mode: GenerationMode) -> None:
        @settings(
            max_examples=MAX_EXAMPLES_FOR.get(f"{role} {op.label}", MAX_EXAMPLES),
            derandomize=True,
            database=None,
            deadline=None,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet,
        )
        @given(case=op.as_strategy(generation_mode=mode))
        def run(case: schemathesis.Case) -> None:
            # The first failure is kept and raised afterwards, as it happened: the
            # nodes have state, so Hypothesis' replay of a failing case would
            # meet another state and fail differently (or not at all).
            if self.failure is None:
                try:
                    self.send(role, case)
                except (AssertionError, FailureGroup, requests.RequestException) as exc:
                    self.failure = exc

        run()
        if self.failure is not None:
            raise self.failure


def schemathesis_config() -> schemathesis.Config:
    config = schemathesis.Config()
    # The tokens are ours to send (INTERNAL_VARIANTS), not generated data.
    config.projects.default.generation.update(with_security_parameters=False)
    # How replog refuses a request that breaks the document (a body too large is a 413).
    config.projects.default.checks.negative_data_rejection.expected_statuses = REFUSALS
    return config


def has_inputs(op: schemathesis.APIOperation) -> bool:
    raw = op.definition.raw
    return bool(raw.get("parameters") or raw.get("requestBody"))


@pytest.fixture(scope="module")
def fuzzer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzzer]:
    cluster = Cluster(tmp_path_factory.mktemp("fuzz"), secondaries=1)
    cluster.token = TOKEN  # every node gets it as $REPLOG_CLUSTER_TOKEN
    try:
        master = cluster.start_master("--max-wait", MAX_WAIT)
        secondary = cluster.add_secondary(SECONDARY, extra=["--max-wait", MAX_WAIT])
        fuzzer = Fuzzer(cluster, master, secondary)
        assert master.health()["auth"] and secondary.health()["auth"]
        fuzzer.dead_url = f"http://{cluster.host}:{free_port(cluster.host)}"
        fuzzer.logs = fuzzer.settle()
        yield fuzzer
    finally:
        cluster.stop()
    # Stopping included: no node may log a traceback.
    for node in cluster.nodes():
        text = node.log_path.read_text(errors="replace")
        assert "Traceback" not in text, f"{node.name} logged a traceback:\n{text[-3000:]}"


def test_fuzz_both_nodes_from_their_documents(
    fuzzer: Fuzzer, capsys: pytest.CaptureFixture
) -> None:
    started = time.monotonic()
    labels = []
    # The master's registrations come last: an accepted one is removed again at once.
    for role, node in (("secondary", fuzzer.secondary), ("master", fuzzer.master)):
        # The served document (from_url would leave its own path out of the operations).
        served = fuzzer.session.get(node.url + "/openapi.json", timeout=10)
        assert served.status_code == 200
        assert served.headers["Content-Type"] == "application/json"
        schema = schemathesis.openapi.from_dict(served.json(), config=schemathesis_config())
        operations = [result.ok() for result in schema.get_all_operations()]
        operations.sort(key=lambda op: op.label == "POST /register")
        for op in operations:
            if f"{role} {op.label}" in NEVER_ENDS:
                continue
            labels.append(f"{role} {op.label}")
            for mode in MODES if has_inputs(op) else MODES[:1]:
                before = fuzzer.cases[labels[-1]]
                if mode == GenerationMode.NEGATIVE and labels[-1] in NOTHING_TO_NEGATE:
                    with pytest.raises(Unsatisfiable):
                        fuzzer.fuzz(role, op, mode)
                    continue
                fuzzer.fuzz(role, op, mode)
                generated = fuzzer.cases[labels[-1]] - before
                if has_inputs(op):
                    assert generated >= PER_OPERATION_FLOOR, (labels[-1], mode, generated)
                else:
                    assert generated >= 1, (labels[-1], mode, generated)
    # The cluster is still whole: nothing the fuzzer sent took the secondary away.
    fuzzer.cluster.wait_connected(SECONDARY)
    for node in (fuzzer.master, fuzzer.secondary):
        assert "Traceback" not in fuzzer.new_output(node), node.name
    elapsed = time.monotonic() - started
    total = sum(fuzzer.requests_sent.values())
    lines = ["\nschemathesis fuzzing, requests per operation"]
    lines += [
        f"  {label:<40} {fuzzer.cases[label]:>5} generated {fuzzer.requests_sent[label]:>6} sent"
        for label in labels
    ]
    lines.append(
        f"  {'total':<40} {sum(fuzzer.cases.values()):>5} generated {total:>6} sent "
        f"in {elapsed:.1f} s\n  answers: "
        + ", ".join(f"{code}: {n}" for code, n in sorted(fuzzer.statuses.items()))
    )
    with capsys.disabled():
        print("\n".join(lines))
    assert set(labels) == {
        "master GET /",
        "master POST /",
        "master GET /health",
        "master POST /register",
        "master DELETE /secondaries/{id}",
        "master GET /openapi.json",
        "master GET /metrics",
        "master GET /livez",
        "master GET /readyz",
        "master GET /ui",
        "secondary GET /",
        "secondary POST /",
        "secondary GET /health",
        "secondary GET /replication/log",
        "secondary GET /replication",
        "secondary GET /openapi.json",
        "secondary GET /metrics",
        "secondary GET /livez",
        "secondary GET /readyz",
        # HEAD answers as GET, without the body.
        *(f"master HEAD {path}" for path in ("/health", "/metrics", "/livez", "/readyz", "/ui")),
        *(f"secondary HEAD {path}" for path in ("/health", "/metrics", "/livez", "/readyz")),
    }
    assert total >= TOTAL_FLOOR
    # Both accepted and refused requests, on the master's writes too.
    assert fuzzer.statuses[201] > 0 and fuzzer.statuses[400] > 0
    assert all(code < 500 or code == 504 for code in fuzzer.statuses)
