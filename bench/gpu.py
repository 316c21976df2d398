"""GPU speed: per-stage real-time factor and peak GPU memory for one hour of audio.

    .venv/bin/python bench/gpu.py                      # on a GPU: one hour, both profiles
    .venv/bin/python bench/gpu.py --device cpu --audio tests/data/jfk.wav   # CI, on CPU

Runs ``run_pipeline`` (the worker's code, models loaded before timing) twice on the same
recording (default: tests/data recordings repeated to ``--seconds``, 3600):

* ``offline``: the offline profile (segmentation v2 + GE2E + our clustering; Whisper base
  through faster-whisper with word timestamps) on the chosen device;
* ``hub``: the production path: a pipeline shaped like pyannote/speaker-diarization-3.1
  (its config.yaml verbatim, the real segmentation-3.0 weights, a seeded random
  WeSpeaker ResNet34: random weights, real speed), WhisperX batched ASR with Whisper base,
  and wav2vec2 alignment with a small seeded random CTC model (tests/hub_shaped.py).

Prints, per run and stage, seconds and RTF (seconds of processing per second of audio;
``x real time`` is its inverse), peak GPU memory (torch's allocator, and the device's
used memory sampled every 50 ms, which includes CTranslate2) or peak RSS on CPU, and
checks the targets on CUDA: diarization <= 60 s per hour of audio (pyannote community-1:
31 s/h on an H100), whole hub pipeline >= 100x real time. ``--json FILE`` writes the
figures. Needs the offline models (`diarq models prepare`); no network.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # tests.hub_shaped builds the hub-shaped models
SOURCES = ("sample.wav", "falcon_test.wav", "jfk.wav")
TARGET_DIARIZE_S_PER_HOUR = 60.0
TARGET_HUB_X_REAL_TIME = 100.0


def make_recording(seconds: float, target: Path) -> Path:
    """tests/data recordings repeated to ``seconds`` (16 kHz mono int16 WAV)."""
    import numpy as np

    from diarq.worker.audio import decode_audio

    pieces = [decode_audio(ROOT / "tests" / "data" / name) for name in SOURCES]
    out, total, i = [], 0, 0
    while total < seconds * 16000:
        out.append(pieces[i % len(pieces)])
        total += len(pieces[i % len(pieces)])
        i += 1
    audio = np.concatenate(out)[: int(seconds * 16000)]
    with wave.open(str(target), "wb") as fh:
        fh.setnchannels(1)
        fh.setsampwidth(2)
        fh.setframerate(16000)
        fh.writeframes((np.clip(audio, -1, 1) * 32767).astype("<i2").tobytes())
    return target


class GpuMemory:
    """Peak memory of a run: torch's allocator, and the device's used memory (every
    library) sampled in a thread; peak RSS on CPU."""

    def __init__(self, device: str) -> None:
        self.cuda = device == "cuda"
        self._stop = threading.Event()
        self.peak_used = 0
        self.baseline = 0

    def __enter__(self) -> GpuMemory:
        if self.cuda:
            import torch

            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            free, total = torch.cuda.mem_get_info()
            self.baseline = self.peak_used = total - free
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self) -> None:
        import torch

        while not self._stop.wait(0.05):
            free, total = torch.cuda.mem_get_info()
            self.peak_used = max(self.peak_used, total - free)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        if self.cuda:
            self._thread.join()

    def figures(self) -> dict[str, Any]:
        if not self.cuda:
            return {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
                                         / 1024, 1)}
        import torch

        return {"gpu": torch.cuda.get_device_name(0),
                "peak_torch_allocated_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                "peak_device_used_mb": round(self.peak_used / 2**20, 1),
                "device_used_before_mb": round(self.baseline / 2**20, 1)}


def run(name: str, settings: Any, recording: Path, device: str) -> dict[str, Any]:
    from diarq.shared.options import parse_options
    from diarq.worker.pipeline import run_pipeline
    from diarq.worker.registry import ModelRegistry

    t0 = time.perf_counter()
    registry = ModelRegistry(settings)
    registry.warm_up()
    load_s = time.perf_counter() - t0
    with GpuMemory(device) as memory:
        result = run_pipeline(recording, parse_options({"language": "en"}), registry=registry)
    duration = result.audio.duration
    stages = {stage: {"seconds": round(sec, 2), "rtf": round(sec / duration, 5),
                      "x_real_time": round(duration / sec, 1) if sec > 0 else None}
              for stage, sec in result.timings.items()}
    return {"run": name, "audio_seconds": duration, "load_seconds": round(load_s, 1),
            "device": registry.device, "compute_type": registry.compute_type,
            "batch_size": registry.batch_size, "stages": stages, "memory": memory.figures(),
            "speakers": len(result.speakers),
            "words": sum(len(s.words) for s in result.segments)}


def targets(report: dict[str, Any]) -> list[str]:
    hub = report["runs"]["hub"]
    hours = hub["audio_seconds"] / 3600
    diarize_per_hour = hub["stages"]["diarize"]["seconds"] / hours
    x_real_time = hub["stages"]["total"]["x_real_time"] or 0.0
    lines = [
        f"hub diarization: {diarize_per_hour:.1f} s per hour of audio (target <= "
        f"{TARGET_DIARIZE_S_PER_HOUR:.0f}): "
        f"{'met' if diarize_per_hour <= TARGET_DIARIZE_S_PER_HOUR else 'NOT met'}",
        f"hub whole pipeline: {x_real_time:.0f}x real time (target >= "
        f"{TARGET_HUB_X_REAL_TIME:.0f}x): "
        f"{'met' if x_real_time >= TARGET_HUB_X_REAL_TIME else 'NOT met'}",
    ]
    if report["device"] != "cuda":
        lines = [f"(CPU run: the targets are for a GPU) {line}" for line in lines]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    ap.add_argument("--audio", type=Path, help="recording (default: tests/data repeated)")
    ap.add_argument("--seconds", type=float, default=3600.0,
                    help="length of the default recording (default one hour)")
    ap.add_argument("--model-dir", type=Path, default=ROOT / "models")
    ap.add_argument("--runs", default="offline,hub", help="comma-separated: offline,hub")
    ap.add_argument("--json", type=Path, help="write the figures here too")
    args = ap.parse_args()
    os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    from diarq.shared.settings import load_settings
    from tests import hub_shaped

    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            sys.exit("bench/gpu.py: no CUDA device visible; run with --device cpu")
    with tempfile.TemporaryDirectory(prefix="diarq-bench-gpu-") as tmp:
        work = Path(tmp)
        recording = args.audio or make_recording(args.seconds, work / "recording.wav")
        common = {"device": args.device, "model_dir": args.model_dir, "asr_model": "base"}
        runs = [r.strip() for r in args.runs.split(",") if r.strip()]
        report: dict[str, Any] = {"device": args.device, "recording": recording.name,
                                  "runs": {}}
        if "offline" in runs:
            report["runs"]["offline"] = run("offline", load_settings(profile="offline",
                                                                     **common),
                                            recording, args.device)
        if "hub" in runs:
            pipeline = hub_shaped.pipeline_31(work / "hub")  # 3.1's config, verbatim
            aligner = hub_shaped.wav2vec2_ctc(work / "wav2vec2-random")
            settings = load_settings(profile="hub", hub_diarization_model=str(pipeline),
                                     align_models=f"en={aligner}", **common)
            report["runs"]["hub"] = run("hub", settings, recording, args.device)
    print(f"{'run':8} {'stage':11} {'seconds':>9} {'RTF':>9} {'x real time':>12}")
    for name, res in report["runs"].items():
        for stage, fig in res["stages"].items():
            print(f"{name:8} {stage:11} {fig['seconds']:9.2f} {fig['rtf']:9.5f} "
                  f"{fig['x_real_time'] or 0:12.1f}")
        print(f"{name:8} memory      {json.dumps(res['memory'])}  (audio "
              f"{res['audio_seconds']:.0f} s, {res['compute_type']}, batch {res['batch_size']}, "
              f"models loaded in {res['load_seconds']} s)")
    if "hub" in report["runs"]:
        report["targets"] = targets(report)
        print("\n".join(report["targets"]))
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
