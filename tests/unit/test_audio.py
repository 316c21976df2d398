"""Decoding and probing real files made with ffmpeg/sox (no models needed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from diarq.shared.errors import AudioError
from diarq.shared.media import SAMPLE_RATE, probe_audio
from diarq.worker.audio import decode_audio

DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE = DATA / "sample.wav"  # 30 s, 16 kHz mono

pytestmark = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="needs ffmpeg")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args], check=True)


@pytest.fixture(scope="module")
def stereo_mp3(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("audio") / "sample.mp3"
    ffmpeg("-i", str(SAMPLE), "-ac", "2", "-ar", "44100", str(out))
    return out


@pytest.mark.parametrize("ext,extra", [
    ("mp3", []), ("m4a", []), ("ogg", ["-c:a", "libvorbis"]), ("webm", ["-c:a", "libopus"]),
    ("flac", []),
])
def test_containers_decode_to_16k_mono(tmp_path, stereo_mp3, ext, extra):
    out = tmp_path / f"s.{ext}"
    ffmpeg("-i", str(stereo_mp3), *extra, str(out))
    audio = decode_audio(out)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) / SAMPLE_RATE - 30.0) < 0.1
    assert 0.01 < float(np.abs(audio).max()) <= 1.0


def test_video_file_decodes_its_audio_track(tmp_path, stereo_mp3):
    out = tmp_path / "talk.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x64:d=30", "-i", str(stereo_mp3),
           "-shortest", str(out))
    probe = probe_audio(out)
    assert probe.codec == "aac" and probe.channels == 2
    assert abs(len(decode_audio(out)) / SAMPLE_RATE - 30.0) < 0.1


def test_wav_matches_samples_exactly():
    audio = decode_audio(SAMPLE)
    assert len(audio) == 30 * SAMPLE_RATE
    probe = probe_audio(SAMPLE)
    assert (probe.sample_rate, probe.channels, probe.codec) == (16000, 1, "pcm_s16le")
    assert probe.duration == pytest.approx(30.0)


def code_of(path: Path, **kw) -> str:
    with pytest.raises(AudioError) as info:
        decode_audio(path, **kw)
    return info.value.code


def test_missing_file(tmp_path):
    assert code_of(tmp_path / "gone.wav") == "audio_missing"


def test_empty_file(tmp_path):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    assert code_of(p) == "audio_empty"


def test_random_bytes_are_not_audio(tmp_path):
    p = tmp_path / "noise.wav"
    p.write_bytes(os.urandom(50_000))
    assert code_of(p) == "audio_not_audio"


def test_text_file_is_not_audio(tmp_path):
    p = tmp_path / "notes.mp3"
    p.write_text("meeting notes, not a recording\n" * 100)
    assert code_of(p) == "audio_not_audio"


def test_video_without_audio_is_not_audio(tmp_path):
    p = tmp_path / "silent_film.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=64x64:d=2", str(p))
    assert code_of(p) == "audio_not_audio"


def test_truncated_mp3(tmp_path, stereo_mp3):
    p = tmp_path / "cut.mp3"
    data = stereo_mp3.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    assert code_of(p) == "audio_truncated"


def test_truncated_wav(tmp_path):
    p = tmp_path / "cut.wav"
    data = SAMPLE.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    assert code_of(p) == "audio_truncated"


def test_too_long(tmp_path):
    assert code_of(SAMPLE, max_seconds=10) == "audio_too_long"
    with pytest.raises(AudioError) as info:
        probe_audio(SAMPLE, max_seconds=10)
    assert info.value.http_status == 413


def test_silence_decodes(tmp_path):
    p = tmp_path / "silence.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "2", str(p), "trim", "0", "3"], check=True)
    audio = decode_audio(p)
    assert len(audio) == 3 * SAMPLE_RATE and float(np.abs(audio).max()) == 0.0


def test_header_shorter_than_data_still_decodes_everything(tmp_path):
    # a WAV whose header says "unknown length" (streamed): no false truncation
    p = tmp_path / "streamed.wav"
    ffmpeg("-i", str(SAMPLE), "-f", "wav", "-ac", "1", str(p))
    raw = bytearray(p.read_bytes())
    i = raw.find(b"data")
    raw[i + 4 : i + 8] = (0xFFFFFFFF).to_bytes(4, "little")
    p.write_bytes(bytes(raw))
    assert abs(len(decode_audio(p)) / SAMPLE_RATE - 30.0) < 0.1


def test_long_audio_is_cut_at_quiet_points():
    from diarq.worker.asr import split_points

    rng = np.random.default_rng(0)
    # 100 s of "speech" (noise) with a 0.5 s silence at 28-28.5 s, 61-61.5 s and 90-90.5 s
    audio = (rng.standard_normal(100 * SAMPLE_RATE) * 0.1).astype(np.float32)
    for start in (28, 61, 90):
        audio[start * SAMPLE_RATE : int((start + 0.5) * SAMPLE_RATE)] = 0.0
    ranges = split_points(audio, window_s=30)
    assert ranges[0][0] == 0 and ranges[-1][1] == len(audio)
    assert all(a[1] == b[0] for a, b in zip(ranges, ranges[1:], strict=False))
    cuts = [hi / SAMPLE_RATE for _, hi in ranges[:-1]]
    assert len(cuts) == 2
    assert 28 < cuts[0] < 28.5 and 61 < cuts[1] < 61.5
    assert split_points(audio[: 40 * SAMPLE_RATE], window_s=30) == [(0, 40 * SAMPLE_RATE)]
