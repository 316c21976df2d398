"""What a delete or retention may remove when dedupe copies share objects
(shared/job_files.py), on SQLite with the migrations applied (the embedded mode's
database; the integration tests run the same rules on PostgreSQL and both stores)."""

from __future__ import annotations

import uuid

from diarq.shared.db import session_scope
from diarq.shared.job_files import Release, owner_prefix, plan_release
from diarq.shared.orm import SUCCEEDED, Job, utcnow
from diarq.shared.settings import Settings
from diarq.shared.storage import audio_key, media_key


def _job(settings: Settings, job_id: str, *, of: str | None = None, **columns: object) -> str:
    owner = of or job_id
    now = utcnow()
    names = {"audio_path": audio_key(owner),
             "playback_path": media_key(owner, "a1", ".webm"),
             "waveform_path": media_key(owner, "a1", ".peaks"), **columns}
    with session_scope(settings) as s:
        s.add(Job(id=job_id, status=SUCCEEDED, progress=1.0, options={}, queue="cpu",
                  result_job_id=of, created_at=now, updated_at=now, finished_at=now,
                  **names))
    return job_id


def _plan(settings: Settings, job_id: str, *, mark: str | None = None) -> Release:
    with session_scope(settings) as s:
        job = s.get(Job, job_id)
        release = plan_release(s, job)
        if mark:
            setattr(job, mark, utcnow())
    return release


def test_owner_prefix_only_for_objects_under_a_job() -> None:
    job_id = str(uuid.uuid4())
    assert owner_prefix(media_key(job_id, "x", ".peaks")) == f"jobs/{job_id}/"
    assert owner_prefix(audio_key(job_id)) is None
    assert owner_prefix("jobs/") is None and owner_prefix("jobs/x") is None


def test_a_job_nobody_shares_goes_whole(settings: Settings) -> None:
    job_id = _job(settings, str(uuid.uuid4()))
    release = _plan(settings, job_id)
    # the audio by key, everything under the prefix at once (references, stale attempts)
    assert release.keys == (audio_key(job_id),)
    assert release.prefixes == (f"jobs/{job_id}/",)
    assert release.audio_path == audio_key(job_id)


def test_shared_objects_stay_until_the_last_live_namer(settings: Settings) -> None:
    original = _job(settings, str(uuid.uuid4()))
    copy = _job(settings, str(uuid.uuid4()), of=original)

    first = _plan(settings, original, mark="deleted_at")
    # the copy names all three: only the original's references go now
    assert first.keys == () and first.prefixes == (f"jobs/{original}/references/",)

    last = _plan(settings, copy, mark="deleted_at")
    assert last.keys == (audio_key(original),)
    assert set(last.prefixes) == {f"jobs/{copy}/", f"jobs/{original}/"}


def test_retention_marks_leave_the_objects_to_the_newer_copy(settings: Settings) -> None:
    original = _job(settings, str(uuid.uuid4()))
    copy = _job(settings, str(uuid.uuid4()), of=original)
    # the original past retention: kept for the copy
    assert _plan(settings, original, mark="audio_purged_at").keys == ()
    # a job marked purged no longer keeps anything alive: the copy's release takes all
    assert _plan(settings, copy).keys == (audio_key(original),)


def test_a_copy_keeping_its_own_upload_shares_nothing(settings: Settings) -> None:
    original = _job(settings, str(uuid.uuid4()))
    # a copy made after the original's audio was gone: its own upload, no media
    copy = _job(settings, str(uuid.uuid4()), of=original, audio_path=None,
                playback_path=None, waveform_path=None)
    with session_scope(settings) as s:
        s.get(Job, copy).audio_path = audio_key(copy)
    assert _plan(settings, copy).keys == (audio_key(copy),)
    assert _plan(settings, original).prefixes == (f"jobs/{original}/",)
