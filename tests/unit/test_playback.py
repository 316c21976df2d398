"""Which uploads browsers play as they are (shared/media.py, from what Debian's Chromium
plays: docs/web.md), and the WebM copy ffmpeg makes of the others (worker/playback.py),
run on real files made with ffmpeg."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from diarq.shared.media import browser_type, guess_type, probe_audio
from diarq.shared.settings import Settings, load_settings
from diarq.shared.storage import LocalStorage
from diarq.worker.playback import Playback, PlaybackCopy
from diarq.worker.scratch import scratch_audio_dir

DATA = Path(__file__).resolve().parents[1] / "data"


@pytest.mark.parametrize(("fmt", "codec", "mime"), [
    ("wav", "pcm_s16le", "audio/wav"), ("mp3", "mp3", "audio/mpeg"),
    ("mov,mp4,m4a,3gp,3g2,mj2", "aac", "audio/mp4"), ("flac", "flac", "audio/flac"),
    ("matroska,webm", "opus", "audio/webm"), ("aac", "aac", "audio/aac"),
    ("wav", "adpcm_ima_wav", None), ("asf", "wmav2", None), ("amr", "amr_nb", None),
    ("ac3", "ac3", None), ("mov,mp4,m4a,3gp,3g2,mj2", "alac", None), ("ogg", "opus", None),
    ("aiff", "pcm_s16be", None),
])
def test_browser_playable_table(fmt: str, codec: str, mime: str | None) -> None:
    assert browser_type(fmt, codec) == mime


def test_guess_from_codec_alone() -> None:
    assert guess_type("mp3") == "audio/mpeg"
    assert guess_type("wmav2") == "application/octet-stream"


def _make(tmp_path: Path, name: str, *codec: str) -> Path:
    out = tmp_path / name
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(DATA / "jfk.wav"), "-t", "4",
                    *codec, str(out)], check=True, timeout=60)
    return out


def _storage(tmp_path: Path) -> tuple[LocalStorage, Settings]:
    settings = load_settings(data_dir=tmp_path / "var")
    return LocalStorage(Path(settings.storage_dir)), settings


def _scratch_files(settings: Settings) -> list[Path]:
    folder = scratch_audio_dir(settings)
    return list(folder.iterdir()) if folder.is_dir() else []


@pytest.mark.parametrize(("name", "codec"), [("talk.wma", ["-c:a", "wmav2"]),
                                             ("talk.ogg", ["-c:a", "libopus"])])
def test_unplayable_uploads_get_a_webm_copy(tmp_path: Path, name: str,
                                            codec: list[str]) -> None:
    storage, settings = _storage(tmp_path)
    src = _make(tmp_path, name, *codec)
    job_id = "ab" + "0" * 34
    copy = PlaybackCopy(storage, settings, src, job_id, "attempt1")
    copy.start()
    made = copy.finish(timeout_s=120)
    assert made is not None and made.mime == "audio/webm"
    # under the job's prefix (deleted with the job), named per attempt
    assert made.key == f"jobs/{job_id}/media/attempt1.webm"
    probe = probe_audio(storage.path(made.key))
    assert probe.codec == "opus" and "webm" in probe.format_name
    assert abs((probe.duration or 0) - 4.0) < 0.2
    assert not _scratch_files(settings)  # ffmpeg's output was stored, then removed


def test_playable_uploads_are_served_as_they_are(tmp_path: Path) -> None:
    storage, settings = _storage(tmp_path)
    copy = PlaybackCopy(storage, settings, _make(tmp_path, "talk.mp3", "-c:a", "libmp3lame"),
                        "cd" * 18, "attempt1")
    copy.start()
    assert copy.finish() == Playback("audio/mpeg", None)
    assert not (storage.root / "jobs").exists()


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    storage, settings = _storage(tmp_path)
    copy = PlaybackCopy(storage, settings, _make(tmp_path, "talk.wma", "-c:a", "wmav2"),
                        "ef" * 18, "attempt1")
    copy.start()
    assert _scratch_files(settings)  # ffmpeg writes into the scratch directory
    copy.abort()
    assert not _scratch_files(settings)
    assert not (storage.root / "jobs").exists()
