"""The objects one attempt derives from a job's audio for the web page: the waveform
peaks (from the samples the pipeline decodes) and, for uploads browsers cannot play, a
playable copy (ffmpeg, in parallel with the pipeline, from the same local copy of the
audio). Both are stored through the storage interface under the job's prefix
(``jobs/<id>/media/<attempt>...``: local directory or object store alike) and recorded
on the job with its result (shared/jobs.py ``succeed``), or deleted when the attempt
does not succeed.

Used as a context manager around the pipeline: leaving the block stops an unfinished
ffmpeg and removes its scratch file (the local audio it reads goes at the same time).
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from diarq.shared.settings import Settings
from diarq.shared.storage import Storage, StorageUnavailable, media_key
from diarq.worker.playback import PlaybackCopy
from diarq.worker.waveform import waveform_file

log = logging.getLogger(__name__)
WAVEFORM_SUFFIX = ".peaks"


class JobMedia:
    def __init__(self, storage: Storage, settings: Settings, audio_path: Path,
                 job_id: str) -> None:
        self.storage, self.job_id = storage, job_id
        # one name per attempt: a stale attempt's clean-up never touches another's objects
        self.attempt = uuid.uuid4().hex[:12]
        self._waveform: bytes | None = None
        self._copy = PlaybackCopy(storage, settings, audio_path, job_id, self.attempt)

    def __enter__(self) -> JobMedia:
        self._copy.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._copy.abort()

    def on_audio(self, audio: Any) -> None:
        """The pipeline's decoded samples: the peaks are taken now, while they exist."""
        try:
            self._waveform = waveform_file(audio)
        except Exception:  # a page without a waveform beats a failed job
            log.warning("waveform peaks failed job_id=%s", self.job_id, exc_info=True)

    def finish(self) -> dict[str, str | None]:
        """Wait for the copy and store it and the peaks; returns the job's media columns
        (a part that could not be made or stored is None: the page does without it)."""
        playback = self._copy.finish()
        files: dict[str, str | None] = {"playback_path": None, "playback_type": None,
                                        "waveform_path": None}
        if playback is not None:
            files["playback_path"], files["playback_type"] = playback.key, playback.mime
        if self._waveform is not None:
            key = media_key(self.job_id, self.attempt, WAVEFORM_SUFFIX)
            try:
                self.storage.put_bytes(key, self._waveform)
                files["waveform_path"] = key
            except StorageUnavailable as exc:
                log.warning("waveform peaks not stored job_id=%s: %s", self.job_id,
                            exc.message)
            self._waveform = None
        return files

    def discard(self, files: dict[str, str | None]) -> None:
        """The attempt did not record its result: its objects are no one's."""
        for column in ("playback_path", "waveform_path"):
            try:
                self.storage.delete(files.get(column))
            except StorageUnavailable:
                # left under the job's prefix: deleted with the job
                log.warning("could not delete an object of a lost attempt job_id=%s",
                            self.job_id)
