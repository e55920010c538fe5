"""The Docker Compose deployment (deploy/compose), run without Docker.

No container engine is needed: the test reads docker-compose.yml and runs each
service's `command` with its `environment` as a local process, so the console
scripts and the variables are exactly the ones the containers get. Only the
network and the disk differ, and they are mapped like this:

* each service gets its own loopback address (support.cluster.next_host()) and
  listens there on its fixed compose port (REPLOG_PORT 5000/5001/5002), so those
  fixed ports never collide with other tests;
* REPLOG_HOST=0.0.0.0 becomes that address;
* a service name in a URL becomes that service's address
  (http://master:5000 -> http://127.0.x.y:5000), as Docker's DNS would resolve it;
* each named volume becomes a directory of its own under pytest's tmp_path
  (tmp_path/volumes/<volume name>), and a REPLOG_DATA_DIR equal to (or inside) a
  volume's mount target in that service becomes the same place in that directory
  (master: REPLOG_DATA_DIR=/data, master-data mounted at /data ->
  tmp_path/volumes/master-data), as the container would see the volume. A
  REPLOG_DATA_DIR outside every volume (or none) fails the test instead of writing
  to that path on the host, and the processes run in tmp_path, so nothing they
  write lands in the repository;
* the process environment holds no replog variable from the caller's shell, as
  a container does not inherit it;
* `${VAR:-default}` and the other forms of compose's variable substitution in
  `environment` and `command` are resolved as compose resolves them, from the
  caller's environment (so an unset REPLOG_CLUSTER_TOKEN gives the file's default).

One value is overridden, and only for speed: secondary_slow's SECONDARY_DELAY is
10 s in the compose file, longer than this test may take; here it is SLOW_DELAY.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import yaml

from support.cluster import BIN, Node
from support.deploy import accepted_env_names, address_with_free_port, all_env_names
from support.waiting import wait_until
from tools.harness import http

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
DOCKERFILE = COMPOSE_DIR / "Dockerfile"
SERVICES = ("master", "secondary", "secondary_slow")
PUBLISHED = {
    "master": ("127.0.0.2", 5000, 5000),
    "secondary": ("127.0.0.2", 5001, 5001),
    "secondary_slow": ("127.0.0.2", 5002, 5002),
}
# Replaces secondary_slow's 10 s (see the module docstring): still hundreds of
# times a local round trip, so "it lags" is unambiguous, and the test stays fast.
SLOW_DELAY = 1.5


@functools.cache
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def service(name: str) -> dict[str, Any]:
    return compose()["services"][name]


def command(spec: dict[str, Any]) -> list[str]:
    cmd = spec["command"]
    parts = shlex.split(cmd) if isinstance(cmd, str) else [str(part) for part in cmd]
    return [interpolate(part) for part in parts]


# Compose's substitution: $$, $VAR, ${VAR}, ${VAR:-default}, ${VAR-default},
# ${VAR:?error}, ${VAR?error}, ${VAR:+other}, ${VAR+other}.
SUBSTITUTION = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def interpolate(value: str, env: dict[str, str] | os._Environ[str] | None = None) -> str:
    """`value` with compose's variable substitution applied, from `env` (os.environ)."""
    env = os.environ if env is None else env

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        current, op, arg = env.get(name), match["op"], match["arg"]
        if op is None:
            return current or ""  # compose: an unset variable is an empty string
        absent = current is None or (op.startswith(":") and current == "")
        if op.endswith("-"):
            return arg if absent else str(current)
        if op.endswith("+"):
            return "" if absent else arg
        if absent:  # ? and :?
            pytest.fail(f"compose would refuse to start: ${{{name}}} is not set: {arg}")
        return str(current)

    return SUBSTITUTION.sub(substitute, value)


def environment(spec: dict[str, Any]) -> dict[str, str]:
    env = spec.get("environment") or {}
    if isinstance(env, list):  # the KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {key: "" if value is None else interpolate(str(value)) for key, value in env.items()}


def raw_environment(spec: dict[str, Any]) -> dict[str, str]:
    """The `environment` values as written in the file (map form), before substitution."""
    return {key: str(value) for key, value in (spec.get("environment") or {}).items()}


