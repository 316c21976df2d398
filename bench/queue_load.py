"""Queue and API overhead on real Redis + PostgreSQL (127.0.0.1 only).

    .venv/bin/python bench/queue_load.py [--jobs 200] [--submits 200] [--real-jobs 50]

1. per-job overhead with a bench-trivial worker (pipeline = no-op): submit->running and
   running->succeeded, p50/p99, jobs submitted one at a time;
2. API submit throughput through gunicorn (`diarq api`) with 1, 8 and 32 concurrent
   clients uploading a 1 MB WAV (the worker is stopped during this phase so it measures
   the API: upload, hash, ffprobe, INSERT, enqueue);
3. worker RSS after each of N real offline-pipeline jobs (needs `diarq models prepare`).
4. ``--storage-compare``: submit throughput at 8 clients with the local storage backend
   and with S3 on 127.0.0.1 (``--s3-server``: moto in server mode, s3rver, or both),
   alternating rounds in one run so all see the same machine load; prints the S3/local
   ratio (target >= 0.8), the CPU per submit of the API and of the S3 server, and the
   ratio of the API's CPU per submit (what an API-bound deployment with the store on
   other machines would see).

``--parsers diarq,werkzeug,multipart`` instead compares multipart parsers (phase 2 at 8
clients, interleaved rounds; bench/upload_parsers.py).

Creates a scratch database diarq_bench_<random> and a Redis key prefix, drops both at the
end. Every loop is bounded; the script stops by itself.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from urllib.parse import urlparse

import psycopg
import redis
import requests

ROOT = Path(__file__).resolve().parent.parent
DIARQ = [sys.executable, "-c", "from diarq.cli import main; main()"]
PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def ts(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_wav(path: Path, seconds: float) -> Path:
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(path), "synth",
                    str(seconds), "sine", "440", "vol", "0.3"], check=True)
    return path


class Proc:
    def __init__(self, args: list[str], env: dict[str, str], log: Path):
        self.log = log
        self._fh = open(log, "w")  # noqa: SIM115
        self.p = subprocess.Popen(DIARQ + args, env=env, cwd=ROOT, stdout=self._fh,
                                  stderr=subprocess.STDOUT, start_new_session=True)

    def wait_log(self, marker: str, timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if marker in self.log.read_text(errors="replace"):
                return
            if self.p.poll() is not None:
                raise SystemExit(f"process exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.2)
        raise SystemExit(f"timed out waiting for {marker!r} in {self.log}")

    def stop(self) -> None:
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        self._fh.close()


def wait_status(url: str, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = requests.get(f"{url}/v1/jobs/{job_id}", timeout=10).json()
        if job["status"] in ("succeeded", "failed", "canceled"):
            return job
        time.sleep(0.02)
    raise SystemExit(f"job {job_id} did not finish in {timeout} s")


def submit(session: requests.Session, url: str, path: Path) -> dict:
    with open(path, "rb") as fh:
        resp = session.post(f"{url}/v1/jobs", files={"file": (path.name, fh)}, timeout=60)
    if resp.status_code != 202:
        raise SystemExit(f"submit failed: {resp.status_code} {resp.text[:300]}")
    return resp.json()


def phase_overhead(url: str, wav: Path, n: int) -> None:
    to_running, to_done, total = [], [], []
    s = requests.Session()
    for _ in range(n):
        job = wait_status(url, submit(s, url, wav)["id"])
        if job["status"] != "succeeded":
            raise SystemExit(f"job failed: {job['error']}")
        c, r, f = ts(job["created_at"]), ts(job["started_at"]), ts(job["finished_at"])
        to_running.append((r - c).total_seconds() * 1000)
        to_done.append((f - r).total_seconds() * 1000)
        total.append((f - c).total_seconds() * 1000)
    print(f"\n[1] per-job overhead, bench-trivial worker (sleep 0), {n} jobs one at a time")
    for name, v in (("submit->running", to_running), ("running->succeeded", to_done),
                    ("submit->succeeded", total)):
        print(f"    {name:20s} p50 {pct(v, 50):7.1f} ms   p99 {pct(v, 99):7.1f} ms   "
              f"mean {statistics.mean(v):7.1f} ms")


def process_tree(pids: list[int]) -> Iterator[int]:
    """These processes and their live children, grandchildren... (from /proc)."""
    seen: set[int] = set()
    todo = list(pids)
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        yield pid
        try:
            todo += [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
        except OSError:
            continue


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of these processes and their live children (from /proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in process_tree(pids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def multipart_body(path: Path, field: str = "file") -> tuple[bytes, str]:
    """A complete multipart/form-data body with one file part, and its Content-Type."""
    boundary = f"diarqbench{uuid.uuid4().hex}"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
            f"filename=\"{path.name}\"\r\nContent-Type: audio/wav\r\n\r\n").encode()
    body = head + path.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class RawSubmitter:
    """One keep-alive connection sending a prebuilt multipart body: ~0.3 ms of client CPU
    per 1 MB submit instead of ~2.5 ms with requests building the body each time (real
    clients run elsewhere; on this 2-core machine the client shares the API's cores)."""

    def __init__(self, url: str, body: bytes, content_type: str):
        parsed = urlparse(url)
        self.conn = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=60)
        self.body = body
        self.headers = {"Content-Type": content_type, "Content-Length": str(len(body))}

    def submit(self) -> None:
        self.conn.request("POST", "/v1/jobs", body=self.body, headers=self.headers)
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.status != 202:
            raise SystemExit(f"submit failed: {resp.status} {data[:300]!r}")
        if b'"id"' not in data:
            raise SystemExit(f"submit answered without a job id: {data[:300]!r}")


