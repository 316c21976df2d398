"""Speaker voices (shared/voices.py): stored with the result in one transaction, read back
exactly, followed by dedupe copies, deleted with the job, never in the result JSON."""

from __future__ import annotations

import uuid

import numpy as np
from sqlalchemy import func, select

from diarq.shared import jobs
from diarq.shared.db import session_scope
from diarq.shared.dedupe import detach_copies
from diarq.shared.orm import Job, SpeakerVoice
from diarq.shared.result import AudioInfo, Result
from diarq.shared.voices import VoiceSet, load_voices


def _claimed(settings) -> tuple[str, str]:  # noqa: ANN001
    job_id, token = str(uuid.uuid4()), str(uuid.uuid4())
    with session_scope(settings) as s:
        s.add(Job(id=job_id, options={}, queue="cpu", status="queued"))
    with session_scope(settings) as s:
        assert jobs.claim(s, job_id, token=token, worker="w", stale_after_s=60,
                          max_attempts=3) is not None
    return job_id, token


def _voices() -> VoiceSet:
    rng = np.random.default_rng(0)
    return VoiceSet(model="test-model", vectors={f"SPEAKER_0{i}": rng.normal(size=192)
                                                 .astype(np.float32) for i in range(3)},
                    seconds={"SPEAKER_00": 12.5})


def _count(settings) -> int:  # noqa: ANN001
    with session_scope(settings) as s:
        return s.scalar(select(func.count()).select_from(SpeakerVoice))


def test_voices_are_stored_with_the_result_and_read_back_exactly(settings) -> None:  # noqa: ANN001
    job_id, token = _claimed(settings)
    voices = _voices()
    with session_scope(settings) as s:
        assert jobs.succeed(s, job_id, token, {"x": 1}, voices)
    with session_scope(settings) as s:
        back = load_voices(s, job_id)
    assert back is not None and back.model == "test-model"
    assert sorted(back.vectors) == sorted(voices.vectors)
    for label, vector in voices.vectors.items():
        assert np.array_equal(back.vectors[label], vector)
    assert back.seconds == {"SPEAKER_00": 12.5}


def test_a_lost_attempt_stores_no_voices(settings) -> None:  # noqa: ANN001
    job_id, _token = _claimed(settings)
    with session_scope(settings) as s:
        assert not jobs.succeed(s, job_id, "not-the-owner", {"x": 1}, _voices())
    assert _count(settings) == 0


def test_voices_go_with_the_job_and_dedupe_copies_keep_theirs(settings) -> None:  # noqa: ANN001
    job_id, token = _claimed(settings)
    with session_scope(settings) as s:
        jobs.succeed(s, job_id, token, {"x": 1}, _voices())
        copy_id = str(uuid.uuid4())
        s.add(Job(id=copy_id, options={}, queue="cpu", status="succeeded",
                  result_job_id=job_id))
    with session_scope(settings) as s:
        assert load_voices(s, copy_id) is not None  # read through the original
        detach_copies(s, job_id)
        s.commit()
        jobs.cancel_and_delete(s, job_id)
    with session_scope(settings) as s:
        assert load_voices(s, job_id) is None
        kept = load_voices(s, copy_id)
    assert kept is not None and len(kept.vectors) == 3
    assert _count(settings) == 3  # the copy's own rows only


def test_voices_never_reach_the_result_json() -> None:
    result = Result(audio=AudioInfo(duration=1.0, sample_rate=16000), language="en")
    result._voices = _voices()
    assert result.voices is not None
    assert "voices" not in result.to_dict() and "_voices" not in result.to_dict()
