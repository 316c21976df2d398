"""Multichannel recordings (``multichannel=true``): each channel is one speaker.

Phone calls and meeting exports with one track per participant need no diarization:
who speaks is which microphone hears them. Each microphone also hears the others a
little (crosstalk bleed), so a channel's speech counts as its own only while that channel
is not much quieter than the loudest one:

    own speech of channel c at frame t  =  speech on c (Silero VAD, per channel)
                                           and level_c(t) >= max_k level_k(t) - bleed_db
                                           and level_c(t) above an absolute floor

(20 ms frames; ``bleed_db`` is DIARQ_MULTICHANNEL_BLEED_DB). Runs of own speech are the
channel speaker's turns (``CHANNEL_1``, ``CHANNEL_2``… in channel order); two people
talking at once are two overlapping turns, and the exclusive turns keep the louder
channel. Each channel is transcribed on its own, and a word is kept only if it lies in
that channel's own turns and, over the word's own span, the channel is not drowned out
by another (quieter than the loudest by more than ``bleed_db`` for most of the word):
Whisper also transcribes loud bleed, which belongs to the other channel's speaker and is
transcribed there.

Pure functions on arrays and ``shared.result`` types; the Silero VAD call is the
caller's (``speech`` masks), so the rules are unit-tested without models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from diarq.shared.media import SAMPLE_RATE
from diarq.shared.result import Segment, Speaker, Turn
from diarq.worker.assign import talk_times
from diarq.worker.turns import SpeakerTurns

FRAME = 320  # 20 ms at 16 kHz
FRAME_S = FRAME / SAMPLE_RATE
# quieter than this is silence on any channel, whatever the other channels do
FLOOR_DBFS = -55.0
# own-speech runs closer than this are one turn; shorter runs are dropped
MIN_GAP_S = 0.3
MIN_TURN_S = 0.2
# a word belongs to its channel when this share of it lies in the channel's own turns
# (widened by WORD_SLACK_S: word times and VAD edges differ by a frame or two)
WORD_SHARE = 0.5
WORD_SLACK_S = 0.15
_NO_SPACE_LANGUAGES = {"zh", "ja", "th", "lo", "km", "my", "yue", "bo"}


def speaker_id(channel: int) -> str:
    """Speaker id of a 0-based channel index: CHANNEL_1 for the first channel."""
    return f"CHANNEL_{channel + 1}"


def frame_levels(tracks: np.ndarray) -> np.ndarray:
    """(channels, samples) -> (channels, frames) RMS level of each 20 ms frame, dBFS."""
    tracks = np.atleast_2d(np.asarray(tracks, dtype=np.float32))
    frames = tracks.shape[1] // FRAME
    if frames == 0:
        return np.full((tracks.shape[0], 0), -np.inf)
    cut = tracks[:, : frames * FRAME].reshape(tracks.shape[0], frames, FRAME)
    power = np.einsum("cfi,cfi->cf", cut, cut, dtype=np.float64) / FRAME
    return 10.0 * np.log10(np.maximum(power, 1e-12))


def spans_to_frames(spans: Sequence[tuple[int, int]], frames: int) -> np.ndarray:
    """Sample ranges [lo, hi) -> boolean mask over 20 ms frames (a frame touched counts)."""
    mask = np.zeros(frames, dtype=bool)
    for lo, hi in spans:
        mask[max(0, lo // FRAME) : min(frames, -(-hi // FRAME))] = True
    return mask


def drowned(levels: np.ndarray, bleed_db: float) -> np.ndarray:
    """(channels, frames) mask of frames where a channel is more than ``bleed_db`` below
    the loudest channel, and that one is above the floor: what the channel hears then is
    someone else (bleed)."""
    if levels.shape[1] == 0:
        return np.zeros(levels.shape, dtype=bool)
    loudest = levels.max(axis=0, keepdims=True)
    return (levels < loudest - bleed_db) & (loudest > FLOOR_DBFS)


def own_speech(levels: np.ndarray, speech: np.ndarray, bleed_db: float) -> np.ndarray:
    """(channels, frames) mask of each channel's own speech (module docstring)."""
    return speech & ~drowned(levels, bleed_db) & (levels > FLOOR_DBFS)


