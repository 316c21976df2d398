"""Upload check in the API process: is this audio, how long is it?

PyAV (libavformat in-process) answers in a few milliseconds where spawning ffprobe
costs ~90 ms per upload (bench/queue.py); the worker still decodes with ffmpeg and
fails the job with a code if the file turns out to be unusable. Without PyAV the
check falls back to worker.audio.probe_audio (ffprobe). Error codes are the same.
"""

from __future__ import annotations

from pathlib import Path

from shared.errors import AudioError


def probe_upload(path: Path, *, max_seconds: float | None, filename: str | None = None):  # noqa: ANN201 (AudioProbe)
    from worker.audio import AudioProbe, probe_audio

    try:
        import av
    except ImportError:
        return probe_audio(path, max_seconds=max_seconds)
    shown = filename or "the upload"
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise _not_audio(shown, str(getattr(exc, "strerror", "") or "unreadable")) from None
    try:
        audio = [s for s in container.streams if s.type == "audio"]
        if not audio:
            raise _not_audio(shown, "the container holds no audio stream")
        stream = audio[0]
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        probe = AudioProbe(
            duration=duration,
            codec=stream.codec_context.name or "unknown",
            sample_rate=int(stream.sample_rate or 0),
            channels=int(stream.channels or 0),
            format_name=container.format.name or "",
        )
    finally:
        container.close()
    if max_seconds is not None and duration is not None and duration > max_seconds:
        raise AudioError(
            f"{shown} is {duration / 3600:.1f} h long; the limit is {max_seconds / 3600:.1f} h "
            "(DIARQ_MAX_AUDIO_SECONDS): split the recording",
            code="audio_too_long", http_status=413,
        )
    return probe


def _not_audio(name: str, detail: str) -> AudioError:
    return AudioError(
        f"{name} has no readable audio stream ({detail}); upload an audio or video file "
        "(wav, mp3, m4a, ogg, webm, mp4...)",
        code="audio_not_audio",
    )
