"""bench/gpu.py runs in CI on CPU, on a short file: both runs, every stage, its figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


def test_gpu_bench_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu.py"), "--device", "cpu", "--audio",
         str(ROOT / "tests" / "data" / "jfk.wav"), "--json", str(out)],
        cwd=ROOT, env={**os.environ, "PYANNOTE_METRICS_ENABLED": "0"}, capture_output=True,
        text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(out.read_text())
    assert set(report["runs"]) == {"offline", "hub"}
    for run in report["runs"].values():
        assert run["device"] == "cpu" and 10 < run["audio_seconds"] < 12
        assert {"decode", "diarize", "transcribe", "align", "total"} <= set(run["stages"])
        assert run["stages"]["total"]["rtf"] > 0 and run["memory"]["peak_rss_mb"] > 0
        assert run["words"] > 10 and run["speakers"] >= 1
    assert report["runs"]["hub"]["stages"]["align"]["seconds"] > 0  # the wav2vec2 aligner ran
    assert all(line.startswith("(CPU run") for line in report["targets"])
    assert "x real time" in proc.stdout and "hub      diarize" in proc.stdout
