"""Calibrate the voice-reference threshold (DIARQ_VOICE_MATCH_THRESHOLD) on real speech.

    .venv/bin/python bench/voice_threshold.py [CORPUS_DIR] [--out voices.json]

For every recording of CORPUS_DIR (default ../shared/eval) with a reference RTTM, each
reference speaker's clean speech (no other speaker at the same time) is split in two: the
first L seconds play the voice reference (L = 2, 4 and 8 s: references are 2-10 s), the
rest plays that speaker in the meeting. With worker/voices.py's encoder (the one the
worker uses) it reports the cosine similarity of

* same speaker: a reference and the rest of the same person's speech;
* different speakers, same recording: a reference and another person of that recording
  (certainly two people);
* different recordings: a reference and a speaker of another recording (mostly two
  people; AMI meetings may share participants, so this set can hold a few same-person
  pairs);

and the threshold that separates same from different-speaker pairs best (most pairs
right, the two kinds weighted equally), with the errors at that threshold.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

CLIP_SECONDS = (2.0, 4.0, 8.0)
MIN_REST_S = 1.5  # a speaker needs this much clean speech besides the clip


def _turns(rttm: Path) -> list:
    from diarq.shared.result import Turn

    out = []
    for line in rttm.read_text().splitlines():
        f = line.split()
        if len(f) >= 8 and f[0] == "SPEAKER":
            start, dur = float(f[3]), float(f[4])
            out.append(Turn(start=start, end=start + dur, speaker=f[7]))
    return out


def _splits(samples: np.ndarray, clip_s: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """(clip, rest) pairs: the clip from the start of the speaker's clean speech, and
    (when there is room for a second, disjoint clip) from its end."""
    n = int(clip_s * 16000)
    if len(samples) < n + MIN_REST_S * 16000:
        return []
    out = [(samples[:n], samples[n:])]
    if len(samples) >= 2 * n + MIN_REST_S * 16000:
        out.append((samples[-n:], samples[:-n]))
    return out


def collect(corpus: Path, encoder) -> dict:  # noqa: ANN001
    from quality import find_recordings

    from diarq.worker.audio import decode_audio
    from diarq.worker.voices import speaker_samples

    speakers = []  # (file, speaker, {clip_s: (clip_vec, rest_vec)})
    for rec in find_recordings(corpus):
        if rec.rttm is None:
            continue
        audio = decode_audio(rec.wav)
        for spk, samples in speaker_samples(audio, _turns(rec.rttm), max_seconds=1e9).items():
            for trial in range(2):
                vecs = {}
                for clip_s in CLIP_SECONDS:
                    parts = _splits(samples, clip_s)
                    if len(parts) <= trial:
                        continue
                    clip, rest = (encoder.embed(p) for p in parts[trial])
                    if clip is not None and rest is not None:
                        vecs[clip_s] = (clip, rest)
                if vecs:
                    speakers.append((rec.uri, spk, trial, vecs))
        usable = {s[1] for s in speakers if s[0] == rec.uri}
        print(f"  {rec.uri}: {len(usable)} speakers usable", file=sys.stderr)
    return {"speakers": speakers}


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def scores(speakers: list, clip_s: float) -> dict[str, list[float]]:
    """Similarities of every reference clip with every speaker's rest of speech (a
    speaker's second trial is compared with its own rest only)."""
    same, within, across = [], [], []
    usable = [(f, s, t, v[clip_s]) for f, s, t, v in speakers if clip_s in v]
    for f1, s1, t1, (clip, _) in usable:
        for f2, s2, t2, (_, rest) in usable:
            if (f1, s1) == (f2, s2):
                if t1 == t2:
                    same.append(_cos(clip, rest))
                continue
            if t2 != 0:
                continue  # one comparison per pair of people and reference clip
            score = _cos(clip, rest)
            if f1 == f2:
                within.append(score)
            else:
                across.append(score)
    return {"same": same, "different_same_recording": within,
            "different_recordings": across}


def best_threshold(same: list[float], different: list[float]) -> dict[str, float]:
    """Threshold with the highest balanced accuracy (ties: the higher threshold, which
    names fewer people wrongly)."""
    candidates = sorted(set(same) | set(different))
    best = None
    for t in candidates:
        miss = float(np.mean(np.asarray(same) < t))
        false = float(np.mean(np.asarray(different) >= t))
        key = (1 - (miss + false) / 2, t)
        if best is None or key >= best[0]:
            best = (key, t, miss, false)
    assert best is not None
    return {"threshold": round(best[1], 3), "same_rejected": best[2],
            "different_accepted": best[3]}


def _stats(values: list[float]) -> str:
    a = np.asarray(values)
    return (f"n={len(a):4d} min {a.min():.3f} p10 {np.percentile(a, 10):.3f} median "
            f"{np.median(a):.3f} p90 {np.percentile(a, 90):.3f} max {a.max():.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--threshold", type=float, help="also report errors at this one")
    args = parser.parse_args(argv)

    from diarq.shared.settings import load_settings
    from diarq.worker.registry import ModelRegistry

    settings = load_settings()
    encoder = ModelRegistry(settings).voice_encoder()
    speakers = collect(args.corpus, encoder)["speakers"]
    report: dict = {"encoder": encoder.description, "clips": {}}
    pooled: dict[str, list[float]] = {}
    for clip_s in CLIP_SECONDS:
        sc = scores(speakers, clip_s)
        if not sc["same"]:
            continue
        for k, v in sc.items():
            pooled.setdefault(k, []).extend(v)
        different = sc["different_same_recording"] + sc["different_recordings"]
        entry = {k: [round(x, 4) for x in v] for k, v in sc.items()}
        entry["best"] = best_threshold(sc["same"], sc["different_same_recording"])
        entry["best_all_different"] = best_threshold(sc["same"], different)
        print(f"reference clip {clip_s:.0f} s")
        for name, values in sc.items():
            if values:
                print(f"  {name:<26} {_stats(values)}")
        print(f"  best threshold (vs same recording): {entry['best']}")
        print(f"  best threshold (vs all different):  {entry['best_all_different']}")
        if args.threshold is not None:
            t = args.threshold
            entry["at_threshold"] = {
                "threshold": t,
                "same_rejected": float(np.mean(np.asarray(sc["same"]) < t)),
                "different_same_recording_accepted":
                    float(np.mean(np.asarray(sc["different_same_recording"]) >= t)),
                "different_recordings_accepted":
                    float(np.mean(np.asarray(sc["different_recordings"]) >= t)),
            }
            print(f"  at {t}: {entry['at_threshold']}")
        report["clips"][f"{clip_s:.0f}s"] = entry
    report["pooled"] = {
        "best": best_threshold(pooled["same"], pooled["different_same_recording"]),
        "best_all_different": best_threshold(
            pooled["same"], pooled["different_same_recording"] + pooled["different_recordings"]),
    }
    print(f"all clip lengths: {report['pooled']}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
