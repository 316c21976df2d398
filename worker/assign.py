"""Join the transcript with the diarization: who said each word, each segment.

Pure functions over ``shared.result`` types (no models), so they are unit-tested
directly.

Rules (chosen for readable meeting transcripts):

* words are given speakers from the exclusive turns (one speaker at a time; where
  people talk at once, the voice the segmentation finds dominant) when the diarization
  gives them: that lowered cpWER on the pyannote sample from 32.1 % to 29.6 % and got
  more overlapped words right on the other recordings (BENCHMARKS.md, "Exclusive
  turns"); the overlapping turns stay in the result;
* a word's speaker is the speaker whose turns overlap the word the most (summed
  over that speaker's turns); on a tie (overlapped speech) the speaker whose turn
  started last; a word in a gap between turns gets the nearest turn;
  a word without times gets the speaker of the nearest timed word in its segment;
* a segment is split where the speaker changes, so that a line of the transcript
  never mixes two people. A lone short word of another speaker inside a run
  (diarization jitter at a boundary: < 2 words and < 0.5 s) does not split the
  segment; it keeps its own word-level speaker;
* a segment's speaker is the majority speaker of its words (by duration);
* speaker labels are renumbered SPEAKER_00, SPEAKER_01... in order of first
  appearance (first word spoken, then first turn for speakers without words), and
  ``participants`` names are given in that same order.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from diarq.shared.result import Segment, Speaker, Turn, Word

# Languages written without spaces between words: split segments join words bare.
_NO_SPACE_LANGUAGES = {"zh", "ja", "th", "lo", "km", "my", "yue", "bo"}
# A run of another speaker shorter than this does not split a segment.
_MIN_SPLIT_WORDS = 2
_MIN_SPLIT_SECONDS = 0.5
_CHUNK = 2048  # words per vectorised block (bounds memory on long recordings)
WordTurns = Literal["exclusive", "overlapping"]


def speakers_for_spans(
    starts: np.ndarray, ends: np.ndarray, turns: Sequence[Turn]
) -> list[str | None]:
    """Speaker of each [start, end] span: most overlap, else nearest turn; None without turns."""
    if not turns or len(starts) == 0:
        return [None] * len(starts)
    labels = sorted({t.speaker for t in turns})
    index = {s: i for i, s in enumerate(labels)}
    t_start = np.array([t.start for t in turns], dtype=np.float64)
    t_end = np.array([t.end for t in turns], dtype=np.float64)
    onehot = np.zeros((len(turns), len(labels)))
    onehot[np.arange(len(turns)), [index[t.speaker] for t in turns]] = 1.0

    out: list[str | None] = []
    for lo in range(0, len(starts), _CHUNK):
        s = np.asarray(starts[lo : lo + _CHUNK], dtype=np.float64)[:, None]
        e = np.asarray(ends[lo : lo + _CHUNK], dtype=np.float64)[:, None]
        overlap = np.clip(np.minimum(e, t_end) - np.maximum(s, t_start), 0.0, None)
        per_speaker = overlap @ onehot
        top = per_speaker.max(axis=1)
        has_overlap = top > 0
        # Overlapped speech: a word inside two speakers' turns is given to the one whose
        # turn started last (the interjection inside a long turn, which diarization
        # tends to stretch over the other person's words).
        tied = per_speaker >= (top * 0.999)[:, None] - 1e-9
        latest = np.full(per_speaker.shape, -np.inf)
        started = np.where(overlap > 0, t_start, -np.inf)
        for j in range(len(labels)):
            cols = onehot[:, j] > 0
            latest[:, j] = started[:, cols].max(axis=1)
        best = np.where(tied, latest, -np.inf).argmax(axis=1)
        # distance to each turn (0 when touching); nearest turn decides gap words
        gap = np.maximum(np.maximum(t_start - e, s - t_end), 0.0)
        nearest = gap.argmin(axis=1)
        for k in range(len(best)):
            if has_overlap[k]:
                out.append(labels[best[k]])
            else:
                out.append(turns[nearest[k]].speaker)
    return out


def assign_word_speakers(segments: Sequence[Segment], turns: Sequence[Turn]) -> list[Segment]:
    """Copy of ``segments`` where every word (and segment) carries a speaker."""
    words = [w for seg in segments for w in seg.words if w.start is not None and w.end is not None]
    starts = np.array([w.start for w in words], dtype=np.float64)
    ends = np.array([w.end for w in words], dtype=np.float64)
    speaker_of = dict(zip(map(id, words), speakers_for_spans(starts, ends, turns), strict=True))

    out: list[Segment] = []
    for seg in segments:
        if not seg.words:
            # segment-level transcript (alignment off): the segment span decides
            spk = speakers_for_spans(np.array([seg.start]), np.array([seg.end]), turns)[0]
            out.append(seg.model_copy(update={"speaker": spk}))
            continue
        new_words = [w.model_copy(update={"speaker": speaker_of.get(id(w))}) for w in seg.words]
        _fill_untimed(new_words)
        out.append(seg.model_copy(update={"words": new_words, "speaker": majority(new_words)}))
    return out


def _fill_untimed(words: list[Word]) -> None:
    """Untimed words (numerals the aligner skips) take the nearest timed word's speaker."""
    timed = [i for i, w in enumerate(words) if w.speaker is not None]
    if not timed:
        return
    for i, w in enumerate(words):
        if w.speaker is None:
            j = min(timed, key=lambda t: abs(t - i))
            words[i] = w.model_copy(update={"speaker": words[j].speaker})


