"""The files one attempt derives from a job's audio for the web page: the waveform peaks
(from the samples the pipeline decodes) and, for uploads browsers cannot play, a
playable copy (ffmpeg, in parallel with the pipeline). Recorded on the job with its
result (shared/jobs.py ``succeed``), or deleted when the attempt does not succeed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from diarq.shared.storage import Storage
from diarq.worker.playback import PlaybackCopy
from diarq.worker.waveform import waveform_file

log = logging.getLogger(__name__)
WAVEFORM_SUFFIX = ".peaks"


class JobMedia:
    def __init__(self, storage: Storage, audio_path: Path, job_id: str) -> None:
        self.storage, self.job_id = storage, job_id
        self._waveform: bytes | None = None
        self._copy = PlaybackCopy(storage, audio_path, job_id)
        self._copy.start()

    def on_audio(self, audio: Any) -> None:
        """The pipeline's decoded samples: the peaks are taken now, while they exist."""
        try:
            self._waveform = waveform_file(audio)
        except Exception:  # a page without a waveform beats a failed job
            log.warning("waveform peaks failed job_id=%s", self.job_id, exc_info=True)

    def finish(self) -> dict[str, str | None]:
        """Wait for the copy and store the peaks; returns the job's media columns."""
        playback = self._copy.finish()
        files: dict[str, str | None] = {"playback_path": None, "playback_type": None,
                                        "waveform_path": None}
        if playback is not None:
            files["playback_path"], files["playback_type"] = playback.rel_path, playback.mime
        if self._waveform is not None:
            rel = self.storage.derived_name(self.job_id, WAVEFORM_SUFFIX)
            files["waveform_path"] = self.storage.write_bytes(rel, self._waveform)
            self._waveform = None
        return files

    def abort(self) -> None:
        self._copy.abort()

    def discard(self, files: dict[str, str | None]) -> None:
        for key in ("playback_path", "waveform_path"):
            self.storage.delete(files.get(key))
