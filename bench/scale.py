"""Horizontal scaling of workers on real Redis + PostgreSQL (127.0.0.1 only).

    .venv/bin/python bench/scale.py [--sleep 0.5] [--jobs-per-worker 10] [--real-jobs 4]

1. bench-trivial pipeline (each job sleeps --sleep seconds, no models): 1, 2, 4 and 8
   worker processes (one `diarq worker -c N`, prefork); jobs/s and efficiency against
   perfect scaling (N / sleep jobs/s). Measures the queue + database path, not compute.
2. real offline pipeline (needs `diarq models prepare`): 1 vs 2 worker processes on this
   machine, a few short recordings from tests/data; DIARQ_THREADS = cores / processes.

Throughput = jobs / (last finished_at - first started_at) of the batch, so the time
to submit is not counted (phase 1 queues every job before its workers start).
Creates a scratch database and Redis key prefix, drops both at the end. Every loop is bounded.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from pathlib import Path

import requests

# run as a script, bench/ is on sys.path: the load bench's helpers are reused
from queue_load import (
    ROOT,
    Proc,
    free_port,
    make_wav,
    scratch_stack,
    submit,
    ts,
    wait_healthy,
    wait_status,
)


def submit_all(url: str, audio: list[Path], n: int) -> list[str]:
    """Submit n jobs (8 client threads, the recordings in turn); their ids."""
    ids: list[str] = []
    lock = threading.Lock()
    todo = iter(range(n))

    def client() -> None:
        s = requests.Session()
        while True:
            with lock:
                i = next(todo, None)
            if i is None:
                return
            job = submit(s, url, audio[i % len(audio)])
            with lock:
                ids.append(job["id"])

    threads = [threading.Thread(target=client) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ids


def jobs_per_second(url: str, ids: list[str], timeout: float) -> tuple[float, list[dict]]:
    """Wait for every job; n / (last finished_at - first started_at)."""
    done = [wait_status(url, job_id, timeout=timeout) for job_id in ids]
    bad = [j for j in done if j["status"] != "succeeded"]
    if bad:
        raise SystemExit(f"{len(bad)} jobs did not succeed: {bad[0]['error']}")
    first = min(ts(j["started_at"]) for j in done)
    last = max(ts(j["finished_at"]) for j in done)
    return len(done) / (last - first).total_seconds(), done


def level(env: dict[str, str], tmp: Path, procs: int, name: str, marker: str) -> Proc:
    worker = Proc(["worker", "-c", str(procs), "-n", f"{name}{procs}@local", "-l", "INFO"],
                  env, tmp / f"{name}{procs}.log")
    # prefork children log their start after "ready." (models load after fork)
    worker.wait_log(marker, timeout=600)
    return worker


def phase_trivial(url: str, env: dict[str, str], tmp: Path, sleep_s: float,
                  per_worker: int) -> None:
    print(f"\n[1] bench-trivial pipeline (sleep {sleep_s} s per job), {per_worker} jobs per "
          "worker process")
    wav = make_wav(tmp / "one.wav", 1.0)
    env = {**env, "DIARQ_BENCH_TRIVIAL_PIPELINE_S": str(sleep_s)}
    for procs in (1, 2, 4, 8):
        # queued first, then the workers start: the API's uploads (ffprobe, hashing) do
        # not compete with the workers for the CPU, so this measures the worker path
        ids = submit_all(url, [wav], procs * per_worker)
        worker = level(env, tmp, procs, "trivial", " ready.")
        try:
            rate, _ = jobs_per_second(url, ids, timeout=120)
        finally:
            worker.stop()
        ideal = procs / sleep_s
        print(f"    {procs} workers: {rate:6.2f} jobs/s   perfect {ideal:6.2f}   "
              f"efficiency {100 * rate / ideal:5.1f} %")


def phase_real(url: str, env: dict[str, str], tmp: Path, n: int) -> None:
    data = ROOT / "tests" / "data"
    audio = [data / "jfk.wav", data / "sample.wav"]
    cores = os.cpu_count() or 1
    print(f"\n[2] real offline pipeline, {n} jobs ({', '.join(a.name for a in audio)} in "
          f"turn), {cores} cores")
    base = None
    for procs in (1, 2):
        threads = max(1, cores // procs)
        worker = level({**env, "DIARQ_THREADS": str(threads)}, tmp, procs, "real",
                       " ready.")
        try:
            _wait_models(worker, procs)
            rate, done = jobs_per_second(url, submit_all(url, audio, n), timeout=900)
        finally:
            worker.stop()
        audio_s = sum(j["audio"]["duration"] for j in done)
        base = base or rate
        print(f"    {procs} worker(s) x {threads} threads: {rate * 60:6.2f} jobs/min   "
              f"{audio_s / (n / rate):5.1f} s of audio per s   speed-up x{rate / base:.2f}")


def _wait_models(worker: Proc, procs: int, timeout: float = 600) -> None:
    """Every pool process logs "models loaded" (worker/registry.py) once warm."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if worker.log.read_text(errors="replace").count("models loaded") >= procs:
            return
        time.sleep(0.5)
    raise SystemExit(f"models not loaded in {timeout} s; see {worker.log}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sleep", type=float, default=0.5)
    ap.add_argument("--jobs-per-worker", type=int, default=10)
    ap.add_argument("--real-jobs", type=int, default=4, help="0 skips the real pipeline")
    args = ap.parse_args()

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with scratch_stack() as (env, tmp, _):
        # INFO: the real phase waits for each pool process's "models loaded" line
        env = {**env, "DIARQ_LOG_LEVEL": "INFO", "DIARQ_API_WORKERS": "2"}
        api = Proc(["api", "--port", str(port)], env, tmp / "api.log")
        try:
            wait_healthy(url, "/healthz")
            print(f"diarq scale bench: {os.cpu_count()} cores, PostgreSQL + Redis on "
                  "127.0.0.1")
            phase_trivial(url, env, tmp, args.sleep, args.jobs_per_worker)
            if not args.real_jobs:
                return
            if not (ROOT / "models" / "diarization").is_dir():
                print("\n[2] skipped: offline models missing (run `diarq models prepare`)")
                return
            phase_real(url, env, tmp, args.real_jobs)
        finally:
            api.stop()


if __name__ == "__main__":
    main()
