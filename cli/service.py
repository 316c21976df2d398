"""Service commands: `diarq db upgrade`, `diarq api`, `diarq worker`, `diarq up`."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import click

from diarq.shared.errors import ConfigError
from diarq.shared.settings import Settings, get_settings

# runs `diarq ...` in a child with the same interpreter, wherever the script lives
DIARQ = [sys.executable, "-c", "from diarq.cli import main; main()"]


@click.group("db")
def db_group() -> None:
    """Database schema (Alembic migrations)."""


@db_group.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Apply migrations to DIARQ_DATABASE_URL (PostgreSQL or SQLite)."""
    from diarq.shared.db import upgrade

    upgrade(get_settings(), revision)
    click.echo("database is at the latest schema", err=True)


@click.command("api")
@click.option("--host", help="Bind address (default: DIARQ_HOST).")
@click.option("--port", type=int, help="Port (default: DIARQ_PORT, 3001).")
@click.option("--workers", type=int, help="gunicorn processes (default: DIARQ_API_WORKERS).")
def api_cmd(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the HTTP API with gunicorn (production)."""
    settings = get_settings()  # invalid configuration fails here, with what to set
    from diarq.api.auth import check_auth_exposure

    check_auth_exposure(settings, host or settings.host)  # no open API on a public address
    if host:
        os.environ["DIARQ_HOST"] = host  # the app checks the address it is really bound to
    _check_db(settings)
    argv = gunicorn_argv(settings, f"{host or settings.host}:{port or settings.port}",
                         workers or settings.api_workers)
    os.execve(sys.executable, argv, api_environ(os.environ))


def gunicorn_argv(settings: Settings, bind: str, workers: int,
                  app: str = "diarq.api.wsgi:app") -> list[str]:
    """How `diarq api` runs gunicorn (bench/queue_load.py --parsers serves other apps
    the same way)."""
    return [
        sys.executable, "-m", "gunicorn",
        "--bind", bind,
        "--workers", str(workers),
        "--worker-class", "gthread", "--threads", str(settings.api_threads),
        "--timeout", "600",  # large uploads on slow links
        "--graceful-timeout", "10",
        "--log-level", settings.log_level.lower(),
        app,
    ]


# Environment defaults of the API processes (the operator's values win):
# - glibc malloc: each upload passes through several 1 MiB buffers (gunicorn's body
#   reads, the parser's reads); above glibc's default 128 KiB threshold each one is a
#   fresh mmap, page-faulted, zeroed and unmapped again (about a third of the API's CPU
#   was kernel time). Kept in the heap instead, they are reused: a few MB more resident
#   per process.
# - OpenBLAS (numpy, imported by the probe's fallback module) starts one spinning thread
#   per core in every API process; the API does no linear algebra.
API_ENV_DEFAULTS = {"MALLOC_MMAP_THRESHOLD_": str(16 << 20),
                    "MALLOC_TRIM_THRESHOLD_": str(64 << 20),
                    "OPENBLAS_NUM_THREADS": "1"}


def api_environ(environ: Mapping[str, str]) -> dict[str, str]:
    """The environment `diarq api` runs gunicorn with (the operator's values win)."""
    return {**API_ENV_DEFAULTS, **environ}


@click.command("worker")
@click.option("--queues", "-Q", help="Comma-separated queues (default: DIARQ_WORKER_QUEUES).")
@click.option("--concurrency", "-c", type=int,
              help="Processes (default: DIARQ_WORKER_CONCURRENCY; one per GPU).")
@click.option("--hostname", "-n", help="Worker name (default: diarq@<host>-<pid>).")
@click.option("--loglevel", "-l", default=None, help="Log level (default: DIARQ_LOG_LEVEL).")
@click.option("--gpus", default=None, metavar="0,1,...",
              help="Start one worker process per GPU (CUDA_VISIBLE_DEVICES=<id>, "
                   "DIARQ_DEVICE=cuda, concurrency 1, default queue gpu).")
def worker_cmd(queues: str | None, concurrency: int | None, hostname: str | None,
               loglevel: str | None, gpus: str | None) -> None:
    """Run a Celery worker; models load once per process, after fork."""
    settings = get_settings()
    _check_db(settings)
    if gpus is not None:
        plan = gpu_worker_plan(gpus, queues=queues, hostname=hostname, loglevel=loglevel,
                               concurrency=concurrency, device=os.environ.get("DIARQ_DEVICE"))
        sys.exit(_supervise(plan))
    from diarq.worker.tasks import app

    argv = [
        "worker",
        "--queues", with_webhook_queue(queues or settings.worker_queues),
        "--concurrency", str(concurrency or settings.worker_concurrency),
        "--hostname", hostname or f"diarq@{socket.gethostname()}-{os.getpid()}",
        "--loglevel", (loglevel or settings.log_level).upper(),
        "--without-mingle", "--without-gossip",
    ]
    # app.worker_main drops the worker's exit code (e.g. 78: a pool process could not
    # load its models); the worker passes it to worker_shutdown, and it is ours too
    from celery import signals

    codes: list[object] = []
    signals.worker_shutdown.connect(
        lambda sender=None, **_: codes.append(getattr(sender, "exitcode", None)), weak=False)
    app.worker_main(argv)
    if codes and codes[-1]:
        sys.exit(codes[-1])


def gpu_worker_plan(gpus: str, *, queues: str | None = None, hostname: str | None = None,
                    loglevel: str | None = None, concurrency: int | None = None,
                    device: str | None = None) -> list[tuple[list[str], dict[str, str]]]:
    """``diarq worker --gpus 0,1``: one (argv, extra environment) per GPU. Each child is a
    whole ``diarq worker`` that sees only its GPU, so its models load once on that GPU."""
    ids = [g.strip() for g in gpus.split(",") if g.strip()]
    if not ids or len(set(ids)) != len(ids):
        raise ConfigError(f"--gpus {gpus!r}: give distinct GPU ids separated by commas, e.g. "
                          "--gpus 0,1")
    if concurrency not in (None, 1):
        raise ConfigError("--gpus runs one process per GPU: leave out --concurrency")
    if device not in (None, "", "cuda", "auto"):
        raise ConfigError(f"--gpus with DIARQ_DEVICE={device}: unset DIARQ_DEVICE or set cuda")
    base = hostname or f"diarq@{socket.gethostname()}-{os.getpid()}"
    plan = []
    for gpu in ids:
        argv = ["worker", "--queues", queues or "gpu", "--concurrency", "1",
                "--hostname", f"{base}-gpu{gpu}"]
        if loglevel:
            argv += ["--loglevel", loglevel]
        plan.append((argv, {"CUDA_VISIBLE_DEVICES": gpu, "DIARQ_DEVICE": "cuda"}))
    return plan


def _supervise(plan: list[tuple[list[str], dict[str, str]]]) -> int:
    """Run the children until one stops; then stop the others and return its exit code
    (so an orchestrator restarts the set, e.g. after 78: models could not be loaded)."""
    children = [Child("worker", subprocess.Popen(DIARQ + argv, env={**os.environ, **env},
                                                 start_new_session=True))
                for argv, env in plan]
    procs = [c.proc for c in children]
    stopping: list[int] = []

    def _forward(signum: int, _frame: object) -> None:
        stopping.append(signum)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _forward)
    try:
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    finally:
        first = next((p for p in procs if p.poll() is not None), None)
        code = first.returncode if first is not None else 0
        # warm shutdown: running jobs may finish; a worker killed after that leaves its job
        # to the reaper (its heartbeat goes stale), as a lost machine would
        stop_children(children, grace_s=600 if stopping else 30, hand_back=lambda _c: [])
    return 0 if stopping and code in (0, -signal.SIGTERM) else code


def with_webhook_queue(queues: str) -> str:
    """Every worker also delivers webhooks (short HTTP calls on their own queue)."""
    from diarq.shared.celery_app import WEBHOOK_QUEUE

    names = [q.strip() for q in queues.split(",") if q.strip()]
    return ",".join(names if WEBHOOK_QUEUE in names else [*names, WEBHOOK_QUEUE])


def _check_db(settings: Settings) -> None:
    from diarq.shared.db import check_database

    try:
        check_database(settings)
    except Exception as exc:
        raise ConfigError(
            f"cannot reach the database ({type(exc).__name__}); check DIARQ_DATABASE_URL and "
            "run `diarq db upgrade`"
        ) from None


def _spawn(args: list[str], env: dict[str, str], log: int) -> subprocess.Popen:
    # own process group, so stopping it also stops its children (gunicorn/celery pools);
    # output goes to ``log`` (stderr or a file): stdout carries only what `up --demo` prints
    return subprocess.Popen(DIARQ + args, env=env, start_new_session=True,
                            stdout=log, stderr=subprocess.STDOUT)


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# signals that stop `diarq up` (kill, systemd and docker send SIGTERM; a closed terminal
# SIGHUP; Ctrl-C SIGINT): each one stops the children first
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
API_STOP_S = 15  # gunicorn's graceful timeout is 10 s


class _Stopped(Exception):  # noqa: N818 - a request to stop, not an error
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum: int, _frame: object) -> None:
    raise _Stopped(signum)


