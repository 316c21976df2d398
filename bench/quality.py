"""Diarization and transcription quality on a corpus of real recordings.

    .venv/bin/python bench/quality.py [CORPUS_DIR] [--out quality.json] [--profile offline]
    .venv/bin/python bench/quality.py --repeat 6 --out repeat6.json
    .venv/bin/python bench/quality.py --long-form [NAME ...] --out longform.json

CORPUS_DIR (default ../shared/eval beside the checkout) holds ``<uri>.wav`` with
``<uri>.rttm`` references (``<uri>.uem`` = scored region where given) and, for
WER, ``<uri>.stm`` or ``<uri>.txt`` transcripts. For every recording with an
RTTM, diarization runs twice: automatic speaker count, and the true count given
as ``num_speakers``. Reported:

* DER (pyannote.metrics DiarizationErrorRate, overlap scored, UEM when given),
  accumulated over files (total error time / total reference speech), named by
  pyannote's ``collar`` value (the total width of the forgiveness zone around
  each reference boundary): ``collar=0``, ``collar=0.25`` (+-0.125 s) and
  ``collar=0.5`` (+-0.25 s);
* whether the number of speakers found equals the reference;
* WER (jiwer; lower case, no punctuation) for recordings with a transcript, and
  cpWER (meeteval) where the transcript names its speakers (STM), through the
  full pipeline ``worker.pipeline.run_pipeline``.

``--long-form`` scores the long recordings of ``bench/longform.py`` instead
(10-60 min built from the eval clips, speakers keeping their identity across
clips, unequal talk shares, tiled corpus): speaker count and DER per recording,
by length, with the automatic count (``--given`` adds the true count).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
ROOT = Path(__file__).resolve().parent.parent

# name -> pyannote collar (total width: collar=0.5 forgives +-0.25 s around boundaries)
COLLARS = {"collar=0": 0.0, "collar=0.25": 0.25, "collar=0.5": 0.5}


@dataclass
class Recording:
    uri: str
    wav: Path
    rttm: Path | None
    uem: Path | None
    stm: Path | None
    txt: Path | None


def find_recordings(corpus: Path) -> list[Recording]:
    out = []
    for wav in sorted(corpus.rglob("*.wav")):
        def sib(ext: str, wav: Path = wav) -> Path | None:
            p = wav.with_suffix(ext)
            return p if p.is_file() else None

        out.append(Recording(wav.stem, wav, sib(".rttm"), sib(".uem"), sib(".stm"), sib(".txt")))
    return out


def read_rttm(path: Path) -> Any:
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=path.stem)
    for i, line in enumerate(path.read_text().splitlines()):
        f = line.split()
        if len(f) >= 8 and f[0] == "SPEAKER":
            start, dur = float(f[3]), float(f[4])
            ann[Segment(start, start + dur), i] = f[7]
    return ann


def read_uem(path: Path | None) -> Any:
    if path is None:
        return None
    from pyannote.core import Segment, Timeline

    segs = [Segment(float(f[2]), float(f[3]))
            for f in (line.split() for line in path.read_text().splitlines()) if len(f) >= 4]
    return Timeline(segs)


def turns_to_annotation(turns: list[Any], uri: str) -> Any:
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    for i, t in enumerate(turns):
        ann[Segment(t.start, t.end), i] = t.speaker
    return ann


def der_report(pairs: list[tuple[Any, Any, Any]]) -> dict[str, Any]:
    """Accumulated DER per collar, and per-file DER."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    out: dict[str, Any] = {}
    for name, collar in COLLARS.items():
        metric = DiarizationErrorRate(collar=collar, skip_overlap=False)
        per_file = {}
        for ref, hyp, uem in pairs:
            per_file[ref.uri] = metric(ref, hyp, uem=uem)
        detail = metric[:]  # accumulated components
        out[name] = {
            "der": abs(metric),
            "missed": detail["missed detection"] / detail["total"],
            "false_alarm": detail["false alarm"] / detail["total"],
            "confusion": detail["confusion"] / detail["total"],
            "per_file": per_file,
        }
    return out


