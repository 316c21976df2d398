"""Pipeline speed and memory: diarq vs the bare libraries doing the same work.

    .venv/bin/python bench/pipeline.py [CORPUS_DIR] [--minutes 10] [--long] [--jobs 2]

CORPUS_DIR (default ../shared/eval beside the checkout) holds real recordings;
they are concatenated into one test recording (10 min, or 2 h with --long).
Each measurement runs in a fresh process so that peak RSS is its own:

* ``diarq``: ``run_pipeline`` with the configured profile/model, models loaded
  before timing; ``--jobs 2`` runs a second job in the same process (a warm
  worker's steady state, after a transcription has run in the process);
* ``bare``: ffmpeg decode (whisperx.audio.load_audio) + the pyannote pipeline
  from the offline config.yaml + faster-whisper transcribe with word timestamps
  and its VAD, library defaults (threads included), load times excluded; pyannote
  runs before the Whisper model is created (the order that favours the bare run).

Prints per-stage seconds, real-time factor (seconds of compute per second of
audio), the diarq/bare ratio and peak RSS. Targets (offline, base, int8, 2 cores):
total RTF <= 0.15, diarq <= 1.10x bare, 2 h peak RSS <= 4 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def build_recording(corpus: Path, seconds: float, out: Path) -> float:
    """Concatenate the corpus's WAVs (repeating) to ``seconds``; return the duration."""
    wavs = sorted(corpus.rglob("*.wav"))
    if not wavs:
        raise SystemExit(f"no .wav files under {corpus}")
    from diarq.shared.media import probe_audio

    durations = [(w, probe_audio(w).duration or 0.0) for w in wavs]
    listing, total = [], 0.0
    while total < seconds:
        for w, d in durations:
            listing.append(w)
            total += d
            if total >= seconds:
                break
    lst = out.with_suffix(".txt")
    lst.write_text("".join(f"file '{w}'\n" for w in listing))
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(lst),
         "-ac", "1", "-ar", "16000", "-c:a", "pcm_s16le", str(out)],
        check=True,
    )
    return total


# --- children (one per measurement) ------------------------------------------------

def child_diarq(path: Path, jobs: int) -> dict:
    from diarq.shared.options import JobOptions
    from diarq.shared.settings import get_settings
    from diarq.worker.pipeline import run_pipeline
    from diarq.worker.registry import ModelRegistry

    t0 = time.perf_counter()
    reg = ModelRegistry(get_settings())
    reg.warm_up()
    load = time.perf_counter() - t0
    runs = []
    for _ in range(jobs):
        res = run_pipeline(path, JobOptions(), registry=reg)
        runs.append({"timings": res.timings, "speakers": len(res.speakers),
                     "words": sum(len(s.words) for s in res.segments)})
    return {"load": round(load, 2), "runs": runs, "duration": res.audio.duration,
            "threads": reg.threads, "compute_type": reg.compute_type,
            "peak_rss_mb": round(peak_rss_mb())}


def child_bare(path: Path) -> dict:
    """The libraries alone, each at its best: pyannote runs before a CTranslate2 model
    exists in the process (see worker/registry.py for why that order matters)."""
    import torch
    from pyannote.audio import Pipeline
    from whisperx.audio import load_audio

    from diarq.shared.settings import get_settings
    from diarq.worker.asr import resolve_model_path
    from diarq.worker.offline_models import offline_model_paths

    settings = get_settings()
    load, t = 0.0, {}
    t0 = time.perf_counter()
    pipeline = Pipeline.from_pretrained(offline_model_paths(settings.model_dir).diarization_config)
    load += time.perf_counter() - t0
    t0 = time.perf_counter()
    audio = load_audio(str(path))
    t["decode"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    diar = pipeline({"waveform": torch.from_numpy(audio)[None], "sample_rate": 16000})
    t["diarize"] = time.perf_counter() - t0

    from faster_whisper import WhisperModel

    t0 = time.perf_counter()
    model = WhisperModel(
        resolve_model_path(settings.asr_model, profile="offline", model_dir=settings.model_dir),
        device="cpu", compute_type="int8",
    )
    load += time.perf_counter() - t0
    t0 = time.perf_counter()
    segments, _info = model.transcribe(audio, word_timestamps=True, vad_filter=True)
    words = sum(len(s.words or []) for s in segments)
    t["transcribe"] = time.perf_counter() - t0
    t["total"] = sum(t.values())
    annotation = getattr(diar, "speaker_diarization", diar)
    return {"load": round(load, 2), "timings": {k: round(v, 3) for k, v in t.items()},
            "speakers": len(annotation.labels()), "words": words,
            "duration": len(audio) / 16000, "peak_rss_mb": round(peak_rss_mb()),
            "torch_threads": torch.get_num_threads()}


def run_child(kind: str, path: Path, jobs: int = 1) -> dict:
    cmd = [sys.executable, __file__, "--child", kind, "--jobs", str(jobs), str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"{kind} run failed (exit {proc.returncode})")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("corpus", nargs="?", default=str(ROOT.parent / "shared" / "eval"))
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--long", action="store_true", help="2-hour recording, diarq only (RSS)")
    ap.add_argument("--jobs", type=int, default=2, help="diarq jobs in one process")
    ap.add_argument("--no-bare", action="store_true")
    ap.add_argument("--child", choices=["diarq", "bare"], help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        path = Path(args.corpus)
        out = child_diarq(path, args.jobs) if args.child == "diarq" else child_bare(path)
        print(json.dumps(out))
        return

    minutes = 120.0 if args.long else args.minutes
    with tempfile.TemporaryDirectory(prefix="diarq-bench-") as tmp:
        rec = Path(tmp) / "recording.wav"
        duration = build_recording(Path(args.corpus).resolve(), minutes * 60, rec)
        print(f"recording: {duration / 60:.1f} min from {args.corpus}; cores: "
              f"{len(os.sched_getaffinity(0))}")
        d = run_child("diarq", rec, 1 if args.long else args.jobs)
        print(f"diarq: threads={d['threads']} compute_type={d['compute_type']} "
              f"load={d['load']} s, peak RSS {d['peak_rss_mb']} MB")
        for i, run in enumerate(d["runs"], start=1):
            t = run["timings"]
            stages = " ".join(f"{k}={v:.1f}" for k, v in t.items() if k != "total")
            print(f"  job {i}: {stages} total={t['total']:.1f} s  RTF={t['total'] / duration:.3f}"
                  f"  (speakers {run['speakers']}, words {run['words']})")
        if args.long:
            ok = d["peak_rss_mb"] <= 4096
            print(f"2 h peak RSS {d['peak_rss_mb']} MB: {'within' if ok else 'OVER'} 4 GB")
        if args.no_bare or args.long:
            return
        b = run_child("bare", rec)
        t = b["timings"]
        stages = " ".join(f"{k}={v:.1f}" for k, v in t.items() if k != "total")
        print(f"bare:  load={b['load']} s, peak RSS {b['peak_rss_mb']} MB")
        print(f"  {stages} total={t['total']:.1f} s  RTF={t['total'] / duration:.3f}"
              f"  (speakers {b['speakers']}, words {b['words']})")
        first = d["runs"][0]["timings"]["total"]
        print(f"diarq/bare (job 1): {first / t['total']:.2f}x"
              + (f"; job 2: {d['runs'][1]['timings']['total'] / t['total']:.2f}x"
                 if len(d["runs"]) > 1 else ""))


if __name__ == "__main__":
    main()
