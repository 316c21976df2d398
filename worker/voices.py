"""Known voices: diarized speakers take the names of matching voice references.

Two parts, kept apart so that either can be replaced on its own:

* :class:`VoiceEncoder`, the one place that turns speech into voice vectors: one vector
  per diarized speaker (from that speaker's clean, non-overlapped speech) and one per
  reference clip, with the same model: the ECAPA-TDNN speaker embedding of the offline
  diarization's speaker-level stage (``worker/diarization/ecapa.py``). Where the
  diarizer already made its speakers' vectors with that model (the offline profile),
  those are used as they are (``VoiceEncoder.model_name`` tells them apart).
* :func:`match_references`, pure: cosine similarity between every speaker and every
  reference; the best pair takes its name first, then the best of the rest (greedy by
  score, so a confident match is never traded for two weaker ones), one reference per
  speaker and one speaker per reference, and only at or above a threshold calibrated
  for the encoder (BENCHMARKS.md, "Voice references"). Several clips with the same name
  are one person: their vectors are averaged first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diarq.shared.media import SAMPLE_RATE
from diarq.shared.result import Turn
from diarq.worker.turns import clean_spans

# clean stretches shorter than this are left out of a speaker's vector (boundary
# slivers carry the neighbour's voice) unless the speaker has nothing longer
MIN_SPAN_S = 0.5
# enough speech for a stable vector; longer speakers are cut to their longest stretches
# (ECAPA costs about 0.3 s of CPU per second of speech)
MAX_SPEAKER_S = 30.0


@dataclass(frozen=True)
class VoiceMatch:
    speaker: str
    name: str
    score: float  # cosine similarity of the two voice vectors


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    return v / max(float(np.linalg.norm(v)), 1e-12)


def pool_by_name(references: Sequence[tuple[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """One vector per name: the normalised mean of that name's clips."""
    grouped: dict[str, list[np.ndarray]] = {}
    for name, vec in references:
        grouped.setdefault(name, []).append(_unit(vec))
    return {name: _unit(np.mean(vecs, axis=0)) for name, vecs in grouped.items()}


def _score_matrix(speaker_vectors: Mapping[str, np.ndarray],
                  reference_vectors: Mapping[str, np.ndarray]
                  ) -> tuple[list[str], list[str], np.ndarray]:
    speakers = [s for s, v in speaker_vectors.items() if v is not None]
    names = list(reference_vectors)
    if not speakers or not names:
        return speakers, names, np.zeros((len(speakers), len(names)))
    a = np.stack([_unit(speaker_vectors[s]) for s in speakers])
    b = np.stack([_unit(reference_vectors[n]) for n in names])
    return speakers, names, a @ b.T


def similarities(speaker_vectors: Mapping[str, np.ndarray],
                 reference_vectors: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Cosine similarity of every speaker with every reference: {speaker: {name: s}}."""
    speakers, names, scores = _score_matrix(speaker_vectors, reference_vectors)
    return {spk: {name: round(float(scores[i, j]), 4) for j, name in enumerate(names)}
            for i, spk in enumerate(speakers)}


def match_references(speaker_vectors: Mapping[str, np.ndarray],
                     reference_vectors: Mapping[str, np.ndarray],
                     threshold: float) -> dict[str, VoiceMatch]:
    """Speaker id -> the reference (by name) it is: the most similar (speaker,
    reference) pair first, then the most similar of the rest, and so on, each speaker
    and each reference used once, pairs under ``threshold`` never."""
    speakers, names, scores = _score_matrix(speaker_vectors, reference_vectors)
    pairs = sorted(((float(scores[i, j]), i, j) for i in range(len(speakers))
                    for j in range(len(names)) if scores[i, j] >= threshold), reverse=True)
    out: dict[str, VoiceMatch] = {}
    taken: set[int] = set()
    for score, i, j in pairs:
        if speakers[i] in out or j in taken:
            continue
        out[speakers[i]] = VoiceMatch(speakers[i], names[j], round(score, 4))
        taken.add(j)
    return out


def speaker_samples(audio: np.ndarray, turns: Sequence[Turn], *,
                    max_seconds: float = MAX_SPEAKER_S) -> dict[str, np.ndarray]:
    """Per speaker, their clean speech (no other speaker's turn at the same time) as one
    array: the longest stretches first, up to ``max_seconds``, then back in time order."""
    out: dict[str, np.ndarray] = {}
    for speaker, spans in clean_spans(turns).items():
        usable = [s for s in spans if s[1] - s[0] >= MIN_SPAN_S] or spans
        chosen, total = [], 0.0
        for lo, hi in sorted(usable, key=lambda s: s[0] - s[1]):
            if total >= max_seconds:
                break
            hi = min(hi, lo + max_seconds - total)
            chosen.append((lo, hi))
            total += hi - lo
        pieces = [audio[int(lo * SAMPLE_RATE):int(hi * SAMPLE_RATE)] for lo, hi in sorted(chosen)]
        pieces = [p for p in pieces if len(p)]
        if pieces:
            out[speaker] = np.concatenate(pieces).astype(np.float32, copy=False)
    return out


class VoiceEncoder:
    """Voice vectors of speech (ECAPA-TDNN, 192-d, unit length): the model
    :func:`match_references` is calibrated for. Loaded once per worker process by the
    registry."""

    description = "ECAPA-TDNN 192-d, SpeechBrain spkrec-ecapa-voxceleb"

    def __init__(self, weights: Path, device: str = "cpu") -> None:
        import torch

        from diarq.worker.diarization.ecapa import shared_ecapa

        # the diarizer's own instance where it has one (offline profile, same device)
        self.model = shared_ecapa(weights, torch.device(device))
        # the diarizer's voice model name: its vectors are this encoder's
        self.model_name = self.model.name

    def embed(self, audio: np.ndarray) -> np.ndarray | None:
        """The vector of one stretch of 16 kHz mono speech; None when too short."""
        if len(audio) < MIN_SPAN_S * SAMPLE_RATE:
            return None
        vec = self.model([np.ascontiguousarray(audio, dtype=np.float32)])[0]
        return None if not np.isfinite(vec).all() else vec

    def speaker_vectors(self, audio: np.ndarray,
                        turns: Sequence[Turn]) -> dict[str, np.ndarray]:
        """One vector per speaker of ``turns``, from their clean speech in ``audio``;
        speakers without enough clean speech get none (and cannot be matched)."""
        samples = {s: a for s, a in speaker_samples(audio, turns).items()
                   if len(a) >= MIN_SPAN_S * SAMPLE_RATE}
        if not samples:
            return {}
        vectors = self.model(list(samples.values()))
        return {s: v for s, v in zip(samples, vectors, strict=True) if np.isfinite(v).all()}
