"""CPU per S3 request on 127.0.0.1: what the loopback S3 server costs, what the client
costs, and what diarq's upload path adds per 1 MB submit on each storage backend.

    .venv/bin/python bench/s3_requests.py [--requests 100] [--rounds 3] [--servers moto,s3rver]

1. servers: CPU of the S3 server per 1 MB PUT (moto in server mode; s3rver, installed
   with npm on first use), each PUT sent the way an upload through the API is stored
   (S3Storage.incoming -> keep_audio: one PutObject with the upload's SHA-256 as its
   checksum header);
2. clients: client CPU per request (1 MB PUT, 256 KiB ranged GET, HEAD) of diarq's
   boto3 client (S3Storage.client), of boto3 with the checksum/validation/Expect
   settings turned down, and of obstore when it is installed (``pip install obstore``;
   not a dependency of diarq: BENCHMARKS.md says why), against the first server;
3. path: CPU of the API's storage path per 1 MB upload (the upload sink fed 64 KiB
   writes, keep_audio, probe), local directory against S3, user and system time apart;
4. fork (with obstore installed): does a process forked after its parent used obstore
   get an answer to one obstore HEAD within 10 s? (Celery's prefork pool and its
   reaper thread would put diarq in that situation.)

One client thread, rounds interleaved (the machine's load drifts); CPU from
getrusage/process_time (client, obstore's runtime threads included) and /proc (server).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import os
import resource
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# run as a script, bench/ is on sys.path: the other benches' helpers are reused
from queue_load import cpu_seconds, make_wav, s3_server

from diarq.shared.s3_storage import S3Storage
from diarq.shared.settings import load_settings
from diarq.shared.storage import LocalStorage, Storage

MB = 1 << 20


def s3_storage(env: dict[str, str]) -> S3Storage:
    """diarq's S3 backend for a bench server (credentials through the standard chain)."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("AWS_")})
    bucket, _, prefix = env["DIARQ_STORAGE_URL"][len("s3://"):].partition("/")
    return S3Storage(bucket, prefix, endpoint_url=env["DIARQ_S3_ENDPOINT_URL"])


def store_upload(store: Storage, data: bytes, job_id: str) -> Any:  # noqa: ANN401
    """An upload as the API stores it: written into the sink in 64 KiB pieces, kept."""
    writer = store.incoming(1 << 30)
    for i in range(0, len(data), 64 * 1024):
        writer.write(data[i:i + 64 * 1024])
    writer.seek(0)
    return writer, store.keep_audio(writer, job_id)


def per_call_ms(fn: Callable[[int], object], n: int, server: list[int]) -> tuple[float, float]:
    """(client CPU ms, server CPU ms) per call of ``fn`` over ``n`` calls."""
    c0, s0 = time.process_time(), cpu_seconds(server)
    for i in range(n):
        fn(i)
    return ((time.process_time() - c0) / n * 1000, (cpu_seconds(server) - s0) / n * 1000)


def span(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def phase_servers(servers: dict[str, tuple[S3Storage, int]], data: bytes, n: int,
                  rounds: int) -> None:
    print(f"\n[1] S3 server CPU per 1 MB PUT (diarq's upload PUT: SHA-256 checksum header, "
          f"unsigned payload), {n} PUTs per round, {rounds} rounds")
    got: dict[str, list[tuple[float, float]]] = {name: [] for name in servers}
    for store, _pid in servers.values():
        store_upload(store, data, "warm-up")
    for _ in range(rounds):
        for name, (store, pid) in servers.items():
            got[name].append(per_call_ms(lambda i, s=store: store_upload(s, data, f"j{i % 8}"),
                                         n, [pid]))
    for name, values in got.items():
        print(f"    {name:7s} server {span([v[1] for v in values])} ms/PUT   "
              f"(client {span([v[0] for v in values])} ms)")


def client_variants(store: S3Storage, env: dict[str, str],
                    data: bytes) -> dict[str, Callable[[int], object]]:
    """Each client's requests against ``store``'s bucket (``env``: its server's
    credentials): name -> call(i)."""
    import boto3
    from botocore.config import Config

    digest = base64.b64encode(hashlib.sha256(data).digest()).decode()
    bucket, key = store.bucket, store._key("bench-src")
    store.client.put_object(Bucket=bucket, Key=key, Body=data)
    creds = {"aws_access_key_id": env["AWS_ACCESS_KEY_ID"],
             "aws_secret_access_key": env["AWS_SECRET_ACCESS_KEY"]}
    lean = boto3.session.Session().client(
        "s3", endpoint_url=store.endpoint_url, region_name="us-east-1", **creds,
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path", "payload_signing_enabled": False},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required", parameter_validation=False))

    def no_expect(params: dict[str, Any], **_: Any) -> None:
        params["headers"].pop("Expect", None)

    lean.meta.events.register_last("before-call.s3.PutObject", no_expect)
    calls: dict[str, Callable[[int], object]] = {}
    for name, client in (("boto3 (diarq)", store.client), ("boto3 lean", lean)):
        calls[f"{name} PUT 1 MB"] = lambda i, c=client: c.put_object(
            Bucket=bucket, Key=store._key(f"b{i % 8}"), Body=data, ChecksumSHA256=digest)
        calls[f"{name} GET 256 KiB range"] = lambda i, c=client: c.get_object(
            Bucket=bucket, Key=key, Range=f"bytes={i * 997}-{i * 997 + 262143}")["Body"].read()
        calls[f"{name} HEAD"] = lambda i, c=client: c.head_object(Bucket=bucket, Key=key)
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError:
        print("    (obstore not installed: pip install obstore to compare it)")
        return calls
    options: dict[str, Any] = {
        "endpoint": store.endpoint_url, "region": "us-east-1",
        "access_key_id": creds["aws_access_key_id"],
        "secret_access_key": creds["aws_secret_access_key"],
        "client_options": {"allow_http": True}, "virtual_hosted_style_request": False,
        "unsigned_payload": True}
    # the request diarq sends: unsigned payload, SHA-256 checksum header (obstore computes
    # that itself: it takes no precomputed checksum)
    ob = S3Store(bucket, checksum_algorithm="sha256", **options)
    bare = S3Store(bucket, **options)  # no checksum at all: the store cannot verify the body
    calls["obstore PUT 1 MB"] = lambda i: obstore.put(ob, store._key(f"o{i % 8}"), data)
    calls["obstore PUT 1 MB, no checksum"] = lambda i: obstore.put(
        bare, store._key(f"n{i % 8}"), data)
    calls["obstore GET 256 KiB range"] = lambda i: bytes(
        obstore.get_range(ob, key, start=i * 997, length=262144))
    calls["obstore HEAD"] = lambda i: obstore.head(ob, key)
    return calls


