"""Long-form test recordings built from the short eval clips, with true speaker identities.

Used by ``bench/quality.py --long-form``. Every recording is a sequence of clips
of the corpus (each a whole eval recording, or a "visitor": one person's clean
turns cut out of a recording), separated by 0.3-1.7 s of silence. Identities are
kept across clips: AMI speaker ids are corpus-wide (dev00 and dev01 share
MEE009/MEE012, trn06 and trn09 share FEE083), other recordings' labels are
prefixed with the recording name.

No two copies of a clip are bit-identical: each copy gets its own gain
(+-4 dB), tempo (x0.95-1.05 with sox's pitch-preserving ``tempo``; reference
times are scaled with it) and white noise (-62 to -50 dBFS). All randomness is
seeded, so a suite is the same on every run.

Recordings (length, true speakers):

* ``mee-10`` dev00/dev01 copies, 10 min (2 people: MEE009, MEE012);
* ``fee083-12`` trn06/trn09 copies, 12 min (5; FEE083 in both meetings, and
  three people who talk 1-3 % of the time);
* ``visitors-10`` dev00/dev01 for 10 min plus 5 visitors, one 8-15 s appearance
  each (1-3 % of the talk each; 7 people);
* ``mixed-30`` dev00, dev01, trn06, trn09, tst00 clips in random order, 30 min
  (11 people);
* ``visitors-60`` dev00/dev01/trn06/trn09 for 58 min plus the same 5 visitors,
  each twice (16-30 s of talk in all; 12 people);
* ``tiled-10`` / ``tiled-30`` / ``tiled-60`` every eval recording with a
  reference, in turn, to 10/30/60 min (39 people, many with < 2 s of talk).
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

SR = 16000


@dataclass
class Clip:
    """A piece of audio with its reference turns (start, end, speaker) and scored spans."""

    audio: np.ndarray
    turns: list[tuple[float, float, str]]
    spans: list[tuple[float, float]]


@dataclass
class LongRecording:
    name: str
    audio: np.ndarray
    reference: Any  # pyannote Annotation
    uem: Any  # pyannote Timeline

    @property
    def minutes(self) -> float:
        return len(self.audio) / SR / 60


def _load_clips(corpus: Path) -> dict[str, Clip]:
    from diarq.worker.audio import decode_audio

    clips = {}
    for wav in sorted(corpus.rglob("*.wav")):
        rttm = wav.with_suffix(".rttm")
        if not rttm.is_file():
            continue
        ami = wav.parent.name == "ami"
        turns = []
        for line in rttm.read_text().splitlines():
            f = line.split()
            if len(f) >= 8 and f[0] == "SPEAKER":
                who = f[7] if ami else f"{wav.stem}:{f[7]}"
                turns.append((float(f[3]), float(f[3]) + float(f[4]), who))
        audio = decode_audio(wav)
        uem = wav.with_suffix(".uem")
        spans = ([(float(f[2]), float(f[3])) for f in
                  (line.split() for line in uem.read_text().splitlines()) if len(f) >= 4]
                 if uem.is_file() else [(0.0, len(audio) / SR)])
        clips[wav.stem] = Clip(audio, turns, spans)
    return clips


def _visitor(clip: Clip, speaker: str, seconds: float) -> Clip:
    """``speaker``'s turns of ``clip`` that nobody else talks over, joined with 0.3 s
    gaps, until ``seconds`` of speech."""
    pieces, turns, t = [], [], 0.0
    others = [(s, e) for s, e, w in clip.turns if w != speaker]
    for s, e, w in sorted(clip.turns):
        if w != speaker:
            continue
        # cut the turn where anyone else speaks; keep the clean parts >= 0.5 s
        parts = [(s, e)]
        for os_, oe in others:
            parts = [q for a, b in parts for q in ((a, min(b, os_)), (max(a, oe), b))
                     if q[1] - q[0] > 0]
        for a, b in parts:
            if b - a < 0.5:
                continue
            pieces.append(clip.audio[int(a * SR):int(b * SR)])
            turns.append((t, t + (b - a), speaker))
            t += b - a
            pieces.append(np.zeros(int(0.3 * SR), np.float32))
            t += 0.3
            if sum(e2 - s2 for s2, e2, _ in turns) >= seconds:
                break
        if sum(e2 - s2 for s2, e2, _ in turns) >= seconds:
            break
    audio = np.concatenate(pieces) if pieces else np.zeros(0, np.float32)
    return Clip(audio, turns, [(0.0, len(audio) / SR)])


def _tempo(audio: np.ndarray, factor: float) -> np.ndarray:
    if abs(factor - 1.0) < 1e-3 or shutil.which("sox") is None:
        return audio
    raw = subprocess.run(
        ["sox", "-t", "f32", "-r", str(SR), "-c", "1", "-", "-t", "f32", "-", "tempo", "-s",
         f"{factor:.4f}"],
        input=np.ascontiguousarray(audio, dtype=np.float32).tobytes(), capture_output=True,
        check=True).stdout
    return np.frombuffer(raw, dtype=np.float32).copy()


def _vary(clip: Clip, rng: np.random.Generator) -> Clip:
    """One copy of a clip: own gain, tempo and noise (reference times scaled)."""
    factor = float(rng.uniform(0.95, 1.05))
    audio = _tempo(clip.audio, factor)
    audio = audio * 10 ** (rng.uniform(-4, 4) / 20)
    audio = audio + rng.normal(0, 10 ** (rng.uniform(-62, -50) / 20), len(audio))
    scale = 1.0 / factor if len(audio) != len(clip.audio) else 1.0
    return Clip(np.clip(audio, -1, 1).astype(np.float32),
                [(s * scale, e * scale, w) for s, e, w in clip.turns],
                [(s * scale, e * scale) for s, e in clip.spans])


def _assemble(name: str, clips: list[Clip], rng: np.random.Generator) -> LongRecording:
    from pyannote.core import Annotation, Segment, Timeline

    parts, ref, spans, t = [], Annotation(uri=name), [], 0.0
    for clip in clips:
        c = _vary(clip, rng)
        parts.append(c.audio)
        for s, e, w in c.turns:
            ref[Segment(s + t, e + t)] = w
        spans += [Segment(s + t, e + t) for s, e in c.spans]
        gap = int(SR * rng.uniform(0.3, 1.7))
        parts.append(np.zeros(gap, np.float32))
        t += len(c.audio) / SR + gap / SR
    return LongRecording(name, np.concatenate(parts), ref, Timeline(spans).support())


def _fill(pool: list[Clip], minutes: float, rng: np.random.Generator,
          shuffle: bool = False) -> list[Clip]:
    out, total, i = [], 0.0, 0
    while total < minutes * 60:
        clip = pool[int(rng.integers(len(pool)))] if shuffle else pool[i % len(pool)]
        out.append(clip)
        total += len(clip.audio) / SR + 1.0
        i += 1
    return out


def _insert(main: list[Clip], visitors: list[Clip], rng: np.random.Generator) -> list[Clip]:
    """Visitors at distinct random places, never first or last."""
    out = list(main)
    slots = sorted(rng.choice(np.arange(1, len(out)), size=len(visitors), replace=False))
    for k, (slot, v) in enumerate(zip(slots, visitors, strict=True)):
        out.insert(int(slot) + k, v)
    return out


# visitors: (recording, speaker, seconds per appearance); people absent from the
# main meetings, each with >= 15 s of clean talk in their recording
VISITORS = [("tst00", "FEO072", 12.0), ("trn08", "FEE087", 10.0), ("sample", "speaker91", 8.0),
            ("diarizationExample", "speakerB", 10.0), ("trn03", "MÉO069", 15.0)]


def build_suite(corpus: Path, names: list[str] | None = None) -> list[LongRecording]:
    clips = _load_clips(corpus)
    visitors = [_visitor(clips[uri], who if uri.startswith(("trn", "tst", "dev"))
                         else f"{uri}:{who}", sec) for uri, who, sec in VISITORS]
    recipes = {
        "mee-10": lambda r: _fill([clips["dev00"], clips["dev01"]], 10, r),
        "fee083-12": lambda r: _fill([clips["trn06"], clips["trn09"]], 12, r),
        "visitors-10": lambda r: _insert(_fill([clips["dev00"], clips["dev01"]], 9, r),
                                         visitors, r),
        "mixed-30": lambda r: _fill([clips[u] for u in ("dev00", "dev01", "trn06", "trn09",
                                                        "tst00")], 30, r, shuffle=True),
        "visitors-60": lambda r: _insert(
            _fill([clips[u] for u in ("dev00", "trn06", "dev01", "trn09")], 58, r),
            [v for v in visitors for _ in range(2)], r),
        "tiled-10": lambda r: _fill(list(clips.values()), 10, r),
        "tiled-30": lambda r: _fill(list(clips.values()), 30, r),
        "tiled-60": lambda r: _fill(list(clips.values()), 60, r),
    }
    out = []
    for k, (name, recipe) in enumerate(recipes.items()):
        if names and name not in names:
            continue
        rng = np.random.default_rng(1000 + k)
        out.append(_assemble(name, recipe(rng), rng))
    return out
