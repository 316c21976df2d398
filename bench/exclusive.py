"""Word-to-speaker assignment from overlapping vs exclusive turns.

    .venv/bin/python bench/exclusive.py [CORPUS_DIR] [--out exclusive.json]

Each recording of CORPUS_DIR (default ../shared/eval) is diarized and transcribed once
(offline profile, automatic speaker count); the same words are then given speakers
three ways (worker/assign.py ``assign_all``):

* ``overlapping``: from the overlapping turns (the rule diarq used before);
* ``exclusive``: from pyannote's exclusive diarization (one speaker at a time; where
  turns overlap, the speaker the segmentation finds most active);
* ``derived``: from exclusive turns derived from the overlapping ones
  (worker/turns.py, the fallback for backends without an exclusive output).

Scores:

* cpWER (meeteval) where a transcript names its speakers (``<uri>.stm``);
* elsewhere, with a reference RTTM only (the AMI excerpts: no transcripts), a proxy:
  the share of words whose speaker is right, among words at whose midpoint the
  reference has exactly one speaker, after mapping hypothesis speakers to reference
  speakers optimally (pyannote.metrics); "in overlap" counts the words where the
  hypothesis turns overlap, the only words the three ways can disagree on.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

MODES = ("overlapping", "exclusive", "derived")


def _assign(segments: list, found: Any, mode: str, language: str | None) -> Any:
    from diarq.worker.assign import assign_all
    from diarq.worker.turns import exclusive_from_overlapping

    if mode == "overlapping":
        return assign_all(segments, found.turns, exclusive=found.exclusive,
                          words_from="overlapping", language=language)
    exclusive = found.exclusive if mode == "exclusive" else \
        exclusive_from_overlapping(found.turns)
    return assign_all(segments, found.turns, exclusive=exclusive, language=language)


def cpwer(stm: Path, segments: list) -> float:
    from meeteval.wer.wer.cp import cp_word_error_rate
    from quality import normalize_text, read_stm

    ref: dict[str, list[str]] = {}
    for spk, _, _, text in sorted(read_stm(stm), key=lambda r: r[1]):
        ref.setdefault(spk, []).append(normalize_text(text))
    hyp: dict[str, list[str]] = {}
    for seg in segments:
        hyp.setdefault(seg.speaker or "?", []).append(normalize_text(seg.text))
    return float(cp_word_error_rate([" ".join(v) for v in ref.values()],
                                    [" ".join(v) for v in hyp.values()]).error_rate)


def word_speaker_accuracy(rttm: Path, turns: list, segments: list) -> dict[str, int]:
    from pyannote.metrics.diarization import DiarizationErrorRate
    from quality import read_rttm, turns_to_annotation

    ref = read_rttm(rttm)
    hyp = turns_to_annotation(turns, ref.uri)
    mapping = DiarizationErrorRate().optimal_mapping(ref, hyp)
    counts = {"words": 0, "right": 0, "in_overlap": 0, "right_in_overlap": 0}
    for seg in segments:
        for w in seg.words:
            if w.start is None or w.end is None:
                continue
            mid = (w.start + w.end) / 2
            active = {label for s, _, label in ref.itertracks(yield_label=True)
                      if s.start <= mid < s.end}
            if len(active) != 1:
                continue
            overlapped = sum(t.start <= mid < t.end for t in turns) > 1
            right = mapping.get(w.speaker) in active
            counts["words"] += 1
            counts["right"] += right
            counts["in_overlap"] += overlapped
            counts["right_in_overlap"] += right and overlapped
    return counts


def run(corpus: Path) -> dict:
    from quality import find_recordings

    from diarq.shared.settings import load_settings
    from diarq.worker.audio import decode_audio
    from diarq.worker.registry import ModelRegistry

    registry = ModelRegistry(load_settings())
    diarizer, asr = registry.diarizer(), registry.asr()
    files: dict[str, Any] = {}
    for rec in find_recordings(corpus):
        if rec.rttm is None:
            continue
        audio = decode_audio(rec.wav)
        registry.before_torch_stage()
        found = diarizer.run(audio)
        transcript = asr.transcribe(audio, word_timestamps=True)
        row: dict[str, Any] = {}
        for mode in MODES:
            out = _assign(transcript.segments, found, mode, transcript.language)
            # relabelled turns: the same ids as the words' speakers
            if rec.stm is not None:
                row[mode] = {"cpwer": cpwer(rec.stm, out.segments)}
            else:
                row[mode] = word_speaker_accuracy(rec.rttm, out.turns, out.segments)
        files[rec.uri] = row
        print(f"  {rec.uri}: {json.dumps(row)}", file=sys.stderr)
    totals = {}
    for mode in MODES:
        acc = [r[mode] for r in files.values() if "words" in r[mode]]
        words = sum(a["words"] for a in acc)
        over = sum(a["in_overlap"] for a in acc)
        totals[mode] = {
            "word_speaker_accuracy": sum(a["right"] for a in acc) / words if words else None,
            "words": words,
            "accuracy_in_overlap": (sum(a["right_in_overlap"] for a in acc) / over
                                    if over else None),
            "words_in_overlap": over,
            "cpwer": {uri: r[mode]["cpwer"] for uri, r in files.items() if "cpwer" in r[mode]},
        }
    return {"files": files, "totals": totals}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    report = run(args.corpus)
    for mode, t in report["totals"].items():
        acc = t["word_speaker_accuracy"]
        over = t["accuracy_in_overlap"]
        cp = ", ".join(f"{uri} {100 * v:.1f} %" for uri, v in t["cpwer"].items())
        print(f"{mode:<12} word speaker right {100 * (acc or 0):.1f} % of {t['words']} words "
              f"(in hypothesis overlap {100 * (over or 0):.1f} % of {t['words_in_overlap']}); "
              f"cpWER {cp}")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
