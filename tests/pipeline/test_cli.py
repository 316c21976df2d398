"""`diarq process` and `diarq doctor` as a user runs them (real subprocess, real models)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIARQ = [sys.executable, "-c", "from diarq.cli import main; main()"]
JFK = ROOT / "tests" / "data" / "jfk.wav"

pytestmark = pytest.mark.slow


def _run(args: list[str], env: dict[str, str] | None = None, timeout: int = 300):
    full_env = {**os.environ, "PYANNOTE_METRICS_ENABLED": "0", **(env or {})}
    return subprocess.run(DIARQ + args, cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


def test_process_writes_srt_timeline_and_summary(tmp_path: Path) -> None:
    out, png = tmp_path / "jfk.srt", tmp_path / "who.png"
    proc = _run(["process", str(JFK), "--format", "srt", "-o", str(out), "--timeline", str(png),
                 "--participants", "John"])
    assert proc.returncode == 0, proc.stderr
    srt = out.read_text()
    assert srt.startswith("1\n00:00:0") and "-->" in srt
    assert "John" in srt and "country" in srt.lower()
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "real-time factor" in proc.stderr and "1 speakers" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_process_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    proc = _run(["process", str(tmp_path / "nope.wav"), "-q"])
    assert proc.returncode != 0
    assert "error [audio_missing]" in proc.stderr and "Traceback" not in proc.stderr


def test_doctor_reports_each_check_and_never_prints_the_token() -> None:
    token = "hf_doctorCanary0123456789abcdefghijklmn"
    proc = _run(["doctor"], env={"HF_TOKEN": token}, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 0, text
    for check in ("ffmpeg", "torch", "device", "model whisper-base", "model diarization",
                  "hf token"):
        assert check in text
    assert token not in text


def test_doctor_hub_profile_without_network_fails_fast_with_what_to_do() -> None:
    proc = _run(["doctor"], env={"DIARQ_PROFILE": "hub", "HF_TOKEN": "hf_" + "x" * 34,
                                 "HF_HUB_OFFLINE": "0"}, timeout=120)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "hub" in text.lower() and "hf_xxxx" not in text
