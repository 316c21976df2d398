"""Speaker turns as time intervals: overlapping vs exclusive, and each speaker's clean
(non-overlapped) speech. Pure functions over ``shared.result.Turn``.

*Overlapping* turns (``Result.diarization``) list every speaker heard at each moment, so
two people talking at once give two turns covering the same time. *Exclusive* turns
(``Result.exclusive_diarization``) give one speaker at a time: pyannote (>= 4) derives
them from its segmentation, keeping the most active local speaker; where a backend gives
none, :func:`exclusive_from_overlapping` derives them from the overlapping turns.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from diarq.shared.result import Turn

# exclusive pieces shorter than this (boundary slivers between two turns) are dropped
_MIN_PIECE_S = 0.01


@dataclass(frozen=True)
class SpeakerTurns:
    """What a diarization gives: overlapping turns and the exclusive ones (same labels)."""

    turns: list[Turn]
    exclusive: list[Turn] = field(default_factory=list)
    # one voice embedding per speaker label (a VoiceSet), when the diarizer makes them
    voices: Any = None


def _elementary(turns: Sequence[Turn]) -> list[tuple[float, float, list[int]]]:
    """[start, end) intervals between consecutive turn boundaries, each with the indices
    of the turns active in it (sorted by turn start)."""
    bounds = sorted({t.start for t in turns} | {t.end for t in turns})
    order = sorted(range(len(turns)), key=lambda i: (turns[i].start, turns[i].end))
    out: list[tuple[float, float, list[int]]] = []
    active: list[int] = []
    pos = 0
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        while pos < len(order) and turns[order[pos]].start <= lo:
            active.append(order[pos])
            pos += 1
        active = [i for i in active if turns[i].end > lo]
        out.append((lo, hi, list(active)))
    return out


def _merge(pieces: list[tuple[float, float, str]]) -> list[Turn]:
    out: list[Turn] = []
    for lo, hi, spk in pieces:
        if out and out[-1].speaker == spk and abs(out[-1].end - lo) < 1e-9:
            out[-1] = out[-1].model_copy(update={"end": hi})
        else:
            out.append(Turn(start=lo, end=hi, speaker=spk))
    return [t.model_copy(update={"start": round(t.start, 3), "end": round(t.end, 3)})
            for t in out if t.end - t.start >= _MIN_PIECE_S]


def exclusive_from_overlapping(turns: Sequence[Turn]) -> list[Turn]:
    """One speaker at a time: where turns overlap, the speaker whose turn started last
    (an interjection inside a long turn is the voice heard over it), as word assignment
    decides overlapped words (worker/assign.py)."""
    pieces = []
    for lo, hi, active in _elementary(turns):
        if active:
            latest = max(active, key=lambda i: (turns[i].start, -turns[i].end))
            pieces.append((lo, hi, turns[latest].speaker))
    return _merge(pieces)


def clean_spans(turns: Sequence[Turn]) -> dict[str, list[tuple[float, float]]]:
    """Per speaker, the stretches where they are the only one speaking (no overlap with
    another speaker's turn), in time order."""
    out: dict[str, list[tuple[float, float]]] = {}
    for lo, hi, active in _elementary(turns):
        speakers = {turns[i].speaker for i in active}
        if len(speakers) == 1:
            spk = speakers.pop()
            spans = out.setdefault(spk, [])
            if spans and abs(spans[-1][1] - lo) < 1e-9:
                spans[-1] = (spans[-1][0], hi)
            else:
                spans.append((lo, hi))
    return out