def mask_runs(mask: np.ndarray, *, min_gap_s: float = MIN_GAP_S,
              min_len_s: float = MIN_TURN_S) -> list[tuple[float, float]]:
    """Runs of True frames as (start, end) seconds: gaps under ``min_gap_s`` closed, runs
    under ``min_len_s`` dropped."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    runs = [(lo * FRAME_S, hi * FRAME_S) for lo, hi in zip(edges[::2], edges[1::2], strict=True)]
    merged: list[tuple[float, float]] = []
    for lo, hi in runs:
        if merged and lo - merged[-1][1] < min_gap_s:
            merged[-1] = (merged[-1][0], hi)
        else:
            merged.append((lo, hi))
    return [(round(lo, 3), round(hi, 3)) for lo, hi in merged if hi - lo >= min_len_s]


def channel_turns(levels: np.ndarray, own: np.ndarray) -> SpeakerTurns:
    """Overlapping turns (one speaker per channel) and exclusive turns (the loudest
    channel with own speech, frame by frame)."""
    turns = [Turn(start=lo, end=hi, speaker=speaker_id(c))
             for c in range(own.shape[0]) for lo, hi in mask_runs(own[c])]
    turns.sort(key=lambda t: (t.start, t.end))
    # the exclusive view only has frames inside the (gap-closed) turns above
    inside = np.zeros(own.shape, dtype=bool)
    for t in turns:
        c = int(t.speaker.rsplit("_", 1)[1]) - 1
        inside[c, int(round(t.start / FRAME_S)) : int(round(t.end / FRAME_S))] = True
    # who is louder, judged over ~0.3 s: frame by frame the winner flips between syllables
    masked = np.where(inside, _smoothed(levels), -np.inf)
    winner = masked.argmax(axis=0) if masked.size else np.zeros(0, dtype=int)
    any_active = inside.any(axis=0)
    exclusive: list[Turn] = []
    for c in range(own.shape[0]):
        # no gap closing here: it would make two channels' exclusive turns overlap
        for lo, hi in mask_runs(any_active & (winner == c), min_gap_s=0.0,
                                min_len_s=FRAME_S):
            exclusive.append(Turn(start=lo, end=hi, speaker=speaker_id(c)))
    exclusive.sort(key=lambda t: (t.start, t.end))
    return SpeakerTurns(turns=turns, exclusive=exclusive)


def _smoothed(levels: np.ndarray, frames: int = 15) -> np.ndarray:
    """Levels (dB) averaged in power over a centred window of ``frames`` frames."""
    if levels.shape[1] == 0:
        return levels
    kernel = np.ones(frames) / frames
    power = 10.0 ** (levels / 10.0)
    mean = np.stack([np.convolve(row, kernel, mode="same") for row in power])
    return 10.0 * np.log10(np.maximum(mean, 1e-12))


def _inside_share(start: float, end: float, spans: Sequence[tuple[float, float]]) -> float:
    length = max(end - start, 1e-3)
    covered = sum(max(0.0, min(end, hi + WORD_SLACK_S) - max(start, lo - WORD_SLACK_S))
                  for lo, hi in spans)
    return min(covered / length, 1.0)


def keep_own_words(segments: Sequence[Segment], turns: Sequence[Turn], speaker: str,
                   drowned_frames: np.ndarray, language: str | None) -> list[Segment]:
    """A channel's transcript reduced to its own speech, every word and segment given to
    ``speaker``: words mostly outside the channel's turns, or mostly in frames where the
    channel is drowned out (``drowned_frames``, this channel's row of :func:`drowned`),
    are bleed and dropped, and so are segments left without words. Segments without
    word times (align=false) are kept or dropped whole by their span."""
    spans = [(t.start, t.end) for t in turns if t.speaker == speaker]
    joiner = "" if (language or "").split("-")[0] in _NO_SPACE_LANGUAGES else " "

    def own(start: float, end: float) -> bool:
        lo = int(start / FRAME_S)
        hi = max(int(np.ceil(end / FRAME_S)), lo + 1)
        piece = drowned_frames[lo:hi]
        return (_inside_share(start, end, spans) >= WORD_SHARE
                and (not piece.size or piece.mean() < WORD_SHARE))

    out: list[Segment] = []
    for seg in segments:
        if not seg.words:
            if own(seg.start, seg.end):
                out.append(seg.model_copy(update={"speaker": speaker}))
            continue
        # untimed words (numerals) stay with their neighbours
        kept = [w.model_copy(update={"speaker": speaker}) for w in seg.words
                if w.start is None or w.end is None or own(w.start, w.end)]
        if not any(w.start is not None for w in kept):
            continue
        timed = [w for w in kept if w.start is not None and w.end is not None]
        out.append(seg.model_copy(update={
            "speaker": speaker, "words": kept,
            "text": seg.text if len(kept) == len(seg.words)
            else joiner.join(w.word for w in kept),
            "start": timed[0].start, "end": timed[-1].end,
        }))
    return out


def merge_channels(per_channel: Sequence[Sequence[Segment]]) -> list[Segment]:
    """All channels' segments on one timeline (by start; channel order breaks ties)."""
    tagged = [(seg.start, c, i, seg) for c, segs in enumerate(per_channel)
              for i, seg in enumerate(segs)]
    return [seg for *_, seg in sorted(tagged, key=lambda x: x[:3])]


def channel_speakers(channels: int, turns: Sequence[Turn],
                     participants: Sequence[str] | None) -> list[Speaker]:
    """One speaker per channel, in channel order (silent channels included), participant
    names in channel order."""
    times = talk_times(turns)
    names = list(participants or [])
    return [Speaker(id=speaker_id(c), name=names[c] if c < len(names) else None,
                    talk_time=times.get(speaker_id(c), 0.0), channel=c + 1)
            for c in range(channels)]