def normalize_text(text: str) -> str:
    text = text.lower().replace("-", " ")
    text = re.sub(r"[^\w\s']", " ", text)
    text = text.replace("'", "")
    return " ".join(text.split())


def read_stm(path: Path) -> list[tuple[str, float, float, str]]:
    rows = []
    for line in path.read_text().splitlines():
        f = line.split(maxsplit=5)
        if len(f) >= 6 and not line.startswith(";;"):
            rows.append((f[2], float(f[3]), float(f[4]), f[5]))
    return rows


def transcript_scores(rec: Recording, profile_settings: Any) -> dict[str, Any] | None:
    """WER (and cpWER with an STM) through the whole pipeline; None without a transcript."""
    if rec.stm is None and rec.txt is None:
        return None
    import jiwer

    from diarq.shared.options import parse_options
    from diarq.worker.pipeline import run_pipeline
    from diarq.worker.registry import get_registry

    result = run_pipeline(rec.wav, parse_options({}), registry=get_registry(profile_settings))
    hyp = normalize_text(" ".join(s.text for s in result.segments))
    out: dict[str, Any] = {"asr_model": profile_settings.asr_model}
    if rec.stm is not None:
        rows = read_stm(rec.stm)
        ref = normalize_text(" ".join(r[3] for r in sorted(rows, key=lambda r: r[1])))
        from meeteval.wer.wer.cp import cp_word_error_rate

        ref_by_spk: dict[str, list[str]] = {}
        for spk, _, _, text in sorted(rows, key=lambda r: r[1]):
            ref_by_spk.setdefault(spk, []).append(normalize_text(text))
        hyp_by_spk: dict[str, list[str]] = {}
        for seg in result.segments:
            hyp_by_spk.setdefault(seg.speaker or "?", []).append(normalize_text(seg.text))
        cp = cp_word_error_rate([" ".join(v) for v in ref_by_spk.values()],
                                [" ".join(v) for v in hyp_by_spk.values()])
        out["cpwer"] = float(cp.error_rate)
    else:
        ref = normalize_text(rec.txt.read_text())  # type: ignore[union-attr]
    out["wer"] = float(jiwer.wer(ref, hyp))
    out["reference_words"] = len(ref.split())
    return out


def repeated(audio: Any, ref: Any, uem: Any, times: int) -> tuple[Any, Any, Any]:
    """``times`` copies of a recording back to back (0.3-1.7 s of silence between, and
    -54 dBFS noise so no two copies give the same chunks): the same people talking for
    longer. Speaker counts and DER should not change with length; see --repeat."""
    import numpy as np
    from pyannote.core import Annotation, Segment, Timeline

    rng = np.random.default_rng(0)
    parts, out_ref, spans, t = [], Annotation(uri=ref.uri), [], 0.0
    duration = len(audio) / 16000
    for _ in range(times):
        parts.append((audio + rng.normal(0, 0.002, len(audio))).astype(np.float32))
        for seg, _, label in ref.itertracks(yield_label=True):
            out_ref[Segment(seg.start + t, seg.end + t)] = label
        spans += ([Segment(s.start + t, s.end + t) for s in uem] if uem is not None
                  else [Segment(t, t + duration)])
        gap = int(16000 * rng.uniform(0.3, 1.7))
        parts.append(np.zeros(gap, np.float32))
        t += duration + gap / 16000
    return np.concatenate(parts), out_ref, Timeline(spans)


