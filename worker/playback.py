"""A browser-playable copy of an upload browsers cannot play (AMR, WMA, AC-3, ADPCM...),
made once per job by ffmpeg while the pipeline runs (its own process: on a GPU worker
the CPU is otherwise idle), into a scratch file of this machine, then stored under the
job's prefix (either storage backend) until the job is deleted.

Opus or Vorbis in another container is stream-copied into WebM (lossless, instant);
anything else is encoded to mono Opus at 32 kbit/s (plenty for speech: a 2-hour
meeting takes about 30 MB).
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

from diarq.shared.errors import DiarqError
from diarq.shared.media import (
    PLAYBACK_COPY_SUFFIX,
    PLAYBACK_COPY_TYPE,
    browser_type,
    ffmpeg_tool,
    probe_upload,
)
from diarq.shared.settings import Settings
from diarq.shared.storage import Storage, StorageUnavailable, media_key
from diarq.worker.scratch import scratch_file

log = logging.getLogger(__name__)
OPUS_BITRATE = "32k"
_STREAM_COPY = {"opus", "vorbis"}


@dataclass(frozen=True)
class Playback:
    """What GET /v1/jobs/{id}/audio serves: a copy (its storage ``key``) or the upload
    (None)."""

    mime: str
    key: str | None = None


def copy_command(src: Path, dest: Path, codec: str) -> list[str]:
    """The ffmpeg command that writes the WebM copy of ``src`` (first audio stream)."""
    audio = ["-c:a", "copy"] if codec in _STREAM_COPY else \
        ["-c:a", "libopus", "-b:a", OPUS_BITRATE, "-ac", "1", "-application", "voip"]
    return [ffmpeg_tool("ffmpeg"), "-nostdin", "-hide_banner", "-v", "error", "-y",
            "-i", str(src), "-map", "0:a:0", "-vn", "-sn", "-dn", *audio,
            "-f", "webm", str(dest)]


class PlaybackCopy:
    """The copy of one upload: started with :meth:`start`, collected with :meth:`finish`
    (or dropped with :meth:`abort`). Failing to make or store it never fails the job: the
    page then offers the upload as it is."""

    def __init__(self, storage: Storage, settings: Settings, src: Path, job_id: str,
                 attempt: str) -> None:
        self.storage, self.settings, self.src = storage, settings, src
        self.job_id, self.attempt = job_id, attempt
        self._proc: subprocess.Popen[bytes] | None = None
        self._tmp: Path | None = None
        self._scratch = contextlib.ExitStack()
        self._mime: str | None = None

    def start(self) -> None:
        try:
            # in-process (PyAV, < 1 ms), not ffprobe: every job passes here
            probe = probe_upload(self.src, max_seconds=None)
        except DiarqError:
            return  # not audio: the pipeline fails the job with the right code
        self._mime = browser_type(probe.format_name, probe.codec)
        if self._mime is not None:
            return
        # a local file of this machine whatever the backend (ffmpeg writes files; a WebM
        # muxer seeks back to write its cues); stored once complete
        self._tmp = self._scratch.enter_context(scratch_file(self.settings, self.job_id))
        try:
            self._proc = subprocess.Popen(copy_command(self.src, self._tmp, probe.codec),
                                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except (OSError, DiarqError) as exc:
            log.warning("no playback copy: ffmpeg did not start (%s)", type(exc).__name__)
            self._drop_tmp()

    def finish(self, timeout_s: float = 600.0) -> Playback | None:
        """Wait for the copy and store it; returns what to serve (None: nothing usable)."""
        if self._mime is not None:
            return Playback(self._mime)
        if self._proc is None or self._tmp is None:
            return None
        try:
            _, err = self._proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.abort()
            log.warning("no playback copy: ffmpeg took longer than %.0f s", timeout_s)
            return None
        try:
            if self._proc.returncode != 0 or self._tmp.stat().st_size == 0:
                line = err.decode("utf-8", "replace").strip().splitlines()[:1]
                log.warning("no playback copy: ffmpeg failed (%s)",
                            line[0][:200] if line else "")
                return None
            key = media_key(self.job_id, self.attempt, PLAYBACK_COPY_SUFFIX)
            try:
                self.storage.put_file(key, self._tmp)
            except StorageUnavailable as exc:
                log.warning("no playback copy: it could not be stored (%s)", exc.message)
                return None
            return Playback(PLAYBACK_COPY_TYPE, key)
        finally:
            self._drop_tmp()

    def abort(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._drop_tmp()

    def _drop_tmp(self) -> None:
        self._tmp = None
        self._scratch.close()
