"""GPU workers on a CPU machine: `diarq worker --gpus` starts one worker per GPU, a GPU
worker without a GPU stops with gpu_unavailable, and a CUDA out-of-memory error (raised by a
faked device layer, tests/fake_cuda.py, around real models) fails that job only: the same
worker process runs the next one, and its GPU memory figures reach /metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from diarq.shared.celery_app import make_celery
from tests.fake_cuda import FAKE_PEAK
from tests.integration.services import DIARQ, ROOT, check_spec, wait_until
from tests.integration.test_jobs import submit, wait_done

pytestmark = pytest.mark.integration
TRIVIAL_S = "0.2"


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def _start(args: list[str], env: dict[str, str], log: Path,
           prefix: list[str] | None = None) -> subprocess.Popen:
    return subprocess.Popen((prefix or DIARQ) + args, env=env, cwd=ROOT,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
                            start_new_session=True)


def test_gpus_start_one_worker_per_gpu(settings, service_env, log_dir) -> None:  # noqa: ANN001
    env = {**service_env, "DIARQ_BENCH_TRIVIAL_PIPELINE_S": TRIVIAL_S}
    env.pop("DIARQ_DEVICE", None)
    proc = _start(["worker", "--gpus", "0,1", "--queues", "gpus-test", "--hostname",
                   "gpus@test"], env, log_dir / "worker-gpus.log")
    control = make_celery(settings).control
    try:
        def both() -> dict | None:
            stats = control.inspect(timeout=1.0, destination=["gpus@test-gpu0",
                                                              "gpus@test-gpu1"]).stats()
            return stats if stats and len(stats) == 2 else None

        stats = wait_until(both, timeout=120, interval=1, what="two GPU workers")
        for node, gpu in (("gpus@test-gpu0", "0"), ("gpus@test-gpu1", "1")):
            environ = _environ(stats[node]["pid"])
            assert environ["CUDA_VISIBLE_DEVICES"] == gpu
            assert environ["DIARQ_DEVICE"] == "cuda"
            assert stats[node]["pool"]["max-concurrency"] == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert control.ping(timeout=1.0, destination=["gpus@test-gpu0", "gpus@test-gpu1"]) == []


def test_gpu_worker_without_gpu_stops_with_gpu_unavailable(service_env, log_dir) -> None:  # noqa: ANN001
    log = log_dir / "worker-nogpu.log"
    env = {k: v for k, v in service_env.items() if k != "DIARQ_DEVICE"}
    proc = _start(["worker", "--gpus", "0", "--queues", "nogpu-test"], env, log)
    try:
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    text = log.read_text()
    assert rc == 78, text[-3000:]
    assert "models could not be loaded code=gpu_unavailable" in text
    assert "CUDA_VISIBLE_DEVICES=0" in text and "Traceback" not in text


def test_cuda_oom_fails_the_job_not_the_worker(app_for_queue, service_env, log_dir,
                                               data_dir) -> None:  # noqa: ANN001
    env = {**service_env, "DIARQ_DEVICE": "cpu", "DIARQ_MODEL_DIR": str(ROOT / "models"),
           "DIARQ_TEST_FAKE_CUDA": json.dumps({"diarize": 0})}
    prefix = [sys.executable, "-c", "import tests.fake_cuda as f; f.install_from_env(); "
              "from diarq.cli import main; main()"]
    log = log_dir / "worker-fake-cuda.log"
    proc = _start(["worker", "--queues", "fakecuda", "--concurrency", "1", "--hostname",
                   "fakecuda@test"], env, log, prefix)
    client = app_for_queue("fakecuda").test_client()
    try:
        wait_until(lambda: "models loaded" in log.read_text(), timeout=300, interval=0.5,
                   what="the worker's models")
        failed = wait_done(client, check_spec(submit(client, data_dir / "jfk.wav"), "/v1/jobs",
                                              "POST")["id"], timeout=300)
        assert failed["status"] == "failed", failed
        assert failed["error"]["code"] == "gpu_out_of_memory"
        assert "DIARQ_BATCH_SIZE" in failed["error"]["message"]
        # the same worker process runs the next job (no diarization: nothing runs out)
        ok = wait_done(client, check_spec(submit(client, data_dir / "jfk.wav", diarize="false"),
                                          "/v1/jobs", "POST")["id"], timeout=300)
        assert ok["status"] == "succeeded", (ok, log.read_text()[-3000:])
        assert ok["worker"] == failed["worker"] and proc.poll() is None
        result = check_spec(client.get(f"/v1/jobs/{ok['id']}/result"), "/v1/jobs/{id}/result",
                            "GET")
        assert result["models"]["gpu"]["peak_memory_bytes"] == FAKE_PEAK
        metrics = check_spec(client.get("/metrics"), "/metrics", "GET")
        lines = dict(line.rsplit(" ", 1) for line in metrics.splitlines()
                     if line.startswith("diarq_gpu_peak_memory_bytes_"))
        count = float(lines["diarq_gpu_peak_memory_bytes_count"])
        assert count >= 1
        assert float(lines["diarq_gpu_peak_memory_bytes_sum"]) == count * FAKE_PEAK
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
