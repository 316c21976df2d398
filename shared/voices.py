"""Speaker voice embeddings kept with a job: one vector per diarized speaker, from the
speaker-level embedding model, for identifying people across recordings.

They are biometric data (SECURITY.md): stored in the database only (table
``speaker_voices``), never in the result JSON or the broker, deleted with the job. A
dedupe copy reads the voices of the job whose result it reuses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from diarq.shared.orm import Job, SpeakerVoice, utcnow


@dataclass
class VoiceSet:
    """The voices of one recording: ``vectors[label]`` (float32, 1-D) from ``model``."""

    model: str
    vectors: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # each speaker's talk time


def store_voices(session: Session, job_id: str, voices: VoiceSet) -> None:
    """Add the rows (the caller commits, with the result)."""
    for label, vector in voices.vectors.items():
        v = np.asarray(vector, dtype="<f4").reshape(-1)
        session.add(SpeakerVoice(job_id=job_id, speaker=label, model=voices.model,
                                 dim=int(v.size), vector=v.tobytes(),
                                 seconds=voices.seconds.get(label), created_at=utcnow()))


def load_voices(session: Session, job_id: str) -> VoiceSet | None:
    """The voices of a job (or of the job whose result it reuses); None if it has none."""
    job = session.get(Job, job_id)
    if job is None or job.deleted_at is not None:
        return None
    # its own rows (a copy gets them when its original is deleted), else the original's
    rows = _rows(session, job.id)
    if not rows and job.result_job_id:
        rows = _rows(session, job.result_job_id)
    if not rows:
        return None
    out = VoiceSet(model=rows[0].model)
    for row in rows:
        out.vectors[row.speaker] = np.frombuffer(row.vector, dtype="<f4", count=row.dim).copy()
        if row.seconds is not None:
            out.seconds[row.speaker] = row.seconds
    return out


def _rows(session: Session, job_id: str) -> list[SpeakerVoice]:
    return list(session.scalars(select(SpeakerVoice).where(SpeakerVoice.job_id == job_id)
                                .order_by(SpeakerVoice.speaker)))


def delete_voices(session: Session, job_id: str) -> None:
    session.execute(delete(SpeakerVoice).where(SpeakerVoice.job_id == job_id))


def copy_voices(session: Session, source_id: str, target_id: str) -> None:
    """Give ``target_id`` its own copy of ``source_id``'s voices (a dedupe copy whose
    original is being deleted keeps them, as it keeps the result)."""
    for row in _rows(session, source_id):
        session.add(SpeakerVoice(job_id=target_id, speaker=row.speaker, model=row.model,
                                 dim=row.dim, vector=row.vector, seconds=row.seconds,
                                 created_at=utcnow()))
