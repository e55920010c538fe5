"""common.signals and common.process: SIGINT/SIGTERM in each phase of a node's life.

Each case runs a small script in a process of its own (signal dispositions
are process-wide) and checks its exit status, its output and its timing.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

PRELUDE = """
import asyncio, os, signal, sys, threading, time
from replog.common.logs import configure_logging
from replog.common.process import serve_until_signalled, starting
from replog.common.signals import STOP_SIGNALS
STOP_SIGNALS.install()
configure_logging("json", node="t")
"""


def run(body: str, env: dict[str, str] | None = None) -> tuple[int, str, float]:
    began = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    return result.returncode, result.stdout + result.stderr, time.monotonic() - began


def test_a_signal_before_start_up_is_kept_until_starting_then_exits_0():
    code, out, _ = run(
        """
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.2)  # noted, not raised: imports and flags are not interrupted
        print("still running", flush=True)
        with starting():
            print("never opened")
        """
    )
    assert code == 0, out
    assert "still running" in out and "never opened" not in out
    assert '"signal":"SIGTERM","during":"start-up","event":"stopping"' in out
    assert "Traceback" not in out


def test_a_signal_while_starting_stops_at_once():
    code, out, took = run(
        """
        with starting():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(20)  # a long replay, say
            print("replay finished")
        """
    )
    assert code == 0, out
    assert "replay finished" not in out and took < 10
    assert '"signal":"SIGINT","during":"start-up","event":"stopping"' in out
    assert "Traceback" not in out and "KeyboardInterrupt" not in out


SERVING = """
with starting():
    pass

async def start():
    # Delivered to another thread: the loop, idle with no timer, must still wake.
    def send():
        time.sleep(0.3)  # the loop is idle in its poll by now
        signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
    threading.Thread(target=send).start()

async def stop():
    os.kill(os.getpid(), signal.SIGINT)  # a second signal, mid-stop: ignored
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.sleep(0.1)
    print("stop done", flush=True)

from replog.common import loop
loop.run(serve_until_signalled(start, stop))
os.kill(os.getpid(), signal.SIGTERM)  # after the loop closed: ignored too
time.sleep(0.1)
print("exiting", flush=True)
"""


@pytest.mark.parametrize("uvloop", ["1", "0"])
def test_a_signal_while_serving_wakes_the_loop_and_later_ones_are_ignored(uvloop):
    import os

    code, out, took = run(SERVING, env={**os.environ, "REPLOG_UVLOOP": uvloop})
    assert code == 0, out
    assert '"signal":"SIGTERM","event":"stopping"' in out
    assert "stop done" in out and '"event":"stopped"' in out and "exiting" in out
    assert "Traceback" not in out and took < 10