def run(corpus: Path, settings: Any, with_wer: bool = True, repeat: int = 1) -> dict[str, Any]:
    from diarq.worker.audio import decode_audio
    from diarq.worker.diarization import load_diarizer

    diarizer = load_diarizer(settings)
    recs = find_recordings(corpus)
    files: dict[str, Any] = {}
    pairs: dict[str, list[tuple[Any, Any, Any]]] = {"auto": [], "oracle": []}
    audio_s = compute_s = 0.0
    for rec in recs:
        if rec.rttm is None:
            continue
        ref = read_rttm(rec.rttm)
        uem = read_uem(rec.uem)
        audio = decode_audio(rec.wav)
        if repeat > 1:
            audio, ref, uem = repeated(audio, ref, uem, repeat)
        true_n = len(ref.labels())
        row: dict[str, Any] = {"reference_speakers": true_n}
        for mode, n in (("auto", None), ("oracle", true_n)):
            t0 = time.perf_counter()
            turns = diarizer.diarize(audio, num_speakers=n)
            dt = time.perf_counter() - t0
            if mode == "auto":
                audio_s += len(audio) / 16000
                compute_s += dt
            hyp = turns_to_annotation(turns, rec.uri)
            pairs[mode].append((ref, hyp, uem))
            row[f"{mode}_speakers"] = len(hyp.labels())
        files[rec.uri] = row
        print(f"  {rec.uri}: reference {true_n}, found {row['auto_speakers']}", file=sys.stderr)
    report: dict[str, Any] = {
        "profile": settings.profile,
        "repeat": repeat,
        "diarizer": diarizer.describe(),
        "files": files,
        "speaker_count_right": sum(r["auto_speakers"] == r["reference_speakers"]
                                   for r in files.values()),
        "files_scored": len(files),
        "diarization_rtf": compute_s / audio_s if audio_s else None,
        "der": {mode: der_report(p) for mode, p in pairs.items()},
    }
    for mode, rep in report["der"].items():
        for name in COLLARS:
            for uri, value in rep[name]["per_file"].items():
                files[uri][f"{mode}_der_{name}"] = value
    if with_wer:
        wer = {}
        for rec in recs:
            scores = transcript_scores(rec, settings)
            if scores is not None:
                wer[rec.uri] = scores
        report["transcription"] = wer
    return report


def print_table(report: dict[str, Any]) -> None:
    print(f"profile {report['profile']}; diarization RTF {report['diarization_rtf']:.3f}")
    print("DER columns are pyannote collar values: collar=0.25 is +-0.125 s, collar=0.5 +-0.25 s")
    print(f"{'file':<22} {'ref':>3} {'auto':>4} {'given':>5} {'c=0':>6} {'c=0.25':>6} "
          f"{'c=0.5':>6} {'given c=0.25':>12} {'given c=0.5':>11}")
    for uri, r in report["files"].items():
        mark = "" if r["auto_speakers"] == r["reference_speakers"] else " *"
        print(f"{uri:<22} {r['reference_speakers']:>3} {r['auto_speakers']:>4} "
              f"{r['oracle_speakers']:>5} {100 * r['auto_der_collar=0']:6.1f} "
              f"{100 * r['auto_der_collar=0.25']:6.1f} {100 * r['auto_der_collar=0.5']:6.1f} "
              f"{100 * r['oracle_der_collar=0.25']:12.1f} "
              f"{100 * r['oracle_der_collar=0.5']:11.1f}{mark}")
    print(f"speaker count right: {report['speaker_count_right']}/{report['files_scored']}")
    given_exact = sum(r["oracle_speakers"] == r["reference_speakers"]
                      for r in report["files"].values())
    print(f"num_speakers given: exactly that many in {given_exact}/{report['files_scored']}")
    for mode in ("auto", "oracle"):
        d = report["der"][mode]
        print(f"accumulated DER ({mode} count): " + ", ".join(
            f"{name} {100 * d[name]['der']:.1f} %" for name in COLLARS)
            + " (collar=0.25: missed {:.1f}, false alarm {:.1f}, confusion {:.1f})".format(
                *(100 * d["collar=0.25"][k] for k in ("missed", "false_alarm", "confusion"))))
    for uri, s in report.get("transcription", {}).items():
        extra = f", cpWER {100 * s['cpwer']:.1f} %" if "cpwer" in s else ""
        print(f"{uri}: WER {100 * s['wer']:.1f} % ({s['reference_words']} words, "
              f"{s['asr_model']}){extra}")


