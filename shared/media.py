"""Media facts every side needs: the pipeline's sample rate, and probing a file.

Probing answers "is this audio, how long is it?" twice over: with ffprobe
(:func:`probe_audio`, what the worker and CLI use) and in-process with PyAV
(:func:`probe_upload`, what the API runs on every upload: libavformat answers in a
few milliseconds where spawning ffprobe costs ~90 ms; bench/queue_load.py). Without
PyAV the upload check falls back to ffprobe. Error codes are the same either way:
``audio_missing``, ``audio_empty``, ``audio_not_audio``, ``audio_too_long``,
``ffmpeg_missing``. Messages never show the storage path, only the user's name for
the file.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from diarq.shared.errors import AudioError, ConfigError

# what every stage downstream of decoding works in: 16 kHz mono float32
SAMPLE_RATE = 16000

# What browsers play as uploaded, by container (ffprobe/PyAV format name) and codec.
# Checked in Debian's Chromium 156 (docs/web.md): it also plays these; it refuses AC-3,
# AIFF, WMA, ADPCM and ALAC. Ogg is left out: Chromium reports an Ogg/Opus file's
# duration as Infinity, so it gets a (stream-copied) WebM. Everything else gets a
# browser-playable copy made by the worker (worker/playback.py).
_PLAYABLE: dict[str, tuple[frozenset[str], str]] = {
    "wav": (frozenset({"pcm_s16le", "pcm_s24le", "pcm_u8", "pcm_f32le"}), "audio/wav"),
    "mp3": (frozenset({"mp3"}), "audio/mpeg"),
    "mov,mp4,m4a,3gp,3g2,mj2": (frozenset({"aac", "mp3"}), "audio/mp4"),
    "aac": (frozenset({"aac"}), "audio/aac"),
    "flac": (frozenset({"flac"}), "audio/flac"),
    "matroska,webm": (frozenset({"opus", "vorbis"}), "audio/webm"),
}
# the browser-playable copy: Opus in WebM (WebM's cues make seeking exact)
PLAYBACK_COPY_TYPE = "audio/webm"
PLAYBACK_COPY_SUFFIX = ".webm"


def browser_type(format_name: str, codec: str) -> str | None:
    """The MIME type browsers play this file as, or None when it needs a copy."""
    codecs, mime = _PLAYABLE.get(format_name, (frozenset(), ""))
    return mime if codec in codecs else None


def guess_type(codec: str | None) -> str:
    """A MIME type for an upload from its codec alone, for the time before the worker
    has looked at it (browsers sniff audio anyway)."""
    for codecs, mime in _PLAYABLE.values():
        if codec in codecs:
            return mime
    return "application/octet-stream"

@dataclass(frozen=True)
class AudioProbe:
    """What ffprobe says about a file's first audio stream."""

    duration: float | None  # seconds; None when the container does not say
    codec: str
    sample_rate: int
    channels: int
    format_name: str = ""


def ffmpeg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise ConfigError(
            f"{name} is not installed or not on PATH; install ffmpeg "
            "(Debian/Ubuntu: apt-get install ffmpeg)",
            code="ffmpeg_missing",
        )
    return path


def _check_file(path: Path, shown: str) -> None:
    if not path.exists():
        raise AudioError(
            f"audio file not found: {shown}; check the path, or upload the file again",
            code="audio_missing",
        )
    if not path.is_file():
        raise AudioError(f"{shown} is not a file", code="audio_missing")
    if path.stat().st_size == 0:
        raise AudioError(
            f"{shown} is empty (0 bytes); upload the complete recording",
            code="audio_empty",
        )


def not_audio_error(shown: str, detail: str = "") -> AudioError:
    extra = f" ({detail})" if detail else ""
    return AudioError(
        f"{shown} has no readable audio stream{extra}; upload an audio or video "
        "file (wav, mp3, m4a, ogg, webm, mp4...)",
        code="audio_not_audio",
    )


