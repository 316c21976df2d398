"""Diarization speed with ECAPA in ONNX Runtime (shipped on CPU) vs PyTorch, one process.

    .venv/bin/python bench/ecapa_runtime.py [CORPUS_DIR] [--minutes 10] [--rounds 2]

The corpus's WAVs are concatenated to one recording (as ``bench/pipeline.py`` does);
the offline diarizer is loaded once and diarizes it with each runtime in turn
(ONNX, PyTorch, ONNX, PyTorch...), so both see the same machine load and the ratio
is the figure to trust. PyTorch runs as before this change: padded batches.
Prints wall and CPU seconds, diarization RTF, speakers found and the seconds of
audio ECAPA embedded; ``--out`` writes JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench.* as a namespace package when run as a script
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")

from bench.pipeline import build_recording  # noqa: E402


class Counted:
    """Wraps an embedding model; counts the seconds of audio it embeds."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.seconds = 0.0

    def __call__(self, waves: list[Any]) -> Any:
        self.seconds += sum(len(w) for w in waves) / 16000
        return self.model(waves)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("corpus", nargs="?", default=str(ROOT.parent / "shared" / "eval"))
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)

    import torch

    from diarq.shared.settings import load_settings
    from diarq.worker.audio import decode_audio
    from diarq.worker.diarization import load_diarizer
    from diarq.worker.diarization.ecapa import EcapaEmbedding
    from diarq.worker.offline_models import offline_model_paths

    settings = load_settings(profile="offline")
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "bench.wav"
        build_recording(Path(args.corpus), args.minutes * 60, wav)
        audio = decode_audio(wav)
    duration = len(audio) / 16000
    diarizer = load_diarizer(settings)
    weights = offline_model_paths(settings.model_dir).speaker_embedding
    models: dict[str, Any] = {}
    for name, onnx in (("onnxruntime", True), ("torch", False)):
        t0 = time.perf_counter()
        models[name] = EcapaEmbedding(weights, onnx=onnx)
        print(f"{name:<12} load {time.perf_counter() - t0:5.1f} s", flush=True)
    clustering = diarizer.pipeline.clustering
    rows: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for name, model in models.items():
            counted = Counted(model)
            clustering.speaker_embedding = counted
            wall, cpu = time.perf_counter(), time.process_time()
            turns = diarizer.diarize(audio)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            row = {"round": r, "runtime": name, "wall_s": round(wall, 1),
                   "cpu_s": round(cpu, 1), "rtf": round(wall / duration, 4),
                   "speakers": len({t.speaker for t in turns}),
                   "ecapa_audio_s": round(counted.seconds, 1)}
            rows.append(row)
            print(f"{name:<12} round {r}: wall {wall:6.1f} s (RTF {wall / duration:.3f}), "
                  f"CPU {cpu:6.1f} s, {row['speakers']} speakers, ECAPA on "
                  f"{counted.seconds:.0f} s of audio", flush=True)
    mean = {n: sum(x["wall_s"] for x in rows if x["runtime"] == n) / args.rounds
            for n in models}
    print(f"{duration / 60:.1f} min, {torch.get_num_threads()} threads: diarization wall "
          f"onnxruntime / torch = {mean['onnxruntime'] / mean['torch']:.2f}")
    if args.out:
        args.out.write_text(json.dumps({"duration_s": duration, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
