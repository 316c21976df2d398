"""Audio input: probe a file with ffprobe and decode it with the ffmpeg CLI.

Everything downstream wants 16 kHz mono float32. ffmpeg reads every container
and codec people upload (wav, mp3, m4a, ogg, webm, mp4 video...), so the file is
piped through ``ffmpeg -f f32le`` straight into one preallocated numpy buffer:
no temporary WAV, no intermediate bytes objects, so a 2 h file costs its 460 MB
of samples and little more.

Failures raise :class:`AudioError` with a stable code:
``audio_missing``, ``audio_empty``, ``audio_not_audio``, ``audio_truncated``,
``audio_too_long``, ``ffmpeg_missing``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shared.errors import AudioError, ConfigError

SAMPLE_RATE = 16000
_BYTES_PER_SAMPLE = 4  # float32
# Decoded audio shorter than this share of the duration the header announces
# means the file stops early (cut upload, broken copy).
_TRUNCATED_RATIO = 0.9
# ...but only judge files whose header announces more than this; headers of tiny
# files are often rounded.
_TRUNCATED_MIN_SECONDS = 2.0
_READ_CHUNK = 1 << 20  # bytes read from ffmpeg per call


@dataclass(frozen=True)
class AudioProbe:
    """What ffprobe says about a file's first audio stream."""

    duration: float | None  # seconds; None when the container does not say
    codec: str
    sample_rate: int
    channels: int
    format_name: str = ""


def _tool(name: str) -> str:
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


def _not_audio(shown: str, detail: str = "") -> AudioError:
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
        _tool("ffprobe"), "-v", "error", "-print_format", "json",
        "-show_format", "-show_streams", "-select_streams", "a:0", str(path),
    ]
    proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise _not_audio(shown, _first_line(proc.stderr, path, shown))
    try:
        info = json.loads(proc.stdout or b"{}")
    except json.JSONDecodeError:
        raise _not_audio(shown) from None
    streams = info.get("streams") or []
    if not streams:
        raise _not_audio(shown, "the container holds no audio stream")
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
        raise _too_long(shown, duration, max_seconds)
    return probe


def decode_audio(
    path: str | Path,
    *,
    max_seconds: float | None = None,
    probe: AudioProbe | None = None,
    name: str | None = None,
) -> np.ndarray:
    """Decode ``path`` to 16 kHz mono float32 samples (1-D numpy array).

    Raises AudioError (missing, empty, not audio, truncated, too long); ``name`` as in
    :func:`probe_audio`.
    """
    path = Path(path)
    shown = name or path.name
    probe = probe or probe_audio(path, max_seconds=max_seconds, name=name)
    limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE)

    cmd = [
        _tool("ffmpeg"), "-nostdin", "-hide_banner", "-v", "error",
        "-i", str(path), "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-ac", "1", "-ar", str(SAMPLE_RATE), "-f", "f32le", "-acodec", "pcm_f32le", "pipe:1",
    ]
    # Size the buffer from the announced duration (+2 %) so that normally no
    # reallocation happens; grow geometrically when the header lied.
    expected = int((probe.duration or 60.0) * SAMPLE_RATE * 1.02) + SAMPLE_RATE
    if limit is not None:
        expected = min(expected, limit + SAMPLE_RATE)
    buf = np.empty(max(expected, SAMPLE_RATE), dtype=np.float32)
    n_bytes = 0
    stderr_lines: list[bytes] = []

    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # Drain stderr in a thread: a chatty decoder would otherwise fill the pipe and stall.
    reader = threading.Thread(target=_drain, args=(proc.stderr, stderr_lines), daemon=True)
    reader.start()
    try:
        assert proc.stdout is not None
        while True:
            capacity = buf.nbytes - n_bytes
            if capacity < _READ_CHUNK:
                if limit is not None and n_bytes // _BYTES_PER_SAMPLE > limit:
                    break
                bigger = np.empty(int(buf.size * 1.5) + _READ_CHUNK, dtype=np.float32)
                bigger[: buf.size] = buf
                buf = bigger
                capacity = buf.nbytes - n_bytes
            view = memoryview(buf.view(np.uint8))[n_bytes : n_bytes + min(capacity, _READ_CHUNK)]
            got = proc.stdout.readinto(view)
            if not got:
                break
            n_bytes += got
    finally:
        if proc.poll() is None and limit is not None and n_bytes // _BYTES_PER_SAMPLE > limit:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()
        rc = proc.wait()
        reader.join(timeout=5)

    n = n_bytes // _BYTES_PER_SAMPLE
    if limit is not None and n > limit:
        raise _too_long(shown, n / SAMPLE_RATE, max_seconds or 0)
    errors = b"".join(stderr_lines).decode("utf-8", "replace").strip()
    if n == 0:
        if rc != 0:
            raise _not_audio(shown, _first_line(errors.encode(), path, shown))
        raise AudioError(
            f"{shown} contains no audio samples; upload a recording that is not empty",
            code="audio_empty",
        )
    decoded = n / SAMPLE_RATE
    announced = probe.duration
    if "wav" in probe.format_name:
        # ffmpeg derives a WAV's duration from the file size, so a cut WAV looks
        # whole; its RIFF header still says how long the data should be.
        announced = _wav_announced_seconds(path) or announced
    short = (
        announced is not None
        and announced > _TRUNCATED_MIN_SECONDS
        and decoded < announced * _TRUNCATED_RATIO
    )
    if rc != 0 or short:
        what = f"decoded {decoded:.1f} s"
        if announced:
            what += f" of the {announced:.1f} s its header announces"
        raise AudioError(
            f"{shown} is damaged or cut short ({what}); upload the complete file again",
            code="audio_truncated",
        )
    # Shrink in place to the decoded length (realloc; no second copy of the samples).
    buf.resize(n, refcheck=False)
    return buf


def _wav_announced_seconds(path: Path) -> float | None:
    """Duration the RIFF header of a PCM WAV announces (data chunk size / byte rate)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(1 << 16)
    except OSError:
        return None
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos, byte_rate = 12, 0
    while pos + 8 <= len(head):
        chunk_id, size = head[pos : pos + 4], int.from_bytes(head[pos + 4 : pos + 8], "little")
        if chunk_id == b"fmt " and pos + 16 <= len(head):
            byte_rate = int.from_bytes(head[pos + 16 : pos + 20], "little")
        if chunk_id == b"data":
            # 0 and 0xFFFFFFFF mean "unknown length" (streamed WAV): no claim
            if not byte_rate or size in (0, 0xFFFFFFFF):
                return None
            return size / byte_rate
        pos += 8 + size + (size & 1)
    return None


def _too_long(shown: str, duration: float, max_seconds: float) -> AudioError:
    return AudioError(
        f"{shown} is {duration / 60:.0f} min long, more than the {max_seconds / 60:.0f} min "
        "this server accepts; split the recording or raise DIARQ_MAX_AUDIO_SECONDS",
        code="audio_too_long",
        http_status=413,
    )


def _drain(stream, sink: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    kept = 0
    for line in iter(stream.readline, b""):
        if kept < 64 * 1024:  # keep the start; a broken file can log megabytes
            sink.append(line)
            kept += len(line)
    stream.close()


def _first_line(raw: bytes, path: Path, shown: str) -> str:
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
