"""Speaker clustering rules on synthetic recordings (no model weights needed).

A synthetic recording is a sequence of turns of speakers with fixed centroids.
The chunk embeddings (GE2E's place) are noisy draws around one set of centroids;
the "audio" carries each frame's speaker id, and a stand-in for the speaker-level
model returns the mix of a second set of centroids found in the audio it gets, so
impure pooled speech gives an impure embedding as with a real model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from pyannote.core import SlidingWindow, SlidingWindowFeature

from diarq.worker.diarization.clustering import PROGRESS_SECONDS, SpeakerClustering
from diarq.worker.diarization.speaker_stage import StageParams, decide_speakers

SR = 100  # samples per second of the synthetic audio
FRAME = 0.25  # seconds per segmentation frame
FRAMES = 20  # frames per 5 s chunk
HOP = 5  # frames per 1.25 s chunk step


@dataclass
class Recording:
    embeddings: np.ndarray  # (chunks, 3, dim)
    segmentations: SlidingWindowFeature
    waveform: np.ndarray
    truth: np.ndarray  # (chunks, 3) true speaker of each local speaker, -1 none


class VoiceModel:
    """Speaker-level stand-in: the speech-weighted mix of per-speaker voice centroids."""

    def __init__(self, num: int, dim: int = 24, seed: int = 1) -> None:
        rng = np.random.default_rng(seed)
        v = rng.normal(size=(num, dim))
        self.centroids = v / np.linalg.norm(v, axis=1, keepdims=True)
        self.rng = rng
        self.calls = 0

    def __call__(self, waves: list[np.ndarray]) -> np.ndarray:
        self.calls += 1
        out = []
        for w in waves:
            ids = np.rint(np.asarray(w) * 100).astype(int) - 1
            counts = np.bincount(ids[ids >= 0], minlength=len(self.centroids))
            mix = counts / max(1, counts.sum())
            e = mix @ self.centroids + 0.1 * self.rng.normal(size=self.centroids.shape[1])
            out.append(e / np.linalg.norm(e))
        return np.array(out)


def _timeline(shares: dict[int, float], total_s: float, rng: np.random.Generator,
              fixed: dict[int, list[float]] | None = None) -> np.ndarray:
    """Speaker of every frame (-1 silence): turns of 4-12 s, as many per speaker as its
    share of the talk (at least one), in random order with 0.5 s gaps; ``fixed``
    speakers get exactly the turns listed (seconds)."""
    turns: list[tuple[int, float]] = []
    num_turns = total_s / 8.5
    for spk, share in shares.items():
        turns += [(spk, float(rng.uniform(4, 12)))
                  for _ in range(max(1, int(round(share * num_turns))))]
    for spk, durations in (fixed or {}).items():
        turns += [(spk, d) for d in durations]
    frames: list[int] = []
    for i in rng.permutation(len(turns)):
        spk, dur = turns[i]
        frames += [spk] * int(round(dur / FRAME)) + [-1] * 2
    return np.array(frames)


def _recording(timeline: np.ndarray, num_speakers: int, spread: float = 0.45, dim: int = 32,
               seed: int = 0) -> Recording:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(num_speakers, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    num_chunks = (len(timeline) - FRAMES) // HOP + 1
    seg = np.zeros((num_chunks, FRAMES, 3))
    truth = np.full((num_chunks, 3), -1)
    emb = np.full((num_chunks, 3, dim), np.nan)
    for c in range(num_chunks):
        window = timeline[c * HOP:c * HOP + FRAMES]
        present = [s for s in dict.fromkeys(window.tolist()) if s >= 0][:3]
        for local, spk in enumerate(present):
            seg[c, :, local] = window == spk
            truth[c, local] = spk
            e = centres[spk] + spread * rng.normal(size=dim) / np.sqrt(dim)
            emb[c, local] = e / np.linalg.norm(e)
    wave = np.repeat(np.where(timeline >= 0, (timeline + 1) / 100, 0.0), int(SR * FRAME))
    sw = SlidingWindow(start=0.0, duration=FRAMES * FRAME, step=HOP * FRAME)
    return Recording(emb, SlidingWindowFeature(seg, sw), wave.astype(np.float32), truth)


def _cluster(rec: Recording, voices: VoiceModel, stage: StageParams | None = None,
             **kwargs: int) -> np.ndarray:
    clustering = SpeakerClustering(voices, sample_rate=SR, speaker_dimension=24, stage=stage)
    hard, _, centroids = clustering(rec.embeddings, segmentations=rec.segmentations,
                                    file={"waveform": rec.waveform[None]}, **kwargs)
    active = rec.truth >= 0
    assert centroids.shape[0] == int(hard[active].max()) + 1
    return hard


def _found(rec: Recording, hard: np.ndarray) -> set[int]:
    found = hard[rec.truth >= 0]
    return set(found[found >= 0].tolist())


def _purity(rec: Recording, hard: np.ndarray) -> float:
    """Share of active local speakers whose label is their speaker's majority label."""
    active = rec.truth >= 0
    right = 0
    for spk in np.unique(rec.truth[active]):
        labels = hard[rec.truth == spk]
        right += np.bincount(labels[labels >= 0]).max() if (labels >= 0).any() else 0
    return right / active.sum()