def phase_throughput(url: str, wav: Path, per_level: int, server_pids: list[int],
                     client: str = "raw") -> None:
    print(f"\n[2] API submit throughput through gunicorn, 1 MB WAV, {per_level} submits per "
          f"level (worker stopped; {client} client)")
    for clients in (1, 8, 32):
        c0, s0 = time.process_time(), cpu_seconds(server_pids)
        latencies, errors, wall = _level(url, wav, clients, per_level, client)
        client_ms = (time.process_time() - c0) / per_level * 1000
        server_ms = (cpu_seconds(server_pids) - s0) / per_level * 1000
        print(f"    {clients:2d} clients: {per_level / wall:7.1f} submits/s   latency p50 "
              f"{pct(latencies, 50):7.1f} ms  p99 {pct(latencies, 99):7.1f} ms   "
              f"errors {len(errors)}   CPU/submit: API {server_ms:.1f} ms, "
              f"bench client {client_ms:.1f} ms")


def _level(url: str, wav: Path, clients: int, total: int,
           client: str = "raw") -> tuple[list[float], list[str], float]:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    counter = iter(range(total))
    body, content_type = multipart_body(wav)

    def run() -> None:
        if client == "raw":
            raw = RawSubmitter(url, body, content_type)
            send = raw.submit
        else:
            s = requests.Session()
            send = lambda: submit(s, url, wav)  # noqa: E731
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            t0 = time.perf_counter()
            try:
                send()
            except (SystemExit, requests.RequestException, OSError,
                    http.client.HTTPException) as exc:
                errors.append(str(exc))
                if client == "raw":  # a fresh connection for the next one
                    raw.conn.close()
            with lock:
                latencies.append((time.perf_counter() - t0) * 1000)

    threads = [threading.Thread(target=run) for _ in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - t0


def phase_parsers(env: dict[str, str], tmp: Path, parsers: list[str], rounds: int,
                  submits: int) -> None:
    """Submits/s at 8 clients through gunicorn with each multipart parser of
    bench/upload_parsers.py, interleaved round by round (the machine's load drifts:
    each round compares the parsers within a minute of each other)."""
    from diarq.cli.service import api_environ, gunicorn_argv
    from diarq.shared.settings import load_settings

    print(f"\n[parsers] 8 clients, 1 MB WAV, {submits} submits per run, {rounds} rounds "
          f"(worker stopped; same gunicorn layout as `diarq api`)")
    one_mb = make_wav(tmp / "1mb.wav", 32.77)
    rates: dict[str, list[float]] = {name: [] for name in parsers}
    api_cpu: dict[str, list[float]] = {name: [] for name in parsers}
    for r in range(rounds):
        for name in parsers:
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            settings = load_settings()  # DIARQ_API_THREADS of this process, as `diarq api`
            argv = gunicorn_argv(settings, f"127.0.0.1:{port}", 2, app="upload_parsers:app")
            argv[3:3] = ["--chdir", str(ROOT / "bench")]
            log = open(tmp / f"api-{name}-{r}.log", "w")  # noqa: SIM115
            p = subprocess.Popen(argv, env=api_environ({**env, "BENCH_UPLOAD_PARSER": name}),
                                 stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
            try:
                wait_healthy(url)
                _level(url, one_mb, 8, 20)  # warm-up: imports, buffers, connections
                s0 = cpu_seconds([p.pid])
                _, errors, wall = _level(url, one_mb, 8, submits)
                cpu_ms = (cpu_seconds([p.pid]) - s0) / submits * 1000
            finally:
                p.terminate()
                p.wait(timeout=30)
                log.close()
            if errors:
                raise SystemExit(f"{name}: {len(errors)} errors, first: {errors[0][:300]}")
            rates[name].append(submits / wall)
            api_cpu[name].append(cpu_ms)
            print(f"    round {r + 1} {name:9s} {submits / wall:7.1f} submits/s   API CPU "
                  f"{cpu_ms:.1f} ms/submit")
    base = parsers[0]
    print("    median over rounds:")
    for name in parsers:
        ratio = statistics.median(a / b for a, b in zip(rates[name], rates[base], strict=True))
        print(f"    {name:9s} {statistics.median(rates[name]):7.1f} submits/s   API CPU "
              f"{statistics.median(api_cpu[name]):.1f} ms/submit   x{ratio:.2f} of {base} "
              "(median of per-round ratios)")


# s3rver (npm) is installed on first use into this git-ignored folder, at the version
# measured in BENCHMARKS.md
S3RVER = "s3rver@3.7.1"
S3RVER_DIR = ROOT / "bench" / ".s3rver"
S3_SERVERS = ("moto", "s3rver")


def s3rver_script() -> Path:
    """s3rver's command-line script, installed with npm when missing."""
    script = S3RVER_DIR / "node_modules" / "s3rver" / "bin" / "s3rver.js"
    if not script.is_file():
        if not (shutil.which("npm") and shutil.which("node")):
            raise SystemExit("s3rver needs Node.js and npm (apt-get install nodejs npm)")
        subprocess.run(["npm", "install", "--prefix", str(S3RVER_DIR), "--no-audit",
                        "--no-fund", "--silent", S3RVER], check=True)
    return script


@contextmanager
def s3_server(kind: str, tmp: Path) -> Iterator[tuple[dict[str, str], int]]:
    """An S3 server on a free loopback port with a fresh bucket ``diarq-bench``: moto in
    server mode (one Python process, objects in memory) or s3rver (one Node.js process,
    objects in files under ``tmp``). Yields (the environment of a diarq process storing
    there, the server's pid)."""
    import boto3

    port = free_port()
    if kind == "moto":
        creds = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}
        argv = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    elif kind == "s3rver":
        # s3rver's built-in account (it accepts no other)
        creds = {"AWS_ACCESS_KEY_ID": "S3RVER", "AWS_SECRET_ACCESS_KEY": "S3RVER"}
        argv = ["node", str(s3rver_script()), "-d", str(tmp / f"s3rver-{port}"),
                "-a", "127.0.0.1", "-p", str(port), "--silent"]
    else:
        raise SystemExit(f"unknown S3 server {kind!r} (one of {', '.join(S3_SERVERS)})")
    creds |= {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}
    log_path = tmp / f"{kind}-{port}.log"
    log = open(log_path, "w")  # noqa: SIM115
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, **creds}, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                          aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                          aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"])
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.create_bucket(Bucket="diarq-bench")
                break
            except Exception:  # noqa: BLE001 - not listening yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit(f"{kind} did not start: "
                                     f"{log_path.read_text()[-2000:]}") from None
                time.sleep(0.2)
        yield {"DIARQ_STORAGE_URL": "s3://diarq-bench/bench", "DIARQ_S3_ENDPOINT_URL": url,
               **creds}, proc.pid
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        log.close()