def mounts(spec: dict[str, Any]) -> list[tuple[str, str | None, str]]:
    """The service's `volumes` entries as (type, source, target), short or long form."""
    out = []
    for raw in spec.get("volumes", []):
        if isinstance(raw, dict):
            out.append((raw.get("type", "volume"), raw.get("source"), raw["target"]))
            continue
        parts = str(raw).split(":")
        if len(parts) == 1:  # "/path": an anonymous volume
            out.append(("volume", None, parts[0]))
            continue
        source, target = parts[0], parts[1]
        if source.startswith(("/", ".", "~")):
            out.append(("bind", source, target))
        else:
            out.append(("volume", source, target))
    return out


def named_volumes(spec: dict[str, Any]) -> dict[str, str]:
    """Mount target -> named volume, for the service's named-volume mounts."""
    return {
        target: source
        for kind, source, target in mounts(spec)
        if kind == "volume" and source is not None
    }


def volume_path(value: str, spec: dict[str, Any]) -> tuple[str, PurePosixPath] | None:
    """The named volume holding container path `value`, and the path inside it."""
    path = PurePosixPath(value)
    for target, volume in named_volumes(spec).items():
        root = PurePosixPath(target)
        if path == root or root in path.parents:
            return volume, path.relative_to(root)
    return None


def published_ports(spec: dict[str, Any]) -> list[tuple[str, int, int]]:
    """Short-form port specs "IP:HOST:CONTAINER" as (ip, host_port, container_port)."""
    out = []
    for raw in spec.get("ports", []):
        ip, host_port, container_port = str(raw).split(":")
        out.append((ip, int(host_port), int(container_port.split("/")[0])))
    return out


def localize(value: str, addresses: dict[str, str]) -> str:
    """http://<service>:<port>/... -> http://<that service's loopback address>:<port>/..."""
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname in addresses:
        netloc = addresses[parts.hostname]
        if parts.port is not None:
            netloc += f":{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))
    return value


def local_data_dir(name: str, value: str, volume_dirs: dict[str, Path]) -> str:
    """REPLOG_DATA_DIR inside a volume -> the same place in that volume's local directory."""
    found = volume_path(value, service(name))
    if found is None:
        pytest.fail(
            f"{name}: REPLOG_DATA_DIR={value!r} is in no named volume of the service: in the "
            "container the log would go with the container (and here to that host path)"
        )
    volume, inside = found
    return str(volume_dirs[volume] / inside)


def local_node(
    name: str,
    addresses: dict[str, str],
    volume_dirs: dict[str, Path],
    log_dir: Path,
    overrides: dict[str, str],
) -> Node:
    spec = service(name)
    script, *args = command(spec)
    executable = BIN / script
    assert executable.is_file(), f"{name}: command {script!r} is not a console script in {BIN}"
    env = {}
    for key, value in environment(spec).items():
        if key == "REPLOG_HOST":
            assert value == "0.0.0.0", f"{name} should listen on all interfaces in its container"
            env[key] = addresses[name]
        elif key == "REPLOG_DATA_DIR":
            env[key] = local_data_dir(name, value, volume_dirs)
        else:
            env[key] = localize(value, addresses)
    env.update(overrides)
    assert "REPLOG_DATA_DIR" in env, f"{name}: no REPLOG_DATA_DIR; its log would not be in a volume"
    port = int(env["REPLOG_PORT"])
    return Node(
        name,
        [str(executable), *(localize(arg, addresses) for arg in args)],
        f"http://{addresses[name]}:{port}",
        log_dir / f"{name}.log",
        env=env,
    )