SHARES = {0: 0.45, 1: 0.3, 2: 0.17, 3: 0.08}


@pytest.mark.parametrize("minutes", [2.5, 250.0])  # ~100 and ~10 000 chunks
def test_same_speakers_same_count_at_any_length(minutes: float) -> None:
    rec = _recording(_timeline(SHARES, minutes * 60, np.random.default_rng(3)), 4)
    assert 90 <= rec.embeddings.shape[0] <= 12000
    hard = _cluster(rec, VoiceModel(4))
    assert len(_found(rec, hard)) == 4
    assert _purity(rec, hard) > 0.9


@pytest.mark.parametrize("minutes", [3.0, 250.0])
def test_minimum_speaker_size_is_absolute(minutes: float) -> None:
    """A visitor with 20 s of speech is a speaker in a 3-minute call and a 4-hour
    meeting; a voice with less clean speech than the floor (here 3 s) is not."""
    fixed = {2: [10.0, 10.0], 3: [2.5]}
    rec = _recording(_timeline({0: 0.6, 1: 0.4}, minutes * 60, np.random.default_rng(5), fixed),
                     4)
    hard = _cluster(rec, VoiceModel(4), stage=StageParams(min_speech=3.0))
    assert len(_found(rec, hard)) == 3
    visitor = hard[rec.truth == 2]
    main = set(hard[rec.truth == 0].tolist()) | set(hard[rec.truth == 1].tolist())
    assert np.mean(visitor == np.bincount(visitor).argmax()) > 0.8
    assert np.bincount(visitor).argmax() not in {np.bincount(hard[rec.truth == s]).argmax()
                                                 for s in (0, 1)}
    assert len(main) >= 2


@pytest.mark.parametrize("minutes", [2.5, 250.0])
@pytest.mark.parametrize("k", [1, 2, 3, 5, 7])
def test_num_speakers_is_exact(minutes: float, k: int) -> None:
    rec = _recording(_timeline(SHARES, minutes * 60, np.random.default_rng(7)), 4)
    hard = _cluster(rec, VoiceModel(4), num_clusters=k)
    assert _found(rec, hard) == set(range(k))


def test_bounds_hold() -> None:
    rec = _recording(_timeline(SHARES, 300, np.random.default_rng(9)), 4)
    assert len(_found(rec, _cluster(rec, VoiceModel(4), max_clusters=2))) <= 2
    assert len(_found(rec, _cluster(rec, VoiceModel(4), min_clusters=6))) >= 6
    assert len(_found(rec, _cluster(rec, VoiceModel(4), min_clusters=2, max_clusters=8))) == 4


def test_single_speaker_and_few_model_calls() -> None:
    rec = _recording(_timeline({0: 1.0}, 600, np.random.default_rng(11)), 1)
    voices = VoiceModel(1)
    hard = _cluster(rec, voices)
    assert _found(rec, hard) == {0}
    assert voices.calls <= 2  # batched: candidates, then at most the split speakers


