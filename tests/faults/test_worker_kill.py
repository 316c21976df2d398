"""SIGKILL a worker mid-job, round after round: every job still succeeds exactly once."""

from __future__ import annotations

from pathlib import Path

from tests.integration.services import wait_until

ROUNDS = 10
JOBS = 12


def test_repeated_sigkill_mid_job_loses_and_duplicates_nothing(make_stack, speech_wav: Path):  # noqa: ANN001
    # the limit must exceed the kills one job can take: a job may be hit in several rounds
    stack = make_stack(DIARQ_MAX_ATTEMPTS=str(ROUNDS + 2))
    ids = [stack.submit(speech_wav)["id"] for _ in range(JOBS)]
    hit: list[str] = []
    for n in range(ROUNDS):
        victim = stack.worker(f"victim{n}", DIARQ_BENCH_TRIVIAL_PIPELINE_S="4")

        def running_on_victim(n: int = n) -> str | None:
            for job_id, row in stack.rows(ids).items():
                if row.status == "running" and (row.worker or "").startswith(f"victim{n}@"):
                    return job_id
            return None

        # redelivery (visibility timeout) or the reaper (stale heartbeat) hands the victim
        # a job; kill it while that job is running: nothing is acked or written
        hit.append(wait_until(running_on_victim, timeout=60, interval=0.1,
                              what=f"victim{n} to run a job"))
        victim.kill()
    rescuer = stack.worker("rescuer", DIARQ_BENCH_TRIVIAL_PIPELINE_S="0.2")
    rows = stack.wait_all_done(ids, timeout=120)

    statuses = {job_id: row.status for job_id, row in rows.items()}
    assert statuses == dict.fromkeys(ids, "succeeded"), statuses  # lost = 0
    assert stack.result_counts(ids) == dict.fromkeys(ids, 1)  # duplicated = 0
    for job_id in set(hit):
        # every killed attempt is counted: a hit job ran at least once more
        assert rows[job_id].attempts >= hit.count(job_id) + 1, (job_id, rows[job_id].attempts)
    assert sum(r.attempts for r in rows.values()) >= JOBS + ROUNDS
    print(f"faults figures: rounds={ROUNDS} jobs={JOBS} killed_attempts={len(hit)} "
          f"distinct_jobs_hit={len(set(hit))} attempts={sum(r.attempts for r in rows.values())} "
          f"lost=0 duplicated=0 rescuer_log_lines={rescuer.log().count('started attempt')}")
