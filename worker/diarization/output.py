"""What a diarizer returns: speaker turns, plus one voice embedding per output speaker.

The voice embeddings are for recognising people across recordings (the job keeps
them; they are biometric data and never part of the result JSON).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from shared.result import Turn


@dataclass
class Diarization:
    turns: list[Turn]
    # output speaker label (SPEAKER_00, ...) -> L2-normalised embedding of that voice
    voices: dict[str, np.ndarray] = field(default_factory=dict)
    # the model that made ``voices`` (embeddings of different models do not compare)
    voice_model: str | None = None


def to_diarization(output: Any, voice_model: str | None) -> Diarization:
    """pyannote's output (DiarizeOutput or a bare Annotation) -> Diarization, speakers
    renamed SPEAKER_00.. in order of first appearance; ``speaker_embeddings`` rows
    follow the annotation's sorted labels (pyannote's convention)."""
    annotation = getattr(output, "speaker_diarization", output)
    rows = getattr(output, "speaker_embeddings", None)
    tracks = sorted(
        ((seg.start, seg.end, str(label))
         for seg, _, label in annotation.itertracks(yield_label=True)),
        key=lambda t: (t[0], t[1]),
    )
    names: dict[str, str] = {}
    turns = []
    for start, end, label in tracks:
        if end - start <= 0:
            continue
        name = names.setdefault(label, f"SPEAKER_{len(names):02d}")
        turns.append(Turn(start=round(start, 3), end=round(end, 3), speaker=name))
    voices: dict[str, np.ndarray] = {}
    if rows is not None:
        rows = np.asarray(rows, dtype=np.float32)
        for i, label in enumerate(annotation.labels()):
            name = names.get(str(label))
            if name is None or i >= len(rows):
                continue
            norm = float(np.linalg.norm(rows[i]))
            if norm > 0 and np.all(np.isfinite(rows[i])):
                voices[name] = rows[i] / norm
    return Diarization(turns, voices, voice_model if voices else None)