def majority(words: Sequence[Word]) -> str | None:
    """Speaker holding the most word time (word count breaks ties and covers untimed words)."""
    score: dict[str, float] = defaultdict(float)
    for w in words:
        if w.speaker is None:
            continue
        dur = (w.end - w.start) if (w.start is not None and w.end is not None) else 0.0
        score[w.speaker] += max(dur, 0.0) + 1e-3
    if not score:
        return None
    return max(score.items(), key=lambda kv: kv[1])[0]


def split_at_speaker_changes(segments: Sequence[Segment], language: str | None) -> list[Segment]:
    """Split segments whose words change speaker; short jitter runs do not split."""
    joiner = "" if (language or "").split("-")[0] in _NO_SPACE_LANGUAGES else " "
    out: list[Segment] = []
    for seg in segments:
        runs = _speaker_runs(seg.words)
        if len(runs) <= 1:
            out.append(seg)
            continue
        for run in runs:
            timed = [w for w in run if w.start is not None and w.end is not None]
            start = timed[0].start if timed else seg.start
            end = timed[-1].end if timed else seg.end
            text = joiner.join(w.word.strip() for w in run).strip()
            out.append(seg.model_copy(update={
                "start": start, "end": end, "speaker": majority(run), "text": text,
                "words": list(run)}))
    return out


def _speaker_runs(words: Sequence[Word]) -> list[list[Word]]:
    runs: list[list[Word]] = []
    for w in words:
        if runs and runs[-1][-1].speaker == w.speaker:
            runs[-1].append(w)
        else:
            runs.append([w])
    if len(runs) <= 1:
        return runs
    # absorb jitter runs into the run before (or after, for a leading one)
    merged: list[list[Word]] = []
    for run in runs:
        absorb = bool(merged) and (
            _is_jitter(run)  # short interruption: stays in the running segment
            or (len(merged) == 1 and _is_jitter(merged[0]))  # leading jitter joins the next
            or majority(merged[-1]) == majority(run)  # same speaker again after a merge
        )
        if absorb:
            merged[-1].extend(run)
        else:
            merged.append(list(run))
    return merged


def _is_jitter(run: Sequence[Word]) -> bool:
    timed = [w for w in run if w.start is not None and w.end is not None]
    dur = (timed[-1].end - timed[0].start) if timed else 0.0
    return len(run) < _MIN_SPLIT_WORDS and dur < _MIN_SPLIT_SECONDS


def first_appearance_order(segments: Sequence[Segment], turns: Sequence[Turn]) -> list[str]:
    """Speaker ids in the order they are first heard: transcript first, then other turns."""
    order: list[str] = []
    for seg in segments:
        for spk in [w.speaker for w in seg.words] or [seg.speaker]:
            if spk is not None and spk not in order:
                order.append(spk)
    for t in sorted(turns, key=lambda t: t.start):
        if t.speaker not in order:
            order.append(t.speaker)
    return order


