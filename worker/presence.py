"""The worker's own row in the ``workers`` table (shared/workers.py), kept by its main
process: registered before the pool forks, a heartbeat thread while it runs,
``ready`` or the models' error as its pool processes report them, ``stopped`` at exit.

Pool processes do not write the row: each one reports once, through a pipe the main
process opened before forking, whether its models loaded (and which) or the error
code and redacted message that stops the worker. A line of JSON below PIPE_BUF bytes
is written atomically, so reports of several pool processes never interleave.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import select
import socket
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from diarq.shared import workers
from diarq.shared.db import session_scope
from diarq.shared.redact import redact
from diarq.shared.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# a report longer than this is cut (PIPE_BUF is at least 512 bytes by POSIX; Linux 4096)
MAX_REPORT_BYTES = 4000
MODEL_LOAD_FAILED_CODE = "model_load_failed"
# registering and the last write retry this long when the database is away
WRITE_RETRY_S = 10.0


class Presence:
    """One worker's row (name = its Celery node name)."""

    def __init__(self, settings: Settings, *, name: str, queues: Sequence[str],
                 concurrency: int) -> None:
        self.settings = settings
        self.name = name
        self.queues = list(queues)
        self.concurrency = concurrency
        self.failure: tuple[str, str] | None = None
        self._read_fd, self.write_fd = os.pipe()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="diarq-presence", daemon=True)

    # --- main process ----------------------------------------------------------------
    def register(self) -> None:
        """Before the pool forks: the worker exists (``starting``)."""
        self._write(lambda s: workers.register(
            s, name=self.name, host=socket.gethostname(), pid=os.getpid(),
            queues=self.queues, concurrency=self.concurrency,
            profile=self.settings.profile), "register", retry_s=WRITE_RETRY_S)

    def start(self) -> None:
        self._thread.start()

    def stop(self, exitcode: object = None) -> None:
        """At worker shutdown: last reports, then ``stopped`` (with the error that made it
        exit, so that a stopped worker's reason stays visible)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._read_reports(timeout=0)
        if exitcode == os.EX_CONFIG and self.failure is None:
            # the pool process died before it could say why
            self._record_failure(MODEL_LOAD_FAILED_CODE,
                                 "the worker could not load its models; run `diarq doctor` "
                                 "on the worker machine")
        self._write(lambda s: workers.mark_stopped(s, self.name), "stopped",
                    retry_s=WRITE_RETRY_S)
        for fd in (self._read_fd, self.write_fd):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _run(self) -> None:
        interval = self.settings.heartbeat_interval_s
        while not self._stop.is_set():
            self._read_reports(timeout=interval)
            if not self._stop.is_set():
                self._write(lambda s: workers.heartbeat(s, self.name), "heartbeat")

    def _read_reports(self, timeout: float) -> None:
        try:
            ready, _, _ = select.select([self._read_fd], [], [], timeout)
            if not ready:
                return
            data = os.read(self._read_fd, 65536)
        except OSError:
            return
        for line in data.decode("utf-8", "replace").splitlines():
            try:
                report = json.loads(line)
            except ValueError:
                continue
            if report.get("ok"):
                self._write(lambda s, r=report: workers.mark_ready(
                    s, self.name, models=r.get("models"), device=r.get("device")), "ready")
            else:
                self._record_failure(str(report.get("code") or MODEL_LOAD_FAILED_CODE),
                                     str(report.get("message") or ""))

    def _record_failure(self, code: str, message: str) -> None:
        if self.failure is None:
            self.failure = (code, message)
        self._write(lambda s: workers.mark_failed(s, self.name, code, message), "error",
                    retry_s=WRITE_RETRY_S)

    def _write(self, write: Callable[[Any], T], what: str, retry_s: float = 0.0) -> T | None:
        """One short transaction; the registry is best effort (a database blip must not
        stop the worker), but the writes that say why it stops retry a while."""
        from diarq.worker.execution import with_db_retry

        def once() -> T:
            with session_scope(self.settings) as session:
                return write(session)

        try:
            return with_db_retry(once, f"worker registry {what}", retry_for_s=retry_s)
        except Exception as exc:  # noqa: BLE001
            log.warning("worker registry %s failed error=%s", what, type(exc).__name__)
            return None


# --- pool processes ------------------------------------------------------------------

def report(write_fd: int, payload: dict[str, Any]) -> None:
    """A pool process tells the main process how its model load went (one JSON line)."""
    if "message" in payload:
        payload = {**payload, "message": redact(str(payload["message"]))}
    line = json.dumps(payload, separators=(",", ":"), default=str).encode()
    if len(line) > MAX_REPORT_BYTES:
        payload = {**payload, "models": None}
        if "message" in payload:
            payload["message"] = str(payload["message"])[:MAX_REPORT_BYTES // 2]
        line = json.dumps(payload, separators=(",", ":"), default=str).encode()
    try:
        os.write(write_fd, line + b"\n")
    except OSError:
        log.warning("could not report the model load to the worker's main process")
