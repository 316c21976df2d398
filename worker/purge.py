"""Storage clean-up, run by the reaper thread of every worker: the objects of deleted
jobs, retention (``DIARQ_RETENTION_DAYS``, ``DIARQ_RETENTION_RESULTS``) and unused direct
uploads, and multipart uploads a killed API process left unfinished. What to delete comes
from the database (shared/retention.py); a store that is down stops the pass, and the
next one picks up where it stopped."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from diarq.shared import retention
from diarq.shared.db import session_scope
from diarq.shared.job_files import delete_objects
from diarq.shared.orm import utcnow
from diarq.shared.settings import Settings
from diarq.shared.storage import Storage, StorageUnavailable

log = logging.getLogger(__name__)

# an upload through the API still unfinished after this long was left by a killed API
# process (an upload of the largest file takes minutes, not a day)
STALE_UPLOAD_S = 24 * 3600.0


def purge_once(settings: Settings, storage: Storage) -> dict[str, list[str]]:
    """One pass; returns what it did (ids per kind)."""
    done: dict[str, list[str]] = {"deleted": [], "audio": [], "results": [], "uploads": [],
                                  "unfinished": []}
    try:
        _objects(settings, storage, done)
        aborted = storage.abort_stale_uploads(STALE_UPLOAD_S)
        done["unfinished"] = [str(aborted)] if aborted else []
    except StorageUnavailable as exc:
        log.warning("storage clean-up paused, the store is unavailable: %s", exc.message)
    if settings.retention_days and settings.retention_results:
        cutoff = utcnow() - timedelta(days=settings.retention_days)
        with session_scope(settings) as session:
            done["results"] = retention.purge_results(session, cutoff)
    for kind, ids in done.items():
        if ids:
            log.info("storage clean-up kind=%s count=%d", kind, len(ids))
    return done


def _release_all(settings: Settings, storage: Storage, jobs: list[tuple[str, str]],
                 release_of: Any, *, purged: bool) -> list[str]:
    """For each (job, audio key): plan the release in its own transaction, delete the
    objects nothing else names, then forget the audio on the row; the jobs done."""
    out = []
    for job_id, key in jobs:
        with session_scope(settings) as session:
            release = release_of(session, job_id)
        if release is None:
            continue
        delete_objects(storage, release)
        with session_scope(settings) as session:
            if retention.forget_audio(session, job_id, key, purged=purged):
                out.append(job_id)
    return out


def _objects(settings: Settings, storage: Storage, done: dict[str, list[str]]) -> None:
    with session_scope(settings) as session:
        deleted = retention.deleted_with_audio(session)
    done["deleted"] += _release_all(settings, storage, deleted, retention.release_deleted,
                                    purged=False)
    if settings.retention_days:
        cutoff = utcnow() - timedelta(days=settings.retention_days)
        with session_scope(settings) as session:
            old = retention.audio_past_retention(session, cutoff)
        done["audio"] += _release_all(
            settings, storage, old,
            lambda session, job_id: retention.release_expired(session, job_id, cutoff),
            purged=True)
    with session_scope(settings) as session:
        unused = retention.unused_uploads(session, now=utcnow(),
                                          use_window_s=retention.UPLOAD_USE_WINDOW_S)
    for upload_id, key in unused:
        storage.delete(key)
        with session_scope(settings) as session:
            if retention.forget_upload(session, upload_id):
                done["uploads"].append(upload_id)
