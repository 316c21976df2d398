"""Audio input: decode a file with the ffmpeg CLI (probing is in diarq.shared.media).

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

import subprocess
import threading
from pathlib import Path

import numpy as np

from diarq.shared.errors import AudioError
from diarq.shared.media import (
    SAMPLE_RATE,
    AudioProbe,
    ffmpeg_error_line,
    ffmpeg_tool,
    not_audio_error,
    probe_audio,
    too_long_error,
)

_BYTES_PER_SAMPLE = 4  # float32
# Decoded audio shorter than this share of the duration the header announces
# means the file stops early (cut upload, broken copy).
_TRUNCATED_RATIO = 0.9
# ...but only judge files whose header announces more than this; headers of tiny
# files are often rounded.
_TRUNCATED_MIN_SECONDS = 2.0
_READ_CHUNK = 1 << 20  # bytes read from ffmpeg per call


def decode_audio(
    path: str | Path,
    *,
    max_seconds: float | None = None,
    probe: AudioProbe | None = None,
    name: str | None = None,
    channels: int = 1,
) -> np.ndarray:
    """Decode ``path`` to 16 kHz float32 samples: mono (a 1-D array), or with
    ``channels`` > 1 each channel kept apart (``(channels, samples)``; the file must have
    that many channels, multichannel recordings).

    Raises AudioError (missing, empty, not audio, truncated, too long); ``name`` as in
    :func:`probe_audio`.
    """
    path = Path(path)
    shown = name or path.name
    probe = probe or probe_audio(path, max_seconds=max_seconds, name=name)
    # limits and sizes below count interleaved samples (all channels)
    limit = None if max_seconds is None else int(max_seconds * SAMPLE_RATE) * channels

    cmd = [
        ffmpeg_tool("ffmpeg"), "-nostdin", "-hide_banner", "-v", "error",
        "-i", str(path), "-map", "0:a:0", "-vn", "-sn", "-dn",
        "-ac", str(channels), "-ar", str(SAMPLE_RATE), "-f", "f32le", "-acodec", "pcm_f32le",
        "pipe:1",
    ]
    # Size the buffer from the announced duration (+2 %) so that normally no
    # reallocation happens; grow geometrically when the header lied.
    expected = (int((probe.duration or 60.0) * SAMPLE_RATE * 1.02) + SAMPLE_RATE) * channels
    if limit is not None:
        expected = min(expected, limit + SAMPLE_RATE * channels)
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
        raise too_long_error(shown, n / channels / SAMPLE_RATE, max_seconds or 0)
    errors = b"".join(stderr_lines).decode("utf-8", "replace").strip()
    if n == 0:
        if rc != 0:
            raise not_audio_error(shown, ffmpeg_error_line(errors.encode(), path, shown))
        raise AudioError(
            f"{shown} contains no audio samples; upload a recording that is not empty",
            code="audio_empty",
        )
    decoded = n / channels / SAMPLE_RATE
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
    buf.resize(n - n % channels, refcheck=False)
    if channels == 1:
        return buf
    # interleaved frames -> one contiguous row per channel
    return np.ascontiguousarray(buf.reshape(-1, channels).T)


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


def _drain(stream, sink: list[bytes]) -> None:  # type: ignore[no-untyped-def]
    kept = 0
    for line in iter(stream.readline, b""):
        if kept < 64 * 1024:  # keep the start; a broken file can log megabytes
            sink.append(line)
            kept += len(line)
    stream.close()


