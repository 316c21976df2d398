"""How `diarq up` stops its children (cli/service.py), with real child processes: each
gets SIGTERM, one that does not stop in time is killed with its process group, and the
exit code says whether any of them failed."""

from __future__ import annotations

import subprocess
import sys
import time

from diarq.cli.service import Child, exit_status, stop_children

IGNORES_TERM = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
EXITS_3_ON_TERM = ("import signal, sys, time; "
                   "signal.signal(signal.SIGTERM, lambda *a: sys.exit(3)); time.sleep(60)")
STOPS_ON_TERM = "import time; time.sleep(60)"


def _child(name: str, code: str) -> Child:
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)
    time.sleep(0.5)  # its signal handler is installed
    return Child(name, proc)


def test_clean_stop_is_exit_0():
    children = [_child("api", STOPS_ON_TERM), _child("worker", STOPS_ON_TERM)]
    stop_children(children, grace_s=5, hand_back=lambda c: [])
    assert [c.proc.returncode for c in children] == [-15, -15]
    assert exit_status(children) == 0


def test_worker_past_its_grace_is_killed_and_its_job_handed_back():
    handed: list[str] = []
    children = [_child("api", STOPS_ON_TERM), _child("worker", IGNORES_TERM)]
    t0 = time.monotonic()
    stop_children(children, grace_s=1, hand_back=lambda c: handed.append(c.name) or ["j1"])
    assert time.monotonic() - t0 < 30
    worker = children[1]
    assert worker.killed and worker.handed_back == ["j1"] and handed == ["worker"]
    assert exit_status(children) == 0  # its job went back to the queue: nothing failed


def test_a_child_failing_or_killed_makes_the_exit_code_non_zero():
    failing = [_child("api", STOPS_ON_TERM), _child("worker", EXITS_3_ON_TERM)]
    stop_children(failing, grace_s=5, hand_back=lambda c: [])
    assert failing[1].proc.returncode == 3 and failing[1].failed
    assert exit_status(failing) == 1
    stuck_api = [_child("api", IGNORES_TERM), _child("worker", STOPS_ON_TERM)]
    stop_children(stuck_api, grace_s=5, hand_back=lambda c: [], api_stop_s=1)
    assert stuck_api[0].killed and stuck_api[0].failed
    assert exit_status(stuck_api) == 1