def probe_audio(path: str | Path, *, max_seconds: float | None = None,
                name: str | None = None) -> AudioProbe:
    """Describe the first audio stream of ``path`` (ffprobe); reject what is not audio.

    ``max_seconds``: raise ``audio_too_long`` when the announced duration exceeds it.
    ``name``: what error messages call the file (the name the user uploaded; default the
    file's own name). Messages never show ``path``: on a server it is a storage path.
    """
    path = Path(path)
    shown = name or path.name
    _check_file(path, shown)
    cmd = [
        ffmpeg_tool("ffprobe"), "-v", "error", "-print_format", "json",
        "-show_format", "-show_streams", "-select_streams", "a:0", str(path),
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise not_audio_error(shown, ffmpeg_error_line(proc.stderr, path, shown))
    try:
        info = json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError:
        raise not_audio_error(shown) from None
    streams = info.get("streams") or []
    if not streams:
        raise not_audio_error(shown, "the container holds no audio stream")
    stream = streams[0]
    fmt = info.get("format") or {}
    duration = _float(stream.get("duration")) or _float(fmt.get("duration"))
    probe = AudioProbe(
        duration=duration,
        codec=str(stream.get("codec_name") or "unknown"),
        sample_rate=int(_float(stream.get("sample_rate")) or 0),
        channels=int(stream.get("channels") or 0),
        format_name=str(fmt.get("format_name") or ""),
    )
    if max_seconds is not None and duration is not None and duration > max_seconds:
        raise too_long_error(shown, duration, max_seconds)
    return probe


# libavformat reads up to 5 MB by default to find stream parameters; 4 KiB is enough for
# WAV/MP3/M4A/OGG/Opus/FLAC/WebM headers (same duration, codec, rate and channels as with
# 16 KiB on each) and cut the probe of a 1 MB WAV from 2.2 ms (defaults) and 0.83 ms
# (16 KiB: the WAV demuxer scans the whole window) to 0.28 ms. Files whose parameters
# are not found in that window are probed again with the defaults.
_QUICK_PROBE = {"probesize": "4096"}


def probe_upload(path: Path | BinaryIO, *, max_seconds: float | None,
                 filename: str | None = None) -> AudioProbe:
    """Probe a stored upload in-process: a local path, or a seekable binary file object
    (an object in S3 read with ranged GETs: only the headers are fetched)."""
    try:
        import av
    except ImportError:
        if not isinstance(path, Path):
            raise ConfigError("probing uploads in object storage needs PyAV (pip install av)",
                              code="ffmpeg_missing") from None
        return probe_audio(path, max_seconds=max_seconds)
    shown = filename or "the upload"
    container = _open(av, path, shown, _QUICK_PROBE)
    if not _complete(container):
        container.close()
        if not isinstance(path, Path):
            path.seek(0)
        container = _open(av, path, shown, {})
    try:
        audio = [s for s in container.streams if s.type == "audio"]
        if not audio:
            raise not_audio_error(shown, "the container holds no audio stream")
        stream = audio[0]
        duration = None
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        probe = AudioProbe(
            duration=duration,
            # the codec's name as ffprobe gives it ("mp3"), not the decoder's ("mp3float")
            codec=stream.codec_context.codec.canonical_name or stream.codec_context.name
            or "unknown",
            sample_rate=int(stream.sample_rate or 0),
            channels=int(stream.channels or 0),
            format_name=container.format.name or "",
        )
    finally:
        container.close()
    if max_seconds is not None and duration is not None and duration > max_seconds:
        raise too_long_error(shown, duration, max_seconds)
    return probe


def _open(av, path: Path | BinaryIO, shown: str, options: dict[str, str]):  # noqa: ANN001, ANN202
    try:
        source = str(path) if isinstance(path, Path) else path
        return av.open(source, metadata_errors="ignore", options=options)
    except (av.error.FFmpegError, ValueError, OSError) as exc:
        raise not_audio_error(shown, str(getattr(exc, "strerror", "") or "unreadable")) from None


def _complete(container) -> bool:  # noqa: ANN001
    """True when the quick probe found an audio stream with all its parameters."""
    audio = [s for s in container.streams if s.type == "audio"]
    return bool(audio) and all(
        (s.sample_rate or 0) > 0 and (s.channels or 0) > 0 and s.codec_context.name
        for s in audio
    ) and (audio[0].duration is not None or container.duration is not None)


def too_long_error(shown: str, duration: float, max_seconds: float) -> AudioError:
    return AudioError(
        f"{shown} is {duration / 60:.0f} min long, more than the {max_seconds / 60:.0f} min "
        "this server accepts; split the recording or raise DIARQ_MAX_AUDIO_SECONDS",
        code="audio_too_long",
        http_status=413,
    )


def ffmpeg_error_line(raw: bytes, path: Path, shown: str) -> str:
    text = raw.decode("utf-8", "replace").strip()
    line = text.splitlines()[0] if text else ""
    # ffmpeg prefixes messages with the input path: drop it, and name the file as the
    # user knows it wherever else the path appears ("Error opening input file <path>.")
    line = line.split(": ", 1)[-1] if ": " in line else line
    for server_name in (str(path), path.name):
        line = line.replace(server_name, shown)
    return line[:200]


def _float(value: object) -> float | None:
    try:
        f = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return f if f == f and f >= 0 else None  # drop NaN
