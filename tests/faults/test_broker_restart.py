"""A private redis-server is SIGKILLed (no persistence: every message is lost) while jobs
are queued and running, then restarted on the same port: all jobs still finish once."""

from __future__ import annotations

import time
from pathlib import Path

from tests.faults.servers import PrivateRedis

JOBS = 8


def test_redis_restart_loses_no_job(make_stack, speech_wav: Path, tmp_path: Path):  # noqa: ANN001
    redis = PrivateRedis(tmp_path)
    redis.start()
    try:
        stack = make_stack(redis_url=redis.url)
        ids = stack.busy(speech_wav, JOBS)
        redis.kill()  # queued messages and unacked deliveries are gone with it

        # submits while the broker is down are accepted: the row is the source of truth
        late = [stack.submit(speech_wav)["id"] for _ in range(2)]
        ready = stack.client.get("/readyz")
        assert ready.status_code == 503 and ready.get_json()["checks"]["broker"] != "ok"
        time.sleep(2)
        redis.start()  # empty, same port: workers and API reconnect by themselves

        everything = ids + late
        rows = stack.wait_all_done(everything, timeout=120)
        statuses = {i: r.status for i, r in rows.items()}
        assert statuses == dict.fromkeys(everything, "succeeded"), statuses
        assert stack.result_counts(everything) == dict.fromkeys(everything, 1)
        assert stack.client.get("/readyz").status_code == 200
        logs = "".join(w.log() for w in stack.workers)
        # the lost messages were resent
        assert "reaper re-enqueued queued job whose message was missing" in logs
        print(f"faults figures: redis restarts=1 jobs={len(everything)} lost=0 duplicated=0")
    finally:
        redis.kill()