def run_long_form(corpus: Path, settings: Any, names: list[str] | None = None,
                  given: bool = False) -> dict[str, Any]:
    """The long-form suite (bench/longform.py): count and DER per recording."""
    from bench.longform import build_suite
    from diarq.worker.diarization import load_diarizer

    diarizer = load_diarizer(settings)
    rows: dict[str, Any] = {}
    pairs: dict[str, list[tuple[Any, Any, Any]]] = {"auto": [], "oracle": []}
    for rec in build_suite(corpus, names or None):
        true_n = len(rec.reference.labels())
        row: dict[str, Any] = {"minutes": rec.minutes, "reference_speakers": true_n}
        for mode, n in (("auto", None), ("oracle", true_n)) if given else (("auto", None),):
            t0 = time.perf_counter()
            turns = diarizer.diarize(rec.audio, num_speakers=n)
            row[f"{mode}_rtf"] = (time.perf_counter() - t0) / (len(rec.audio) / 16000)
            hyp = turns_to_annotation(turns, rec.name)
            pairs[mode].append((rec.reference, hyp, rec.uem))
            row[f"{mode}_speakers"] = len(hyp.labels())
            one = der_report([(rec.reference, hyp, rec.uem)])
            for name in COLLARS:
                row[f"{mode}_der_{name}"] = one[name]["der"]
        rows[rec.name] = row
        print(f"  {rec.name}: {rec.minutes:.1f} min, reference {true_n}, found "
              f"{row['auto_speakers']}", file=sys.stderr)
    within = sum(abs(r["auto_speakers"] - r["reference_speakers"]) <= 1 for r in rows.values())
    return {
        "profile": settings.profile,
        "diarizer": diarizer.describe(),
        "recordings": rows,
        "count_within_1": within,
        "recordings_scored": len(rows),
        "der": {mode: {k: {kk: vv for kk, vv in v.items() if kk != "per_file"}
                       for k, v in der_report(p).items()}
                for mode, p in pairs.items() if p},
    }


def print_long_form(report: dict[str, Any]) -> None:
    print(f"long-form suite, profile {report['profile']} (DER: pyannote collar values)")
    print(f"{'recording':<14} {'min':>5} {'ref':>4} {'auto':>4} {'c=0.25':>7} {'c=0.5':>7} "
          f"{'RTF':>6}  {'given':>5} {'c=0.25':>7} {'c=0.5':>7}")
    for name, r in sorted(report["recordings"].items(), key=lambda kv: kv[1]["minutes"]):
        line = (f"{name:<14} {r['minutes']:5.1f} {r['reference_speakers']:>4} "
                f"{r['auto_speakers']:>4} {100 * r['auto_der_collar=0.25']:7.1f} "
                f"{100 * r['auto_der_collar=0.5']:7.1f} {r['auto_rtf']:6.4f}")
        if "oracle_speakers" in r:
            line += (f"  {r['oracle_speakers']:>5} {100 * r['oracle_der_collar=0.25']:7.1f} "
                     f"{100 * r['oracle_der_collar=0.5']:7.1f}")
        print(line)
    print(f"count within +-1: {report['count_within_1']}/{report['recordings_scored']}")
    for mode, d in report["der"].items():
        print(f"accumulated DER ({mode} count): " + ", ".join(
            f"{name} {100 * d[name]['der']:.1f} %" for name in COLLARS))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--out", type=Path, help="write the full report as JSON here")
    parser.add_argument("--profile", choices=["offline", "hub"], default=None)
    parser.add_argument("--no-wer", action="store_true", help="diarization only")
    parser.add_argument("--repeat", type=int, default=1, metavar="N",
                        help="score each recording as N copies back to back (length "
                             "robustness: the same speakers, longer); implies --no-wer")
    parser.add_argument("--long-form", nargs="*", metavar="NAME", default=None,
                        help="score the long-form suite (bench/longform.py), all of it or "
                             "the recordings named")
    parser.add_argument("--given", action="store_true",
                        help="with --long-form: also run with the true number of speakers")
    args = parser.parse_args(argv)

    from diarq.shared.settings import load_settings

    overrides = {"profile": args.profile} if args.profile else {}
    settings = load_settings(**overrides)
    if args.long_form is not None:
        report = run_long_form(args.corpus, settings, args.long_form, given=args.given)
        print_long_form(report)
        if args.out:
            args.out.write_text(json.dumps(report, indent=1, default=float))
        return 0
    report = run(args.corpus, settings, with_wer=not args.no_wer and args.repeat <= 1,
                 repeat=max(1, args.repeat))
    print_table(report)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