def phase_clients(store: S3Storage, env: dict[str, str], pid: int, server: str, data: bytes,
                  n: int, rounds: int) -> None:
    print(f"\n[2] client CPU per request against {server}, {n} requests per round, "
          f"{rounds} rounds")
    calls = client_variants(store, env, data)
    for fn in calls.values():
        fn(0)  # warm-up: connections, caches
    got: dict[str, list[tuple[float, float]]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, fn in calls.items():
            got[name].append(per_call_ms(fn, n, [pid]))
    for name, values in got.items():
        print(f"    {name:32s} client {span([v[0] for v in values])} ms   "
              f"(server {span([v[1] for v in values])} ms)")


def phase_path(s3: S3Storage, local: LocalStorage, data: bytes, n: int, rounds: int) -> None:
    from diarq.api.probe import probe_file

    print(f"\n[3] the API's storage path per 1 MB upload (sink, keep_audio, probe), {n} per "
          f"round, {rounds} rounds; CPU of this process")
    settings = load_settings()

    def one(store: Storage, i: int) -> None:
        writer, stored = store_upload(store, data, f"p{i % 8:02d}")
        probe_file(store, stored.rel_path, settings, "bench.wav", writer)

    got: dict[str, list[tuple[float, float]]] = {"local": [], "s3": []}
    one(local, 0)  # warm-up: PyAV, the connection pool
    one(s3, 0)
    for _ in range(rounds):
        for name, store in (("local", local), ("s3", s3)):
            u0 = resource.getrusage(resource.RUSAGE_SELF)
            for i in range(n):
                one(store, i)
            u1 = resource.getrusage(resource.RUSAGE_SELF)
            got[name].append(((u1.ru_utime - u0.ru_utime) / n * 1000,
                              (u1.ru_stime - u0.ru_stime) / n * 1000))
    for name, values in got.items():
        total = [u + s for u, s in values]
        print(f"    {name:5s} {statistics.median(total):.2f} ms/upload (user "
              f"{span([v[0] for v in values])}, system {span([v[1] for v in values])})")


def phase_fork(store: S3Storage, env: dict[str, str]) -> None:
    """One obstore HEAD in this process, then one in a forked child (10 s to answer)."""
    try:
        import obstore
        from obstore.store import S3Store
    except ImportError:
        return
    key = store._key("bench-src")
    ob = S3Store(store.bucket, endpoint=store.endpoint_url, region="us-east-1",
                 access_key_id=env["AWS_ACCESS_KEY_ID"],
                 secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                 client_options={"allow_http": True}, virtual_hosted_style_request=False)
    obstore.head(ob, key)
    pid = os.fork()
    if pid == 0:  # the child: a fresh store, as a pool process would make
        import signal

        signal.alarm(10)
        child = S3Store(store.bucket, endpoint=store.endpoint_url, region="us-east-1",
                        access_key_id=env["AWS_ACCESS_KEY_ID"],
                        secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
                        client_options={"allow_http": True},
                        virtual_hosted_style_request=False)
        obstore.head(child, key)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    answered = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    print(f"\n[4] obstore {obstore.__version__}, HEAD in a child forked after the parent "
          f"used obstore: {'answered' if answered else 'no answer in 10 s (hung)'}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=100, help="per variant and round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--servers", default="moto,s3rver")
    args = ap.parse_args()
    print(f"diarq S3 request bench: {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at start")
    tmp = Path(tempfile.mkdtemp(prefix="diarq-s3req-"))
    data = make_wav(tmp / "1mb.wav", 32.77).read_bytes()
    with contextlib.ExitStack() as stack:
        servers: dict[str, tuple[S3Storage, int]] = {}
        envs: dict[str, dict[str, str]] = {}
        for kind in args.servers.split(","):
            envs[kind], pid = stack.enter_context(s3_server(kind, tmp))
            servers[kind] = (s3_storage(envs[kind]), pid)
        phase_servers(servers, data, args.requests, args.rounds)
        first = next(iter(servers))
        store, pid = servers[first]
        phase_clients(store, envs[first], pid, first, data, args.requests, args.rounds)
        phase_path(store, LocalStorage(tmp / "local"), data, args.requests, args.rounds)
        phase_fork(store, envs[first])
    print(f"    load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