def relabel(
    segments: Sequence[Segment], turns: Sequence[Turn], exclusive: Sequence[Turn] = ()
) -> tuple[list[Segment], list[Turn], list[str], list[Turn], dict[str, str]]:
    """Rename speakers SPEAKER_00.. in order of first appearance; return the renamed
    segments and turns, the new id order, the renamed exclusive turns and the renaming
    (old label -> new)."""
    order = first_appearance_order(segments, turns)
    mapping = {old: f"SPEAKER_{i:02d}" for i, old in enumerate(order)}

    def m(spk: str | None) -> str | None:
        return None if spk is None else mapping.get(spk, spk)

    new_segments = [
        seg.model_copy(
            update={
                "speaker": m(seg.speaker),
                "words": [w.model_copy(update={"speaker": m(w.speaker)}) for w in seg.words],
            }
        )
        for seg in segments
    ]
    new_turns = [t.model_copy(update={"speaker": mapping[t.speaker]}) for t in turns]
    new_exclusive = [t.model_copy(update={"speaker": m(t.speaker)}) for t in exclusive]
    return new_segments, new_turns, [mapping[o] for o in order], new_exclusive, mapping


def talk_times(turns: Sequence[Turn]) -> dict[str, float]:
    """Seconds each speaker talks (union of that speaker's turns, overlaps counted once)."""
    by_speaker: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for t in turns:
        by_speaker[t.speaker].append((t.start, t.end))
    totals: dict[str, float] = {}
    for spk, spans in by_speaker.items():
        total, cur_s, cur_e = 0.0, None, None
        for s, e in sorted(spans):
            if cur_e is None or s > cur_e:
                if cur_e is not None:
                    total += cur_e - cur_s  # type: ignore[operator]
                cur_s, cur_e = s, e
            else:
                cur_e = max(cur_e, e)
        if cur_e is not None:
            total += cur_e - cur_s  # type: ignore[operator]
        totals[spk] = round(total, 3)
    return totals


def build_speakers(
    order: Sequence[str], turns: Sequence[Turn], participants: Sequence[str] | None
) -> list[Speaker]:
    """Speaker list in order of appearance; participant names given in that order."""
    times = talk_times(turns)
    names = list(participants or [])
    return [
        Speaker(id=spk, name=names[i] if i < len(names) else None, talk_time=times.get(spk, 0.0))
        for i, spk in enumerate(order)
    ]


@dataclass(frozen=True)
class Assignment:
    """The assign step's output: speaker-attributed segments, the overlapping and the
    exclusive turns (renamed alike), and the speaker list."""

    segments: list[Segment]
    turns: list[Turn]
    exclusive: list[Turn]
    speakers: list[Speaker]
    # the diarizer's label -> the label it got here (things keyed by the diarizer's
    # labels, such as the speakers' voices, are renamed with it)
    labels: dict[str, str] = field(default_factory=dict)


def assign_all(
    segments: Sequence[Segment],
    turns: Sequence[Turn],
    *,
    exclusive: Sequence[Turn] | None = None,
    participants: Sequence[str] | None = None,
    language: str | None = None,
    split: bool = True,
    words_from: WordTurns = "exclusive",
) -> Assignment:
    """Whole assignment step: word speakers → split → relabel → speaker list.

    ``words_from``: which turns decide each word's speaker when ``exclusive`` turns are
    given ("exclusive": one speaker at a time, so overlapped words go to the dominant
    voice; "overlapping": the rules above). Without turns (diarization off) every speaker
    stays None and no speakers are listed.
    """
    exclusive = list(exclusive or [])
    if not turns:
        clean = [
            seg.model_copy(
                update={
                    "speaker": None,
                    "words": [w.model_copy(update={"speaker": None}) for w in seg.words],
                }
            )
            for seg in segments
        ]
        return Assignment(clean, [], [], [])
    deciding = exclusive if exclusive and words_from == "exclusive" else turns
    with_speakers = assign_word_speakers(segments, deciding)
    if split:
        with_speakers = split_at_speaker_changes(with_speakers, language)
    new_segments, new_turns, order, new_exclusive, labels = relabel(with_speakers, turns,
                                                                    exclusive)
    return Assignment(new_segments, new_turns, new_exclusive,
                      build_speakers(order, new_turns, participants), labels=labels)


def assign(
    segments: Sequence[Segment],
    turns: Sequence[Turn],
    *,
    participants: Sequence[str] | None = None,
    language: str | None = None,
    split: bool = True,
) -> tuple[list[Segment], list[Turn], list[Speaker]]:
    """:func:`assign_all` with overlapping turns only: (segments, turns, speakers)."""
    out = assign_all(segments, turns, participants=participants, language=language,
                     split=split)
    return out.segments, out.turns, out.speakers
