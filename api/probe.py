"""Upload check in the API process: is this audio, how long is it?

PyAV (libavformat in-process) answers in a few milliseconds where spawning ffprobe
costs ~90 ms per upload (bench/queue.py); the worker still decodes with ffmpeg and
fails the job with a code if the file turns out to be unusable. Without PyAV the
check falls back to worker.audio.probe_audio (ffprobe). Error codes are the same.
"""

from __future__ import annotations

from pathlib import Path

from shared.errors import AudioError

# libavformat reads up to 5 MB by default to find stream parameters; 4 KiB is enough for
# WAV/MP3/M4A/OGG/Opus/FLAC/WebM headers (same duration, codec, rate and channels as with
# 16 KiB on each) and cut the probe of a 1 MB WAV from 2.2 ms (defaults) and 0.83 ms
# (16 KiB: the WAV demuxer scans the whole window) to 0.28 ms. Files whose parameters
# are not found in that window are probed again with the defaults.
_QUICK_PROBE = {"probesize": "4096"}


def probe_upload(path: Path, *, max_seconds: float | None, filename: str | None = None):  # noqa: ANN201 (AudioProbe)
    from worker.audio import AudioProbe, probe_audio

    try:
        import av
    except ImportError:
        return probe_audio(path, max_seconds=max_seconds)
    shown = filename or "the upload"
    container = _open(av, path, shown, _QUICK_PROBE)
    if not _complete(container):
        container.close()
        container = _open(av, path, shown, {})
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


def _open(av, path: Path, shown: str, options: dict[str, str]):  # noqa: ANN001, ANN202
    try:
        return av.open(str(path), metadata_errors="ignore", options=options)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise _not_audio(shown, str(getattr(exc, "strerror", "") or "unreadable")) from None


def _complete(container) -> bool:  # noqa: ANN001
    """True when the quick probe found an audio stream with all its parameters."""
    audio = [s for s in container.streams if s.type == "audio"]
    return bool(audio) and all(
        (s.sample_rate or 0) > 0 and (s.channels or 0) > 0 and s.codec_context.name
        for s in audio
    ) and (audio[0].duration is not None or container.duration is not None)


def _not_audio(name: str, detail: str) -> AudioError:
    return AudioError(
        f"{name} has no readable audio stream ({detail}); upload an audio or video file "
        "(wav, mp3, m4a, ogg, webm, mp4...)",
        code="audio_not_audio",
    )