@dataclass
class Child:
    """A service process of `diarq up`: its name, process, and how it ended."""

    name: str
    proc: subprocess.Popen
    killed: bool = False
    handed_back: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        """Exited on its own with an error, or had to be killed; a worker killed after
        its grace time whose job went back to the queue did not fail."""
        if self.killed:
            return self.name != "worker"
        return self.proc.returncode not in (0, -signal.SIGTERM)


def stop_children(children: list[Child], *, grace_s: float,
                  hand_back: Callable[[Child], list[str]], api_stop_s: float = API_STOP_S) -> None:
    """SIGTERM to each child's main process only (gunicorn and celery then stop their
    own children cleanly: the worker finishes its running job); a child still there
    after its time (the worker: ``grace_s``) is killed with its process group, and the
    worker's unfinished job is handed back to the queue (``hand_back``)."""
    for child in children:
        if child.proc.poll() is None:
            child.proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    for child in children:
        limit = grace_s if child.name == "worker" else api_stop_s
        try:
            child.proc.wait(timeout=max(0.1, start + limit - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.killed = True
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.proc.pid, signal.SIGKILL)
            child.proc.wait()
            if child.name == "worker":
                child.handed_back = hand_back(child)


def exit_status(children: list[Child]) -> int:
    """0 when every child stopped cleanly, 1 when one failed (the summary says which)."""
    return 1 if any(c.failed for c in children) else 0


def _hand_back_jobs(settings: Settings, worker_name: str) -> list[str]:
    """The jobs a killed worker was running go back to ``queued`` and are enqueued again;
    its row says it stopped."""
    from sqlalchemy import select

    from diarq.shared import jobs, workers
    from diarq.shared.celery_app import enqueue_job, make_celery
    from diarq.shared.db import session_scope
    from diarq.shared.orm import Job

    with session_scope(settings) as session:
        ids = jobs.hand_back(session, worker_name)
        workers.mark_stopped(session, worker_name)
        todo = session.execute(
            select(Job.id, Job.queue, Job.audio_duration, Job.priority)
            .where(Job.id.in_(ids))).all()
    app = make_celery(settings)
    for row in todo:
        enqueue_job(app, settings, row.id, queue=row.queue, audio_seconds=row.audio_duration,
                    priority=row.priority)
    return ids


def _wait_ready(url: str, procs: list[subprocess.Popen], timeout_s: float = 60) -> None:
    import requests

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise ConfigError(f"a service process exited at start (code {p.returncode}); "
                                  "see the messages above")
        try:
            if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise ConfigError(f"the API did not become ready at {url} within {timeout_s:.0f} s")


@click.command("up")
@click.option("--port", type=int, help="API port (default: DIARQ_PORT, 3001).")
@click.option("--demo", "demo", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Submit this recording, print who said what, then stop.")
@click.option("--format", "fmt", default="txt", show_default=True,
              type=click.Choice(["json", "srt", "vtt", "txt", "tsv", "rttm"]),
              help="Format printed by --demo.")
def up_cmd(port: int | None, demo: Path | None, fmt: str) -> None:
    """Everything on this machine: migrations, the API and one worker.

    Defaults need no external service: SQLite, local storage and a filesystem broker
    under var/. Point DIARQ_DATABASE_URL / DIARQ_BROKER_URL elsewhere to use real ones.
    API keys are off here (single user on 127.0.0.1) unless DIARQ_AUTH=on is set; then
    clients, --demo included, send DIARQ_API_KEY.
    """
    from diarq.shared.db import upgrade

    settings = get_settings()
    upgrade(settings)
    port = port or settings.port
    url = f"http://{settings.host}:{port}"
    env = dict(os.environ, DIARQ_PORT=str(port), PYANNOTE_METRICS_ENABLED="0")
    # the embedded single-user mode needs no key unless DIARQ_AUTH is set explicitly;
    # the API still refuses auth off on a non-loopback DIARQ_HOST (api/auth.py)
    env.setdefault("DIARQ_AUTH", "off")
    # a demo shows the progress bar and the transcript; the services' own log lines go
    # to a file (shown if something fails). A long-running `up` logs to stderr.
    log_path = settings.data_dir / "logs" / "up-demo.log" if demo else None
    if log_path:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "w") if log_path else None  # noqa: SIM115 - closed below
    log_fd = log_file.fileno() if log_file else sys.stderr.fileno()
    # a stop signal becomes an exception in this (main) thread, wherever it waits
    previous = {sig: signal.signal(sig, _raise_stopped) for sig in STOP_SIGNALS}
    worker_name = f"diarq-up@{socket.gethostname()}-{os.getpid()}"
    children: list[Child] = []
    stopped_by: _Stopped | None = None
    try:
        children = [
            Child("api", _spawn(["api", "--port", str(port), "--workers", "1"], env, log_fd)),
            Child("worker", _spawn(["worker", "--concurrency", "1", "--hostname", worker_name],
                                   env, log_fd)),
        ]
        procs = [c.proc for c in children]
        _wait_ready(url, procs)
        click.echo(f"diarq is up: API {url}  (Ctrl-C stops it)", err=True)
        if demo is None:
            while all(p.poll() is None for p in procs):
                time.sleep(1)
            raise ConfigError("a service process stopped; see the messages above")
        click.echo(f"service logs: {log_path}", err=True)
        _run_demo(url, demo, fmt, alive=lambda: all(p.poll() is None for p in procs))
    except _Stopped as stop:
        stopped_by = stop
        click.echo(f"stopping ({stop}): the worker finishes its job (at most "
                   f"{settings.stop_grace_s:.0f} s, then hands it back)", err=True)
    except Exception:
        if log_path:
            click.echo(f"--- last lines of {log_path} ---\n{_log_tail(log_path)}", err=True)
        raise
    finally:
        # a second signal while stopping must not cut the stop short
        for sig in STOP_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)
        try:
            stop_children(children, grace_s=settings.stop_grace_s,
                          hand_back=lambda _child: _hand_back_jobs(settings, worker_name))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            if log_file:
                log_file.close()
    if stopped_by is not None:
        _report_stop(children)
        sys.exit(exit_status(children))


def _report_stop(children: list[Child]) -> None:
    parts = []
    for c in children:
        how = "killed" if c.killed else f"exit {c.proc.returncode}"
        if c.handed_back:
            how += f", {len(c.handed_back)} job(s) handed back to the queue"
        parts.append(f"{c.name} {how}{' (failed)' if c.failed else ''}")
    click.echo("stopped: " + "; ".join(parts), err=True)


def _run_demo(url: str, path: Path, fmt: str, alive: Callable[[], bool]) -> None:
    from diarq.cli.client import explain_failure, get_result, submit_file, wait_for

    job = submit_file(url, path, {})
    click.echo(f"submitted {path.name} as job {job['id']}", err=True)
    done = wait_for(url, job["id"], alive=alive)
    if done["status"] != "succeeded":
        raise explain_failure(done)
    click.echo(get_result(url, job["id"], fmt), nl=False)


def register(group: click.Group) -> None:
    group.add_command(db_group)
    group.add_command(api_cmd)
    group.add_command(worker_cmd)
    group.add_command(up_cmd)