def phase_storage_compare(env: dict[str, str], tmp: Path, submits: int, rounds: int = 3,
                          servers: tuple[str, ...] = ("moto",)) -> None:
    """Local vs S3 backend: API submits/s at 8 clients, 1 MB WAV, rounds alternating."""
    print(f"\n[4] storage backends: submits/s at 8 clients, 1 MB WAV, {submits} submits per "
          f"round, {rounds} rounds each, alternating (S3: {' and '.join(servers)} on "
          "127.0.0.1, sharing the cores)")
    one_mb = make_wav(tmp / "1mb-s3.wav", 32.77)
    names = ["local"] + [f"s3/{kind}" for kind in servers]
    rates: dict[str, list[float]] = {name: [] for name in names}
    api_cpu: dict[str, list[float]] = {name: [] for name in names}
    store_cpu: dict[str, list[float]] = {name: [] for name in names}
    with contextlib.ExitStack() as stack:
        backends: list[tuple[str, dict[str, str], list[int]]] = [("local", {}, [])]
        for kind in servers:
            extra, pid = stack.enter_context(s3_server(kind, tmp))
            backends.append((f"s3/{kind}", extra, [pid]))
        for n in range(rounds):
            for name, extra, server in backends:
                port = free_port()
                api = Proc(["api", "--port", str(port)], {**env, **extra},
                           tmp / f"api-{name.replace('/', '-')}-{n}.log")
                url = f"http://127.0.0.1:{port}"
                try:
                    wait_healthy(url)
                    _level(url, one_mb, 8, 16)  # warm-up: imports, connection pools
                    a0, m0 = cpu_seconds([api.p.pid]), cpu_seconds(server)
                    _, errors, wall = _level(url, one_mb, 8, submits)
                    api_ms = (cpu_seconds([api.p.pid]) - a0) / submits * 1000
                    store_ms = (cpu_seconds(server) - m0) / submits * 1000
                finally:
                    api.stop()
                if errors:
                    raise SystemExit(f"{name}: {len(errors)} errors, first: {errors[0][:300]}")
                rates[name].append(submits / wall)
                api_cpu[name].append(api_ms)
                store_cpu[name].append(store_ms)
                print(f"    round {n + 1} {name:9s}: {submits / wall:6.1f} submits/s   "
                      f"CPU/submit: API {api_ms:.1f} ms, S3 server {store_ms:.1f} ms   "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
    local_rate = statistics.median(rates["local"])
    local_api = statistics.median(api_cpu["local"])
    print("    medians (ratio: of the submit rates; API-CPU ratio: local's API CPU per "
          "submit over this backend's, what an API-bound deployment with the store on "
          "other machines would see):")
    for name in names:
        rate, api_ms = statistics.median(rates[name]), statistics.median(api_cpu[name])
        print(f"    {name:9s} {rate:6.1f} submits/s   ratio {rate / local_rate:.2f}   API "
              f"{api_ms:.1f} ms + S3 server {statistics.median(store_cpu[name]):.1f} ms per "
              f"submit   API-CPU ratio {local_api / api_ms:.2f}")
    print("    (target: S3 >= 0.80 x local submits/s)")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SystemExit(f"no RSS for pid {pid}")


def phase_rss(url: str, audio: Path, n: int) -> None:
    print(f"\n[3] worker RSS after each of {n} real offline-pipeline jobs ({audio.name})")
    s = requests.Session()
    values = []
    for i in range(n):
        job = wait_status(url, submit(s, url, audio)["id"], timeout=600)
        if job["status"] != "succeeded":
            raise SystemExit(f"real job failed: {job['error']}")
        pid = int(job["worker"].rsplit(":", 1)[1])  # the pool process that ran it
        values.append(rss_kib(pid) / 1024)
        print(f"    job {i + 1:3d}: RSS {values[-1]:8.1f} MiB", flush=True)
    base = values[min(4, len(values) - 1)]  # after warm-up allocations settle
    drift = (max(values[min(4, len(values) - 1):]) - base) / base * 100
    print(f"    first {values[0]:.1f} MiB, after job 5 {base:.1f} MiB, last {values[-1]:.1f} MiB,"
          f" max drift after job 5 {drift:+.1f} %")


@contextmanager
def scratch_stack() -> Iterator[tuple[dict[str, str], Path, str]]:
    """A scratch database (migrated) + Redis key prefix + storage folder on 127.0.0.1:
    yields (environment for diarq processes, temp folder, key prefix); drops all after.
    Shared by the bench scripts (bench/scale.py too)."""
    name = f"diarq_bench_{uuid.uuid4().hex[:10]}"
    prefix = f"{name}:"
    admin = psycopg.connect(PG_ADMIN, autocommit=True)
    admin.execute(f'CREATE DATABASE "{name}"')
    tmp = Path(tempfile.mkdtemp(prefix="diarq-bench-"))
    env = {**os.environ, "PYANNOTE_METRICS_ENABLED": "0",
           "DIARQ_DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}",
           "DIARQ_BROKER_URL": REDIS_URL, "DIARQ_BROKER_KEY_PREFIX": prefix,
           "DIARQ_STORAGE_DIR": str(tmp / "storage"), "DIARQ_LOG_LEVEL": "WARNING",
           # measures the queue, not API keys or rate limits (127.0.0.1 only)
           "DIARQ_AUTH": "off", "DIARQ_RATE_LIMIT_PER_MINUTE": "0",
           "DIARQ_MAX_QUEUED_PER_KEY": "0",
           # one recording is submitted many times: each must run, not reuse a result
           "DIARQ_DEDUPE": "false"}
    try:
        subprocess.run(DIARQ + ["db", "upgrade"], env=env, cwd=ROOT, check=True,
                       capture_output=True)
        yield env, tmp, prefix
    finally:
        r = redis.Redis.from_url(REDIS_URL)
        keys = list(r.scan_iter(f"{prefix}*"))
        if keys:
            r.delete(*keys)
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
        # the uploads (~600 MB a run): deleted before the kernel writes them back, so the
        # next run does not share the cores with that writeback
        shutil.rmtree(tmp, ignore_errors=True)


def wait_healthy(url: str, path: str = "/readyz", timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}{path}", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--submits", type=int, default=200, help="per concurrency level")
    ap.add_argument("--real-jobs", type=int, default=50, help="0 skips the RSS phase")
    ap.add_argument("--real-audio", type=Path, default=ROOT / "tests" / "data" / "jfk.wav")
    ap.add_argument("--storage-compare", action="store_true",
                    help="run only phase 4: local vs S3 submit throughput")
    ap.add_argument("--s3-server", default="moto",
                    help="with --storage-compare: the loopback S3 server(s), comma-separated: "
                         f"{', '.join(S3_SERVERS)} (s3rver is installed with npm on first use)")
    ap.add_argument("--client", choices=("raw", "requests"), default="raw",
                    help="throughput phase: prebuilt multipart body over http.client (raw) "
                         "or requests building it per submit")
    ap.add_argument("--parsers", help="only compare multipart parsers, e.g. "
                    "diarq,werkzeug,multipart (bench/upload_parsers.py)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="with --parsers or --storage-compare")
    args = ap.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with scratch_stack() as (env, tmp, prefix):
        if args.parsers:
            phase_parsers(env, tmp, args.parsers.split(","), args.rounds, args.submits)
            return
        if args.storage_compare:
            print(f"diarq storage bench: {os.cpu_count()} cores, load average "
                  f"{os.getloadavg()[0]:.1f} at start")
            phase_storage_compare(env, tmp, args.submits, args.rounds,
                                  tuple(args.s3_server.split(",")))
            print(f"    load average {os.getloadavg()[0]:.1f} at the end")
            return
        run(args, env, tmp, prefix, url, port)


def run(args: argparse.Namespace, env: dict[str, str], tmp: Path, prefix: str, url: str,
        port: int) -> None:
    procs: list[Proc] = []
    try:
        api = Proc(["api", "--port", str(port)], env, tmp / "api.log")
        procs.append(api)
        trivial = Proc(["worker", "-c", "1", "-n", "bench-trivial@local", "-l", "INFO"],
                       {**env, "DIARQ_BENCH_TRIVIAL_PIPELINE_S": "0"}, tmp / "w1.log")
        procs.append(trivial)
        trivial.wait_log(" ready.")
        wait_healthy(url)
        print(f"diarq queue bench: {os.cpu_count()} cores, gunicorn "
              f"{os.environ.get('DIARQ_API_WORKERS', '2')} x gthread("
              f"{os.environ.get('DIARQ_API_THREADS', '4')}), PostgreSQL + Redis on 127.0.0.1")
        small = make_wav(tmp / "small.wav", 1.0)
        phase_overhead(url, small, args.jobs)
        trivial.stop()
        procs.remove(trivial)
        one_mb = make_wav(tmp / "1mb.wav", 32.77)  # 16 kHz s16 mono: 32 kB/s -> ~1 MB
        phase_throughput(url, one_mb, args.submits, [api.p.pid], args.client)
        print("    (CPU of PostgreSQL and Redis is not counted)")
        if args.real_jobs:
            if not (ROOT / "models" / "diarization").is_dir():
                print("\n[3] skipped: offline models missing (run `diarq models prepare`)")
            else:
                # the throughput phase left jobs queued: clear them so only ours run
                r = redis.Redis.from_url(REDIS_URL)
                for key in r.scan_iter(f"{prefix}*"):
                    r.delete(key)
                with psycopg.connect(env["DIARQ_DATABASE_URL"].replace("+psycopg", ""),
                                     autocommit=True) as db:
                    db.execute("UPDATE jobs SET status='canceled' WHERE status='queued'")
                real = Proc(["worker", "-c", "1", "-n", "bench-real@local", "-l", "INFO"], env,
                            tmp / "w2.log")
                procs.append(real)
                real.wait_log("models loaded", timeout=300)
                phase_rss(url, args.real_audio, args.real_jobs)
    finally:
        for p in procs:
            p.stop()


if __name__ == "__main__":
    main()