def test_stage_merges_confirms_and_drops() -> None:
    """decide_speakers on candidate embeddings: same voice merges, a distinct short
    voice stays, a short voice close to a speaker joins it, tiny ones are dropped."""
    rng = np.random.default_rng(0)
    a, b, c = np.eye(8)[:3]
    emb = np.array([a, a, b, c, 0.8 * a + 0.6 * b, c]) + 0.05 * rng.normal(size=(6, 8))
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    speech = np.array([20.0, 15.0, 30.0, 4.0, 3.0, 0.5])
    params = StageParams(merge_similarity=0.6, small_speech=8.0, small_similarity=0.5,
                         min_speech=2.0)
    speakers, dropped = decide_speakers(emb, speech, params)
    assert sorted(sorted(s) for s in speakers) == [[0, 1, 4], [2], [3, 5]]
    assert dropped == []
    speakers, dropped = decide_speakers(emb[:5], speech[:5], params, max_speakers=2)
    assert len(speakers) == 2
    speakers, dropped = decide_speakers(emb[[0, 5]], speech[[0, 5]], params)
    assert speakers == [[0]] and dropped == [[1]]
    speakers, _ = decide_speakers(emb[[0, 5]], speech[[0, 5]], params, min_speakers=2)
    assert sorted(speakers) == [[0], [1]]
    assert decide_speakers(emb[:1], speech[:1], params) == ([[0]], [])


class StrictVoiceModel(VoiceModel):
    """A stand-in that, like ECAPA (NaN on an empty input), refuses too little audio."""

    def __call__(self, waves: list[np.ndarray]) -> np.ndarray:
        assert all(len(w) >= 0.5 * SR for w in waves), [len(w) for w in waves]
        return super().__call__(waves)


def test_speech_only_in_fragments_is_not_embedded() -> None:
    """A voice whose clean speech (about 6 s) is all in 0.25 s fragments, shorter than
    the pooled runs' minimum, gives no audio to embed: it is not sent to the model, and
    the two main speakers are still told apart."""
    fixed = {2: [0.25] * 40}
    rec = _recording(_timeline({0: 0.6, 1: 0.4}, 180, np.random.default_rng(13), fixed), 3)
    hard = _cluster(rec, StrictVoiceModel(3))
    majority = {s: int(np.bincount(hard[rec.truth == s]).argmax()) for s in (0, 1)}
    assert majority[0] != majority[1]


def test_tracks_follow_a_voice_across_chunks() -> None:
    """track_candidates (an experimental candidate rule, off by default): a local
    speaker whose activity continues into the next chunk keeps its track whatever its
    local index; one silent over the frames both chunks cover starts a new track."""
    from diarq.worker.diarization.clustering import track_candidates

    timeline = np.array([0] * 24 + [1] * 24 + [-1] * 24 + [1] * 12)  # 0.25 s frames
    rec = _recording(timeline, 2)
    seg = rec.segmentations.data.copy()
    seg[1::2] = seg[1::2, :, ::-1]  # every other chunk lists its local speakers reversed
    segs = SlidingWindowFeature(seg, rec.segmentations.sliding_window)
    truth = rec.truth.copy()
    truth[1::2] = truth[1::2, ::-1]
    chunk_idx, speaker_idx = np.nonzero(seg.sum(axis=1) > 0)
    labels = track_candidates(segs, chunk_idx, speaker_idx, 0.5)
    speaker = truth[chunk_idx, speaker_idx]
    assert len(set(labels[speaker == 0].tolist())) == 1
    ones = labels[speaker == 1]
    assert len(set(ones.tolist())) == 2  # two stretches of talk, 6 s apart
    assert not set(labels[speaker == 0].tolist()) & set(ones.tolist())


def test_progress_moves_while_speakers_are_embedded_and_changes_nothing() -> None:
    """With a progress callback the speaker-level model embeds in parts of about
    PROGRESS_SECONDS of audio and reports the seconds done after each; the speakers are those of
    one call."""
    rec = _recording(_timeline(SHARES, 1200, np.random.default_rng(9)), 4)
    plain = _cluster(rec, VoiceModel(4))
    voices = VoiceModel(4)
    clustering = SpeakerClustering(voices, sample_rate=SR, speaker_dimension=24)
    reports: list[tuple[float, float]] = []
    clustering.progress = lambda total, completed: reports.append((completed, total))
    hard, _, _ = clustering(rec.embeddings, segmentations=rec.segmentations,
                            file={"waveform": rec.waveform[None]})
    np.testing.assert_array_equal(hard, plain)
    done = [c for c, _ in reports]
    total = reports[0][1]
    assert done[0] == 0.0 and done[-1] == pytest.approx(total)
    assert all(b > a for a, b in zip(done, done[1:], strict=False))
    assert total > 2 * PROGRESS_SECONDS and len(done) >= 3  # more than one part
    assert voices.calls == len(done) - 1
