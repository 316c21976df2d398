"""Hotwords: rare names and product words right, with and without ``hotwords``.

    .venv/bin/python bench/hotwords.py [--asr-model base] [--out hotwords.json]

No recording with rare names and a transcript exists in ../shared/eval, so this one is
synthetic: the sentences below, spoken by two espeak-ng voices (en-us, en-gb) and joined
with sox into one recording of about a minute (more than Whisper's 30 s window, as a
meeting is). It is transcribed three ways through the real pipeline (diarization off:
hotwords only change transcription): plainly, with the names as ``hotwords``, and with
the same names as the initial ``prompt`` (the older way to hint spellings, which
faster-whisper gives only to the first 30 s window when it does not condition on the
previous text, as diarq does). Reported: how many occurrences of the rare names come out
exactly right (case-insensitive, punctuation ignored), and the WER of the whole text.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

HOTWORDS = ["Szymborska", "Okonkwo", "Przybylski", "Kubernetes", "Grafana", "Keycloak",
            "Tlaxcala", "Nguyen", "Terraform", "Wojciech", "Siobhan", "Istio"]
SENTENCES = [
    ("en-us", "Good morning everyone, this is Siobhan from the Tlaxcala office."),
    ("en-gb", "Thanks Siobhan. Wojciech Przybylski will present the Kubernetes migration."),
    ("en-us", "Before that, Okonkwo wants to review the Grafana dashboards with Nguyen."),
    ("en-gb", "The Keycloak upgrade is blocked until Terraform state is cleaned up."),
    ("en-us", "Szymborska asked whether Istio is still needed in the Tlaxcala cluster."),
    ("en-gb", "Nguyen and Okonkwo think Istio can go once Kubernetes is upgraded."),
    ("en-us", "Wojciech, can you send the Terraform plan to Szymborska by Friday?"),
    ("en-gb", "Yes. Przybylski will also move the Grafana alerts into Keycloak groups."),
]


def synthesize(folder: Path) -> tuple[Path, str]:
    """The recording (16 kHz mono WAV; 0.6 s between sentences) and its transcript."""
    parts = []
    for i, (voice, text) in enumerate(SENTENCES):
        raw = folder / f"{i}.raw.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(raw), text],
                       check=True)
        wav = folder / f"{i}.wav"
        subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", str(wav), "pad", "0",
                        "0.6"], check=True)
        parts.append(str(wav))
    out = folder / "meeting.wav"
    subprocess.run(["sox", *parts, str(out)], check=True)
    return out, " ".join(text for _, text in SENTENCES)


def _words(text: str) -> list[str]:
    from quality import normalize_text

    return normalize_text(text).split()


def names_right(reference: str, hypothesis: str) -> tuple[int, int]:
    """(rare-name occurrences transcribed exactly, occurrences in the reference)."""
    wanted = {w.lower() for w in HOTWORDS}
    ref = [w for w in _words(reference) if w in wanted]
    hyp = _words(hypothesis)
    found = 0
    for word in set(ref):
        found += min(ref.count(word), hyp.count(word))
    return found, len(ref)


def run(asr_model: str | None) -> dict:
    import jiwer

    from diarq.shared.options import parse_options
    from diarq.shared.settings import load_settings
    from diarq.worker.pipeline import run_pipeline
    from diarq.worker.registry import get_registry

    settings = load_settings(**({"asr_model": asr_model} if asr_model else {}))
    registry = get_registry(settings)
    modes = {"plain": {}, "hotwords": {"hotwords": HOTWORDS},
             "prompt": {"prompt": ", ".join(HOTWORDS)}}
    report: dict = {"asr_model": settings.asr_model, "hotwords": HOTWORDS, "modes": {}}
    with tempfile.TemporaryDirectory() as tmp:
        wav, text = synthesize(Path(tmp))
        report["audio_seconds"] = float(subprocess.run(
            ["soxi", "-D", str(wav)], capture_output=True, text=True, check=True).stdout)
        for mode, extra in modes.items():
            options = parse_options({"diarize": False, "language": "en", **extra})
            result = run_pipeline(wav, options, registry=registry)
            hyp = " ".join(s.text for s in result.segments)
            right, total = names_right(text, hyp)
            report["modes"][mode] = {
                "names_right": right, "names_total": total,
                "wer": round(float(jiwer.wer(" ".join(_words(text)), " ".join(_words(hyp)))),
                             4),
                "transcript": hyp,
            }
            print(f"{mode:<9} rare names right {right}/{total}, WER "
                  f"{100 * report['modes'][mode]['wer']:.1f} %")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--asr-model", help="default: DIARQ_ASR_MODEL")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    report = run(args.asr_model)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
