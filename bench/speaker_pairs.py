"""A quick screen for speaker models: same or different person, inside one recording.

    .venv/bin/python bench/speaker_pairs.py [CORPUS] --seconds 4 --seconds 8 \
        --model ecapa --model bench.speaker_models:Campp

Every reference speaker's speech (from the RTTM turns of each recording, overlap
included) is concatenated and cut into pieces of ``--seconds``; each model embeds
every piece; every pair of pieces is scored by cosine. What diarization decides is
whether two voices *of one recording* are one person, so the figures that matter are
the pairs inside a recording: ROC AUC and equal error rate there (all pairs too, for
reference). It takes seconds where ``bench/clustering_sweep.py`` takes minutes, and
says nothing about thresholds or counts: a model that loses here is not worth a sweep.
AMI speaker ids are corpus-wide (as in ``bench/longform.py``); other recordings' labels
are prefixed with the recording's name.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("PYANNOTE_METRICS_ENABLED", "0")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SR = 16000


def pieces(corpus: Path, seconds: float) -> list[tuple[str, str, np.ndarray]]:
    """(recording, person, audio) for every whole piece of each person's speech."""
    from diarq.worker.audio import decode_audio

    out = []
    size = int(seconds * SR)
    for wav in sorted(corpus.rglob("*.wav")):
        rttm = wav.with_suffix(".rttm")
        if not rttm.is_file():
            continue
        audio = decode_audio(wav)
        speech: dict[str, list[np.ndarray]] = {}
        for line in rttm.read_text().splitlines():
            f = line.split()
            if len(f) < 8 or f[0] != "SPEAKER":
                continue
            who = f[7] if wav.parent.name == "ami" else f"{wav.stem}:{f[7]}"
            start = int(float(f[3]) * SR)
            speech.setdefault(who, []).append(audio[start:start + int(float(f[4]) * SR)])
        for who, parts in speech.items():
            joined = np.concatenate(parts)
            out += [(wav.stem, who, joined[k * size:(k + 1) * size])
                    for k in range(len(joined) // size)]
    return out


def equal_error_rate(same: np.ndarray, scores: np.ndarray) -> float:
    """The error rate where false accepts and false rejects are equal (ROC)."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(same, scores)
    i = int(np.nanargmin(np.abs(1 - tpr - fpr)))
    return float((fpr[i] + 1 - tpr[i]) / 2)


def screen(model: Any, items: list[tuple[str, str, np.ndarray]]) -> dict[str, float]:
    """Pair figures of one model on ``items``."""
    from sklearn.metrics import roc_auc_score

    t = time.perf_counter()
    emb = np.asarray(model([a for _, _, a in items]), dtype=np.float64)
    seconds = time.perf_counter() - t
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    upper = np.triu_indices(len(items), 1)
    who = np.array([p for _, p, _ in items])
    rec = np.array([r for r, _, _ in items])
    same = (who[:, None] == who[None, :])[upper]
    inside = (rec[:, None] == rec[None, :])[upper]
    scores = (emb @ emb.T)[upper]
    return {
        "pairs_inside": int(inside.sum()), "same_inside": int(same[inside].sum()),
        "auc_inside": float(roc_auc_score(same[inside], scores[inside])),
        "eer_inside": equal_error_rate(same[inside], scores[inside]),
        "auc_all": float(roc_auc_score(same, scores)),
        "same_mean": float(scores[same].mean()), "different_mean": float(scores[~same].mean()),
        "seconds_per_audio_second": seconds / (len(items) * len(items[0][2]) / SR),
    }


def load_model(spec: str) -> Any:
    """``ecapa`` or ``ge2e`` (the pipeline's speaker- and chunk-level models), or
    ``module:Class`` (``bench.speaker_models``)."""
    from diarq.shared.settings import load_settings

    models = load_settings(profile="offline").model_dir / "diarization"
    if spec == "ecapa":
        from diarq.worker.diarization.ecapa import EcapaEmbedding

        return EcapaEmbedding(models / "speaker" / "ecapa.ckpt")
    if spec == "ge2e":
        import torch

        from diarq.worker.diarization.ge2e import GE2EEmbedding

        ge2e = GE2EEmbedding(models / "embedding" / "ge2e.pt")
        # pyannote's calling convention: a (batch, 1, samples) tensor of equal lengths
        return lambda waves: np.concatenate([
            ge2e(torch.from_numpy(np.stack(waves[i:i + 32]))[:, None])
            for i in range(0, len(waves), 32)])
    module, cls = spec.split(":")
    return getattr(importlib.import_module(module), cls)()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("corpus", nargs="?", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--seconds", type=float, action="append")
    parser.add_argument("--model", action="append")
    args = parser.parse_args(argv)
    models = {spec: load_model(spec) for spec in args.model or ["ecapa"]}
    print(f"{'model':36} {'piece':>5} {'pieces':>6} {'same/pairs inside':>17} "
          f"{'AUC in':>6} {'EER in':>6} {'AUC all':>7} {'same':>5} {'diff':>5} {'s/s':>6}")
    for seconds in args.seconds or [4.0, 8.0]:
        items = pieces(args.corpus, seconds)
        for spec, model in models.items():
            r = screen(model, items)
            print(f"{spec:36} {seconds:5g} {len(items):6d} "
                  f"{r['same_inside']:>8}/{r['pairs_inside']:<8} {r['auc_inside']:6.3f} "
                  f"{100 * r['eer_inside']:5.1f}% {r['auc_all']:7.3f} {r['same_mean']:5.2f} "
                  f"{r['different_mean']:5.2f} {r['seconds_per_audio_second']:6.4f}",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