@pytest.fixture
def compose_cluster(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Node]]:
    """Every compose service as a local process, started together in file order."""
    for name in all_env_names():  # a container does not inherit the caller's shell
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)  # whatever a node writes by a relative path stays in tmp
    services = list(compose()["services"])
    addresses = {
        name: address_with_free_port(int(environment(service(name))["REPLOG_PORT"]))
        for name in services
    }
    # Like `docker compose up` creating each named volume: empty, and the service's own.
    volume_dirs = {volume: tmp_path / "volumes" / volume for volume in compose()["volumes"]}
    for directory in volume_dirs.values():
        directory.mkdir(parents=True)
    overrides = {"secondary_slow": {"SECONDARY_DELAY": str(SLOW_DELAY)}}
    nodes = {
        name: local_node(name, addresses, volume_dirs, tmp_path, overrides.get(name, {}))
        for name in services
    }
    try:
        # Like `docker compose up`: no waiting between services (depends_on has no
        # condition); the secondaries retry registration until the master answers.
        for node in nodes.values():
            node.start()
        yield nodes
    finally:
        for node in reversed(nodes.values()):  # secondaries first: no re-registration noise
            node.stop()
        for node in nodes.values():  # shown by pytest only when the test failed
            print(f"----- {node.name} {node.argv} env={node.env}")
            if node.log_path.exists():
                print(node.log_path.read_text(errors="replace")[-4000:])


def healthcheck_argv(name: str, address: str) -> list[str]:
    """The service's HEALTHCHECK command, pointed at its local address."""
    kind, program, *args = service(name)["healthcheck"]["test"]
    assert kind == "CMD" and program == "python", "healthchecks are CMD python -c ..."
    return [sys.executable, *(arg.replace("127.0.0.1", address) for arg in args)]


def test_compose_services_form_a_working_cluster(
    compose_cluster: dict[str, Node], tmp_path: Path
) -> None:
    master = compose_cluster["master"]
    fast = compose_cluster["secondary"]
    slow = compose_cluster["secondary_slow"]

    def both_registered() -> dict | None:
        health = master.health()
        status = {s["id"]: s["status"] for s in health["secondaries"]}
        return health if status == {"secondary": "healthy", "secondary_slow": "healthy"} else None

    health = wait_until(both_registered, timeout=10, what="both secondaries healthy on the master")
    assert health["cluster_size"] == 3  # REPLOG_SECONDARIES=2 reached the master
    # One cluster token, the file's default here, reached every node: internal
    # endpoints refuse requests without it, and the secondaries registered with it.
    tokens = {node.env["REPLOG_CLUSTER_TOKEN"] for node in compose_cluster.values()}
    assert tokens == {DEFAULT_TOKEN}
    for name, node in compose_cluster.items():
        assert node.health()["auth"] is True, name
    assert http.post(master.url + "/register", {"id": "x", "url": fast.url}).status == 401
    # REPLOG_DATA_DIR reached every node: each keeps its log on disk, in its own volume
    # (here a directory under tmp_path, not /data or the repository).
    data_dirs = set()
    for name, node in compose_cluster.items():
        node_health = node.health()
        assert node_health["storage"] == "disk", name
        data_dir = Path(node_health["data_dir"])
        assert data_dir == Path(node.env["REPLOG_DATA_DIR"]), name
        assert data_dir.is_absolute() and data_dir.is_relative_to(tmp_path / "volumes"), name
        data_dirs.add(data_dir)
    assert len(data_dirs) == len(compose_cluster)
    # The master dials each secondary at its SECONDARY_ADVERTISE_URL.
    assert {s["id"]: s["url"] for s in health["secondaries"]} == {
        "secondary": fast.url,
        "secondary_slow": slow.url,
    }

    # w=2: the master and the fast secondary; the slow one is still holding it.
    resp = http.post(master.url + "/", {"message": "hello compose", "w": 2, "id": "c1"})
    assert resp.status == 201, resp
    assert resp.body["acked_by"] == ["master", "secondary"]
    log = master.messages()
    assert [m["message"] for m in log] == ["hello compose"]
    assert fast.messages() == log  # it acknowledged, so it has applied
    assert slow.messages() == []  # lags: SLOW_DELAY has not passed yet
    lag = {s["id"]: s["lag"] for s in master.health()["secondaries"]}
    assert lag == {"secondary": 0, "secondary_slow": 1}

    wait_until(lambda: slow.messages() == log, timeout=10, what="secondary_slow converges")
    wait_until(
        lambda: (
            {s["id"]: s["lag"] for s in master.health()["secondaries"]}
            == {"secondary": 0, "secondary_slow": 0}
        ),
        timeout=5,
        what="the master sees secondary_slow's ack",
    )

    # w=3 waits for the slow secondary too, and every node ends with the same log.
    resp = http.post(master.url + "/", {"message": "all three", "w": 3, "id": "c2"})
    assert resp.status == 201, resp
    assert sorted(resp.body["acked_by"]) == ["master", "secondary", "secondary_slow"]
    log = master.messages()
    assert [m["message"] for m in log] == ["hello compose", "all three"]
    assert fast.messages() == log
    assert slow.messages() == log

    # Restart the master's process on the same data directory (as `docker compose
    # restart master` does on the same volume): it opens with its own log.
    cluster_id = master.health()["cluster_id"]
    assert master.stop() == 0
    master.start()
    wait_until(lambda: master.health(), timeout=15, what="the restarted master serving")
    assert master.messages() == log
    health = master.health()
    assert health["storage"] == "disk" and health["data_dir"] == master.env["REPLOG_DATA_DIR"]
    assert health["cluster_id"] == cluster_id  # the same cluster, not a new empty one
    # The secondaries reattach, and writes carry on after what was there.
    wait_until(both_registered, timeout=15, what="both secondaries back on the restarted master")
    resp = http.post(master.url + "/", {"message": "after restart", "w": 2, "id": "c3"})
    assert resp.status == 201, resp
    log = master.messages()
    assert [m["message"] for m in log] == ["hello compose", "all three", "after restart"]
    assert fast.messages() == log

    # The compose healthchecks (GET /readyz) pass against the running nodes.
    for name, node in compose_cluster.items():
        argv = healthcheck_argv(name, urlsplit(node.url).hostname)
        wait_until(
            lambda argv=argv: subprocess.run(argv, capture_output=True, timeout=10).returncode == 0,
            timeout=5,
            what=f"{name}'s healthcheck",
        )


