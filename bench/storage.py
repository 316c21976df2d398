"""Object storage figures, S3 protocol on 127.0.0.1 (moto in server mode):

    .venv/bin/python bench/storage.py [--gb 1.0] [--minutes 10] [CORPUS_DIR]

1. a big direct upload: POST /v1/uploads, the client PUTs the file to the store, then
   POST /v1/jobs with upload_id (the API probes the object with ranged reads and hashes
   it, reading it once in 1 MiB chunks). The API's resident memory (gunicorn master and
   workers) is sampled every 50 ms from before the upload to after the job exists; the
   same file sent through the API (multipart upload to S3, one 8 MiB part in memory) is
   measured the same way for comparison.
2. worker download time against pipeline time: one real offline-pipeline job on a
   recording of --minutes built from the corpus (bench/pipeline.py's recording); the
   result's timings hold the download and the pipeline's stages.

Submit throughput local vs S3 is `bench/queue_load.py --storage-compare`.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import threading
import time
from pathlib import Path

import requests

# run as a script, bench/ is on sys.path: the other benches' helpers are reused
from pipeline import build_recording
from queue_load import (
    ROOT,
    Proc,
    free_port,
    process_tree,
    rss_kib,
    s3_server,
    scratch_stack,
    wait_healthy,
)


def tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and its live children (MiB)."""
    total = 0
    for p in process_tree([pid]):
        try:
            total += rss_kib(p)
        except (OSError, SystemExit):  # gone meanwhile
            continue
    return total / 1024


class Sampler(threading.Thread):
    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.values, self.stop_flag = pid, [], threading.Event()

    def run(self) -> None:
        while not self.stop_flag.is_set():
            self.values.append(tree_rss_mb(self.pid))
            time.sleep(0.05)

    def stop(self) -> list[float]:
        self.stop_flag.set()
        self.join()
        return self.values


class _Reader:
    """A file for requests with a length (a presigned PUT needs Content-Length)."""

    def __init__(self, path: Path):
        self.fh, self.size = path.open("rb"), path.stat().st_size

    def __len__(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        return self.fh.read(n)


def big_wav(path: Path, gb: float) -> Path:
    # 48 kHz stereo s16: 192 kB/s, so 1 GB is ~1.5 h (under the 4 h duration limit)
    seconds = gb * 1e9 / 192_000
    subprocess.run(["sox", "-n", "-r", "48000", "-c", "2", "-b", "16", str(path), "synth",
                    f"{seconds:.0f}", "sine", "220", "vol", "0.1"], check=True)
    return path


def phase_big_upload(url: str, api_pid: int, path: Path) -> None:
    size_mb = path.stat().st_size / 2**20
    print(f"\n[1] {size_mb:.0f} MiB recording; API RSS (gunicorn master + workers) sampled "
          "every 50 ms")
    base = tree_rss_mb(api_pid)
    sampler = Sampler(api_pid)
    sampler.start()
    t0 = time.perf_counter()
    made = requests.post(f"{url}/v1/uploads", json={"filename": path.name,
                                                    "size": path.stat().st_size},
                         timeout=30).json()
    put = requests.put(made["url"], data=_Reader(path), timeout=1200)
    put.raise_for_status()
    t_put = time.perf_counter() - t0
    t1 = time.perf_counter()
    job = requests.post(f"{url}/v1/jobs", data={"upload_id": made["id"]}, timeout=1200)
    t_job = time.perf_counter() - t1
    values = sampler.stop()
    if job.status_code != 202:
        raise SystemExit(f"direct job failed: {job.status_code} {job.text[:300]}")
    print(f"    direct upload: PUT to the store {t_put:.1f} s ({size_mb / t_put:.0f} MiB/s); "
          f"POST /v1/jobs (probe + SHA-256 of the object) {t_job:.1f} s")
    print(f"    API RSS: before {base:.0f} MiB, peak {max(values):.0f} MiB "
          f"(+{max(values) - base:.0f}), after {values[-1]:.0f} MiB")

    base = tree_rss_mb(api_pid)
    sampler = Sampler(api_pid)
    sampler.start()
    t0 = time.perf_counter()
    with path.open("rb") as fh:
        through = requests.post(f"{url}/v1/jobs", files={"file": (path.name, fh)}, timeout=1200)
    t_through = time.perf_counter() - t0
    values = sampler.stop()
    if through.status_code != 202:
        raise SystemExit(f"upload through the API failed: {through.status_code} "
                         f"{through.text[:300]}")
    print(f"    through the API (multipart upload to S3): {t_through:.1f} s; API RSS before "
          f"{base:.0f} MiB, peak {max(values):.0f} MiB (+{max(values) - base:.0f})")
    # no worker runs 1.5 h of audio next: both jobs (and their objects) are deleted
    for job_id in (job.json()["id"], through.json()["id"]):
        requests.delete(f"{url}/v1/jobs/{job_id}", timeout=60).raise_for_status()


def phase_download(url: str, env: dict[str, str], tmp: Path, corpus: Path,
                   minutes: float) -> None:
    rec = tmp / "meeting.wav"
    duration = build_recording(corpus, minutes * 60, rec)
    print(f"\n[2] worker download vs pipeline: {duration / 60:.1f} min recording "
          f"({rec.stat().st_size / 2**20:.1f} MiB), real offline pipeline")
    worker = Proc(["worker", "-c", "1", "-n", "bench-s3@local", "-l", "INFO"],
                  {**env, "DIARQ_SCRATCH_DIR": str(tmp / "worker-scratch")}, tmp / "w.log")
    try:
        worker.wait_log("models loaded", timeout=600)
        with rec.open("rb") as fh:
            job = requests.post(f"{url}/v1/jobs", files={"file": (rec.name, fh)},
                                timeout=600).json()
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            cur = requests.get(f"{url}/v1/jobs/{job['id']}", timeout=10).json()
            if cur["status"] in ("succeeded", "failed", "canceled"):
                break
            time.sleep(1)
        if cur["status"] != "succeeded":
            raise SystemExit(f"job {cur['status']}: {cur.get('error')}")
        timings = requests.get(f"{url}/v1/jobs/{job['id']}/result", timeout=30).json()["timings"]
    finally:
        worker.stop()
    dl, total = timings["download"], timings["total"]
    print(f"    download {dl:.3f} s, pipeline {total:.1f} s (decode {timings['decode']:.1f}, "
          f"diarize {timings['diarize']:.1f}, transcribe {timings['transcribe']:.1f}): "
          f"download = {100 * dl / total:.2f} % of the pipeline (target <= 2 %)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", nargs="?", default=str(ROOT.parent / "shared" / "eval"))
    ap.add_argument("--gb", type=float, default=1.0)
    ap.add_argument("--minutes", type=float, default=10.0)
    args = ap.parse_args()
    print(f"diarq storage bench: {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f} at start")
    with scratch_stack() as (env, tmp, _prefix), s3_server("moto", tmp) as (s3, _pid):
        env = {**env, **s3, "DIARQ_MAX_UPLOAD_MB": str(int(args.gb * 1100) + 64)}
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        api = Proc(["api", "--port", str(port)], env, tmp / "api.log")
        try:
            wait_healthy(url)
            if args.gb > 0:
                phase_big_upload(url, api.p.pid, big_wav(tmp / "big.wav", args.gb))
                (tmp / "big.wav").unlink()
            if args.minutes > 0:
                phase_download(url, env, tmp, Path(args.corpus).resolve(), args.minutes)
        finally:
            api.stop()
    print(f"    load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
