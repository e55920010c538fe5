"""`make screenshot`: the live cluster page (GET /ui) of a local cluster, as a PNG.

Starts an in-memory master and two secondaries (one with a 10 s --delay, as
`replog up` has), writes a few messages, waits until the slow secondary holds
the first ones and is behind on the last ones, and saves the page at 1280x800
from the same headless Chromium as tests/browser (tools.harness.browser).

    python -m tools.screenshot_ui docs/ui.png
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tools.harness import http
from tools.harness.browser import chromium, unavailable
from tools.harness.net import first_bindable, free_port
from tools.harness.process import NodeProcess, script, stop_all
from tools.harness.waiting import wait_until

SLOW_DELAY = 10.0
FIRST = ["order 1001 created", "order 1001 paid", "order 1002 created", "order 1001 shipped"]
LATER = ["order 1002 paid", "order 1003 created", "order 1002 shipped"]


def start_cluster(workdir: Path) -> list[NodeProcess]:
    host = first_bindable(f"127.0.0.{n}" for n in range(2, 250))
    master_url = f"http://{host}:{free_port(host)}"
    master = NodeProcess(
        "master",
        [
            *script("replog-master", "replog.master"),
            "--host",
            host,
            "--port",
            master_url.rsplit(":", 1)[1],
            "--secondaries",
            "2",
            "--in-memory",
        ],
        master_url,
        workdir / "master.log",
        drop_env_prefix="REPLOG_",
    ).start()
    nodes = [master]
    for name, delay in (("secondary", 0.0), ("secondary_slow", SLOW_DELAY)):
        port = free_port(host)
        argv = [
            *script("replog-secondary", "replog.secondary"),
            "--host",
            host,
            "--port",
            str(port),
            "--master",
            master_url,
            "--id",
            name,
            "--delay",
            str(delay),
            "--in-memory",
        ]
        nodes.append(
            NodeProcess(
                name,
                argv,
                f"http://{host}:{port}",
                workdir / f"{name}.log",
                drop_env_prefix="REPLOG_",
            ).start()
        )
    return nodes


def acked(master: NodeProcess) -> dict[str, int]:
    health = http.get_json(master.url + "/health")
    return {s["id"]: s["acked_seq"] for s in health["secondaries"] if s["status"] == "healthy"}


def write(master: NodeProcess, message: str, w: int, id: int) -> None:
    resp = http.post(master.url + "/", {"message": message, "w": w, "id": id})
    if resp.status != 201:
        raise RuntimeError(f"write {id} answered {resp.status}: {resp.body}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the PNG to write (e.g. docs/ui.png)")
    args = parser.parse_args(argv)
    reason = unavailable()
    if reason is not None:
        print(f"screenshot_ui: {reason}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="replog-screenshot-") as tmp:
        nodes = start_cluster(Path(tmp))
        master = nodes[0]
        driver = None
        try:
            wait_until(lambda: len(acked(master)) == 2, 20, what="both secondaries", watch=nodes)
            for i, message in enumerate(FIRST, 1):
                write(master, message, 2, i)
            wait_until(
                lambda: acked(master).get("secondary_slow") == len(FIRST),
                SLOW_DELAY + 10,
                what="the slow secondary holds the first writes",
            )
            for i, message in enumerate(LATER, len(FIRST) + 1):
                w = 1 if i == len(FIRST) + len(LATER) else 2
                write(master, message, w, i)
            last = len(FIRST) + len(LATER)
            driver = chromium(1280, 800)
            driver.get(master.url + "/ui")
            # The fast secondary holds every write; the slow one is behind by LATER.
            wait_until(
                lambda: driver.execute_script(
                    "const r = (id) => document.querySelector(`#nodes tr[data-node-id=${id}]`);"
                    "return r('secondary') && r('secondary').dataset.ackedSeq === arguments[0]"
                    " && r('secondary_slow').dataset.ackedSeq === arguments[1];",
                    str(last),
                    str(len(FIRST)),
                ),
                10,
                what="the page shows the slow secondary behind",
            )
            args.out.parent.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(args.out))
            print(f"screenshot_ui: wrote {args.out}")
        finally:
            if driver is not None:
                driver.quit()
            stop_all(nodes)
    return 0


if __name__ == "__main__":
    sys.exit(main())