DEFAULT_TOKEN = "replog-demo-token-change-me"


def test_compose_gives_every_service_one_cluster_token_with_a_documented_default() -> None:
    expected = f"${{REPLOG_CLUSTER_TOKEN:-{DEFAULT_TOKEN}}}"
    for name in SERVICES:
        assert raw_environment(service(name))["REPLOG_CLUSTER_TOKEN"] == expected, name
    assert DEFAULT_TOKEN in COMPOSE_FILE.read_text().split("services:")[0]  # the comments
    readme = (COMPOSE_DIR / "README.md").read_text()
    assert DEFAULT_TOKEN in readme and "REPLOG_CLUSTER_TOKEN" in readme


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${T:-dflt}", {}, "dflt"),
        ("${T:-dflt}", {"T": ""}, "dflt"),
        ("${T:-dflt}", {"T": "mine"}, "mine"),
        ("${T-dflt}", {"T": ""}, ""),
        ("${T-dflt}", {}, "dflt"),
        ("${T:+alt}", {"T": "x"}, "alt"),
        ("${T:+alt}", {"T": ""}, ""),
        ("${T+alt}", {"T": ""}, "alt"),
        ("a$T-${T}b", {"T": "v"}, "av-vb"),
        ("$$T costs $$5", {"T": "v"}, "$T costs $5"),
        ("$UNSET.", {}, "."),
        ("${T:?set it}", {"T": "v"}, "v"),
        ("http://master:5000", {}, "http://master:5000"),
    ],
)
def test_interpolate_resolves_variables_as_compose_does(value, env, expected) -> None:
    assert interpolate(value, env) == expected


def test_interpolate_fails_where_compose_would_refuse() -> None:
    with pytest.raises(pytest.fail.Exception, match="set it"):
        interpolate("${T:?set it}", {"T": ""})


def test_compose_healthchecks_fail_when_the_node_is_down() -> None:
    host = address_with_free_port(5000)
    for name in SERVICES:
        argv = healthcheck_argv(name, host)
        assert subprocess.run(argv, capture_output=True, timeout=30).returncode != 0, name


def test_compose_gives_each_service_a_named_volume_at_its_data_dir() -> None:
    declared = compose().get("volumes") or {}
    owners: dict[str, str] = {}
    for name in SERVICES:
        spec = service(name)
        data_dir = environment(spec).get("REPLOG_DATA_DIR")
        assert data_dir, f"{name}: no REPLOG_DATA_DIR, so its log is not in a volume"
        assert PurePosixPath(data_dir).is_absolute(), name
        assert "REPLOG_IN_MEMORY" not in environment(spec), f"{name}: its log must be on disk"
        # Its REPLOG_DATA_DIR is where a named volume of its own is mounted.
        assert named_volumes(spec).get(data_dir) is not None, (
            f"{name}: no named volume mounted at REPLOG_DATA_DIR={data_dir}: {mounts(spec)}"
        )
        volume = named_volumes(spec)[data_dir]
        assert volume in declared, f"{name}: volume {volume!r} not in the top-level volumes:"
        assert volume_path(data_dir, spec) == (volume, PurePosixPath("."))
        for other_volume in named_volumes(spec).values():
            assert other_volume not in owners, (
                f"{name} and {owners[other_volume]} share volume {other_volume!r}"
            )
            owners[other_volume] = name
    assert set(owners) == set(declared), "every declared volume belongs to one service"


def test_compose_publishes_the_documented_ports() -> None:
    assert set(compose()["services"]) == set(SERVICES)
    for name in SERVICES:
        spec = service(name)
        assert published_ports(spec) == [PUBLISHED[name]], name
        # The published container port is the one the node listens on.
        assert int(environment(spec)["REPLOG_PORT"]) == PUBLISHED[name][2], name
        assert environment(spec)["REPLOG_HOST"] == "0.0.0.0", name


@pytest.mark.parametrize("name", SERVICES)
def test_compose_environment_names_are_ones_the_cli_reads(name: str) -> None:
    spec = service(name)
    script = command(spec)[0]
    unknown = set(environment(spec)) - accepted_env_names(script)
    assert not unknown, f"{name}: {script} does not read {sorted(unknown)}"


def test_compose_wires_the_secondaries_to_the_master() -> None:
    assert environment(service("master"))["REPLOG_SECONDARIES"] == "2"
    master_port = environment(service("master"))["REPLOG_PORT"]
    delays = {"secondary": 0.0, "secondary_slow": 10.0}
    for name in ("secondary", "secondary_slow"):
        env = environment(service(name))
        assert command(service(name)) == ["replog-secondary"]
        assert env["MASTER_URL"] == f"http://master:{master_port}"
        assert env["SECONDARY_ID"] == name
        # The master must reach the secondary by its service name and listen port.
        assert env["SECONDARY_ADVERTISE_URL"] == f"http://{name}:{env['REPLOG_PORT']}"
        assert float(env["SECONDARY_DELAY"]) == delays[name]
    assert command(service("master")) == ["replog-master"]


def test_dockerfile_installs_the_project_for_every_service() -> None:
    dockerfile = DOCKERFILE.read_text()
    instructions = [
        line.strip()
        for line in dockerfile.splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert instructions[0] == "FROM python:3.11-slim"
    assert re.search(r"^RUN pip install --no-cache-dir \.(\s|$)", dockerfile, re.MULTILINE)
    assert "[test]" not in dockerfile and "pytest" not in dockerfile  # no dev dependencies
    # Each volume's mount point exists in the image, owned by the user the container
    # runs as: Docker copies it (ownership too) into an empty named volume, so the
    # node can write its data directory there.
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    for name in SERVICES:
        for target in named_volumes(service(name)):
            made = rf"install -d -o {user[0]} -g {user[1]}( -m 07[0-7]{{2}})? {re.escape(target)}"
            assert re.search(rf"{made}(\s|$)", dockerfile), (
                f"{name}: {target} not made for the user"
            )

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    builds = set()
    for name in SERVICES:
        spec = service(name)
        build = spec["build"]
        context = (COMPOSE_DIR / build["context"]).resolve()
        assert context == ROOT, f"{name}: build context should be the repository root"
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE
        builds.add((build["context"], build["dockerfile"], spec.get("image")))
        assert command(spec)[0] in scripts, f"{name}: not a [project.scripts] entry"
    assert len(builds) == 1, "all services should run one image"

    # Every COPY source exists in the build context.
    for line in instructions:
        if line.startswith("COPY ") and "--from" not in line:
            *sources, _dest = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: not in the build context"
