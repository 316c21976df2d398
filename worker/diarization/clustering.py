"""Speaker clustering of the offline pipeline: chunk-level candidates, speaker-level decisions.

pyannote's SpeakerDiarization embeds every (5 s chunk, local speaker) pair with
GE2E and hands those embeddings to this clustering, with the binarized
segmentation and the audio. Steps:

1. **candidates** (chunk level): the recording is cut into windows of about
   ``window_chunks`` chunks (5 min); in each window complete-linkage
   agglomeration of the GE2E embeddings, cut at ``chunk_threshold``, gives
   clusters that rarely mix two people but often split one. A window is the
   same size in a 3-minute and a 2-hour recording, so this step behaves the same
   at any length, and its cost grows linearly;
2. **speaker level** (``speaker_stage``): each candidate's pooled clean speech
   (``clean_speech``; at most ``speech_cap`` seconds) is embedded once with
   ECAPA-TDNN (``ecapa``); candidates are merged, confirmed or dropped on those
   embeddings and absolute amounts of speech, within the caller's bounds;
3. **more speakers** when ``num_speakers``/``min_speakers`` ask for more than
   the groups give, cheapest first: speakers that pyannote's cannot-link rule
   forces (more local speakers at once than speakers); else candidates are taken
   back out of merges (the least typical first); else the least typical chunk
   embedding of the largest speaker starts a new one, until the count is reached;
4. **assignment**: every chunk embedding goes to a final speaker (candidates keep
   their speaker; the rest by GE2E centroid), under pyannote's rule that the
   local speakers of one chunk are different people (constrained assignment).

An experimental candidate rule, off by default (``track_iou`` > 0): candidates are
the segmentation's local-speaker tracks (``track_candidates``), split where the GE2E
windows disagree unless ``track_split`` is False; measured with
``bench/clustering_sweep.py`` and not adopted (docs/diarization-experiments.md).

The centroids returned to pyannote (and kept per output speaker as the voice
embedding of the job) are the ECAPA embeddings of the final speakers. Experiments
and figures behind these choices: docs/diarization-experiments.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from pyannote.audio.pipelines.clustering import BaseClustering
from pyannote.core import SlidingWindowFeature
from scipy.cluster.hierarchy import fcluster, linkage

from diarq.worker.diarization.clean_speech import clean_speech, pooled_audio
from diarq.worker.diarization.speaker_stage import StageParams, decide_speakers, undo_merge

CHUNK_THRESHOLD = 0.37
WINDOW_CHUNKS = 240  # 5 min at the pipeline's 1.25 s chunk hop
SPEECH_CAP = 10.0  # seconds of clean speech embedded per candidate
EMBED_MIN_SPEECH = 1.0  # candidates with less get no speaker embedding
MIN_EMBED_AUDIO = 0.5  # seconds of pooled audio an embedding needs (ECAPA: NaN on none)
# a candidate keeps its speaker in the final assignment unless cannot-link forbids
KEEP_BONUS = 2.0
PROGRESS_SECONDS = 30.0  # audio per speaker-embedding call when progress is reported

Embedder = Callable[[list[np.ndarray]], np.ndarray]


class SpeakerClustering(BaseClustering):
    """Chunk-level candidates + speaker-level stage (module docstring)."""

    expects_num_clusters = False

    def __init__(self, speaker_embedding: Embedder | None = None, metric: str = "cosine",
                 chunk_threshold: float = CHUNK_THRESHOLD, window_chunks: int = WINDOW_CHUNKS,
                 speech_cap: float = SPEECH_CAP, embed_min_speech: float = EMBED_MIN_SPEECH,
                 stage: StageParams | None = None, sample_rate: int = 16000,
                 speaker_dimension: int = 192, track_iou: float = 0.0,
                 track_split: bool = True) -> None:
        super().__init__(metric=metric, constrained_assignment=True)
        self.speaker_embedding = speaker_embedding
        self.chunk_threshold = chunk_threshold
        self.window_chunks = window_chunks
        self.speech_cap = speech_cap
        self.embed_min_speech = embed_min_speech
        self.stage = stage or StageParams()
        self.sample_rate = sample_rate
        self.speaker_dimension = speaker_dimension
        self.track_iou = track_iou
        self.track_split = track_split
        # set by the pipeline for one run: called as progress(total=, completed=) in
        # seconds of audio while the speaker-level model embeds
        self.progress: Callable[..., Any] | None = None

    def describe(self) -> str:
        s = self.stage
        return (f"GE2E complete linkage {self.chunk_threshold} per {self.window_chunks}-chunk "
                f"window, then ECAPA speaker level (merge >= {s.merge_similarity}, speakers "
                f">= {s.min_speech:g} s of clean speech, < {s.small_speech:g} s only if "
                f"< {s.small_similarity} to all others)")

    def __call__(self, embeddings: np.ndarray, segmentations: SlidingWindowFeature | None = None,
                 num_clusters: int | None = None, min_clusters: int | None = None,
                 max_clusters: int | None = None, file: Any = None, **kwargs: Any
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """pyannote's clustering step (``BaseClustering.__call__`` contract); ``file`` must
        carry the waveform (pyannote passes it)."""
        assert segmentations is not None
        num_chunks, local, _ = embeddings.shape
        train, chunk_idx, speaker_idx = self.filter_embeddings(embeddings, segmentations)
        min_k = max(1, num_clusters or min_clusters or 1)
        max_k = num_clusters or max_clusters or None
        waveform = _waveform(file)
        if train.shape[0] == 0:
            hard = np.zeros((num_chunks, local), dtype=np.int8)
            return hard, np.ones((num_chunks, local, 1)), np.zeros((1, self.speaker_dimension))
        x = train / np.linalg.norm(train, axis=1, keepdims=True)

        candidates = window_candidates(x, chunk_idx, num_chunks, self.chunk_threshold,
                                       self.window_chunks)
        if self.track_iou > 0:
            tracks = track_candidates(segmentations, chunk_idx, speaker_idx, self.track_iou)
            if self.track_split:  # a track that GE2E splits is two candidates
                tracks = tracks * (int(candidates.max()) + 1) + candidates
            candidates = np.unique(tracks, return_inverse=True)[1].astype(np.int64)
        grid = np.full((num_chunks, local), -1, dtype=np.int64)
        grid[chunk_idx, speaker_idx] = candidates
        clean = clean_speech(segmentations, grid)
        num_cand = int(candidates.max()) + 1
        speech = clean.seconds(num_cand)
        pooled = {int(c): pooled_audio(waveform, self.sample_rate, clean, int(c),
                                       self.speech_cap)
                  for c in np.flatnonzero(speech >= self.embed_min_speech)}
        # clean speech made only of runs too short to pool gives no audio to embed
        embedded = np.array([c for c, w in pooled.items()
                             if len(w) >= MIN_EMBED_AUDIO * self.sample_rate], dtype=np.int64)
        cand_emb = self._embed([pooled[int(c)] for c in embedded])
        speakers, _ = decide_speakers(cand_emb, speech[embedded], self.stage,
                                      min_speakers=min_k, max_speakers=max_k)
        active = np.sum(np.nan_to_num(segmentations.data), axis=1) > 0  # (chunks, local)
        hard, soft, voice = self._assign_speakers(embeddings, chunk_idx, speaker_idx, train,
                                                  candidates, embedded, speakers, cand_emb,
                                                  speech)
        if len(voice) < min_k:
            # more speakers asked for than found: first those the segmentation forces
            # (more local speakers at once than speakers left), which costs the least
            forced = _forced_speakers(soft, min_k - len(voice), active, self.constrained_argmax)
            if forced is not None:
                hard, soft = forced
                voice += [None] * (min_k - len(voice))
            else:  # then merged candidates apart again, then chunk embeddings split
                while len(speakers) < min_k and undo_merge(speakers, cand_emb @ cand_emb.T):
                    pass
                hard, soft, voice = self._assign_speakers(
                    embeddings, chunk_idx, speaker_idx, train, candidates, embedded, speakers,
                    cand_emb, speech, min_k, x)
        return hard, soft, self._voices(voice, waveform, segmentations, hard)

    def _assign_speakers(self, embeddings: np.ndarray, chunk_idx: np.ndarray,
                         speaker_idx: np.ndarray, train: np.ndarray, candidates: np.ndarray,
                         embedded: np.ndarray, speakers: list[list[int]], cand_emb: np.ndarray,
                         speech: np.ndarray, min_k: int = 1, x: np.ndarray | None = None
                         ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray | None]]:
        """Final assignment for these speakers (lists of embedded candidates); with ``x``
        given, the largest speakers are split until there are ``min_k``."""
        label = np.full(int(candidates.max()) + 1, -1, dtype=np.int64)
        for k, members in enumerate(speakers):
            label[embedded[members]] = k
        train_speaker = label[candidates]
        voice: list[np.ndarray | None] = [
            _weighted_mean(cand_emb[m], speech[embedded[m]]) for m in speakers]
        if not speakers:
            train_speaker[:] = 0
            voice = [None]
        while x is not None and len(voice) < min_k:
            if not _split_largest(x, train_speaker):
                break
            voice.append(None)
        hard, soft, _ = _assign(embeddings, chunk_idx, speaker_idx, train, train_speaker,
                                len(voice), self.constrained_argmax)
        return hard, soft, voice

    def _embed(self, waves: list[np.ndarray]) -> np.ndarray:
        if not waves:
            return np.zeros((0, self.speaker_dimension), dtype=np.float32)
        if self.speaker_embedding is None:
            raise RuntimeError("SpeakerClustering needs a speaker embedding model")
        if self.progress is None:
            return np.asarray(self.speaker_embedding(waves), dtype=np.float32)
        # in parts of about PROGRESS_SECONDS of audio, so that progress moves (ONNX Runtime
        # embeds one waveform at a time anyway; PyTorch's batches hold at most a part)
        total = sum(len(w) for w in waves) / self.sample_rate
        self.progress(total=total, completed=0.0)
        parts, done, start = [], 0.0, 0
        while start < len(waves):
            stop, seconds = start, 0.0
            while stop < len(waves) and (stop == start or seconds < PROGRESS_SECONDS):
                seconds += len(waves[stop]) / self.sample_rate
                stop += 1
            parts.append(np.asarray(self.speaker_embedding(waves[start:stop]),
                                    dtype=np.float32))
            done += seconds
            self.progress(total=total, completed=done)
            start = stop
        return np.concatenate(parts, axis=0)

    def _voices(self, voice: list[np.ndarray | None], waveform: np.ndarray,
                segmentations: SlidingWindowFeature, hard: np.ndarray) -> np.ndarray:
        """ECAPA embedding per final speaker; speakers made by a split (no candidate
        embedding) are embedded from their final clean speech."""
        missing = [k for k, v in enumerate(voice) if v is None]
        if missing:
            clean = clean_speech(segmentations, hard.astype(np.int64))
            waves = [pooled_audio(waveform, self.sample_rate, clean, k, self.speech_cap)
                     for k in missing]
            # a speaker heard only over others (a forced one) has no clean speech
            waves = [w if len(w) >= 0.1 * self.sample_rate else
                     _active_audio(waveform, self.sample_rate, segmentations, hard, k,
                                   self.speech_cap) for w, k in zip(waves, missing, strict=True)]
            have = [i for i, w in enumerate(waves) if len(w) >= 0.1 * self.sample_rate]
            emb = self._embed([waves[i] for i in have]) if have else None
            for j, i in enumerate(have):
                voice[missing[i]] = emb[j]  # type: ignore[index]
        dim = self.speaker_dimension
        return np.vstack([v if v is not None else np.zeros(dim) for v in voice])


def _active_audio(waveform: np.ndarray, sample_rate: int, segmentations: SlidingWindowFeature,
                  hard: np.ndarray, k: int, cap: float) -> np.ndarray:
    """Up to ``cap`` seconds of the frames where speaker k is active, overlap or not."""
    window = segmentations.sliding_window
    data = np.nan_to_num(np.asarray(segmentations.data)) > 0.5
    res = window.duration / data.shape[1]
    pieces, total = [], 0.0
    for c, s in zip(*np.nonzero(hard == k), strict=True):
        frames = np.flatnonzero(data[c, :, s])
        if len(frames) == 0:
            continue
        a = int((window.start + c * window.step + frames[0] * res) * sample_rate)
        b = int((window.start + c * window.step + (frames[-1] + 1) * res) * sample_rate)
        pieces.append(waveform[a:b])
        total += (b - a) / sample_rate
        if total >= cap:
            break
    return np.concatenate(pieces).astype(np.float32) if pieces else np.zeros(0, np.float32)


def _waveform(file: Any) -> np.ndarray:
    if file is None or "waveform" not in file:
        raise ValueError("SpeakerClustering needs the file's waveform")
    wav = file["waveform"]
    wav = wav.numpy() if hasattr(wav, "numpy") else np.asarray(wav)
    return np.asarray(wav, dtype=np.float32).reshape(-1) if wav.ndim == 1 or wav.shape[0] == 1 \
        else np.asarray(wav, dtype=np.float32).mean(axis=0)


def window_candidates(x: np.ndarray, chunk_idx: np.ndarray, num_chunks: int, threshold: float,
                      window_chunks: int) -> np.ndarray:
    """Candidate label of every embedding: complete linkage per window of chunks, cut
    at ``threshold``; labels unique across windows."""
    num_windows = max(1, int(round(num_chunks / window_chunks)))
    edges = np.linspace(0, num_chunks, num_windows + 1)
    window = np.searchsorted(edges, chunk_idx, side="right") - 1
    out = np.zeros(len(x), dtype=np.int64)
    nxt = 0
    for w in range(num_windows):
        idx = np.flatnonzero(window == w)
        if len(idx) == 0:
            continue
        if len(idx) == 1:
            labels = np.zeros(1, dtype=np.int64)
        else:
            labels = fcluster(linkage(x[idx], method="complete", metric="cosine"), threshold,
                              criterion="distance") - 1
        out[idx] = labels + nxt
        nxt += int(labels.max()) + 1
    return np.unique(out, return_inverse=True)[1].astype(np.int64)


def track_candidates(segmentations: SlidingWindowFeature, chunk_idx: np.ndarray,
                     speaker_idx: np.ndarray, min_iou: float) -> np.ndarray:
    """Candidate label of every embedding: local speakers of consecutive chunks are one
    track when their activity on the frames both chunks cover agrees (mutual best
    match, intersection over union >= ``min_iou``); a track is one person's stretch of
    talk as the segmentation model sees it."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    data = np.nan_to_num(np.asarray(segmentations.data)) > 0.5  # (chunks, frames, local)
    num_chunks, num_frames, local = data.shape
    window = segmentations.sliding_window
    shift = int(round(window.step / (window.duration / num_frames)))
    nodes = num_chunks * local
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    if num_chunks > 1 and shift < num_frames:
        a = data[:-1, shift:, :].astype(np.float32)
        b = data[1:, :num_frames - shift, :].astype(np.float32)
        inter = np.einsum("cfi,cfj->cij", a, b)
        union = a.sum(1)[:, :, None] + b.sum(1)[:, None, :] - inter
        iou = inter / np.maximum(union, 1.0)
        best_j = iou.argmax(axis=2)  # (chunks-1, local)
        best_i = iou.argmax(axis=1)
        c, i = np.nonzero(iou.max(axis=2) >= min_iou)
        j = best_j[c, i]
        mutual = best_i[c, j] == i
        rows.append(c[mutual] * local + i[mutual])
        cols.append((c[mutual] + 1) * local + j[mutual])
    r = np.concatenate(rows) if rows else np.zeros(0, np.int64)
    q = np.concatenate(cols) if cols else np.zeros(0, np.int64)
    graph = coo_matrix((np.ones(len(r)), (r, q)), shape=(nodes, nodes))
    _, track = connected_components(graph, directed=False)
    labels = track[chunk_idx * local + speaker_idx]
    return np.unique(labels, return_inverse=True)[1].astype(np.int64)


def _weighted_mean(v: np.ndarray, w: np.ndarray) -> np.ndarray:
    mean = (v * w[:, None]).sum(axis=0)
    return mean / max(float(np.linalg.norm(mean)), 1e-8)


def _forced_speakers(soft: np.ndarray, extra: int, active: np.ndarray,
                     constrained_argmax: Callable[[np.ndarray], np.ndarray]
                     ) -> tuple[np.ndarray, np.ndarray] | None:
    """``extra`` more speakers that get only what pyannote's cannot-link rule forces on
    them (a chunk with more active local speakers than speakers left puts the rest on
    an extra one); None unless every extra speaker gets an active local speaker."""
    below = float(np.nanmin(soft)) - 1.0
    padded = np.concatenate([soft, np.full(soft.shape[:2] + (extra,), below)], axis=2)
    padded[~active] = below - 1.0  # inactive local speakers never decide
    hard = constrained_argmax(padded)
    used = set(hard[active].tolist())
    if not all(k in used for k in range(soft.shape[2], soft.shape[2] + extra)):
        return None
    return hard, padded


def _split_largest(x: np.ndarray, train_speaker: np.ndarray) -> bool:
    """A new speaker from the speaker with the most embeddings: its embedding least like
    the speaker's centroid (a few seconds of speech move, so a count asked for that the
    voices do not show costs little); False when no speaker has two embeddings."""
    labels = train_speaker[train_speaker >= 0]
    if len(labels) == 0:
        return False
    sizes = np.bincount(labels)
    k = int(np.argmax(sizes))
    if sizes[k] < 2:
        return False
    idx = np.flatnonzero(train_speaker == k)
    centroid = x[idx].mean(axis=0)
    train_speaker[idx[int(np.argmin(x[idx] @ centroid))]] = int(train_speaker.max()) + 1
    return True


def _assign(embeddings: np.ndarray, chunk_idx: np.ndarray, speaker_idx: np.ndarray,
            train: np.ndarray, train_speaker: np.ndarray, num_speakers: int,
            constrained_argmax: Callable[[np.ndarray], np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hard/soft clusters of every (chunk, local speaker): similarity to the speakers'
    GE2E centroids, plus KEEP_BONUS for the speaker a candidate was given."""
    num_chunks, local, dim = embeddings.shape
    x = train / np.linalg.norm(train, axis=1, keepdims=True)
    centroids = np.zeros((num_speakers, dim))
    for k in range(num_speakers):
        members = x[train_speaker == k]
        if len(members):
            centroids[k] = members.mean(axis=0)
    norms = np.linalg.norm(centroids, axis=1, keepdims=True)
    centroids = centroids / np.where(norms > 0, norms, 1.0)
    flat = embeddings.reshape(-1, dim)
    flat = flat / np.linalg.norm(flat, axis=1, keepdims=True)
    soft = (1.0 + flat @ centroids.T).reshape(num_chunks, local, num_speakers)
    kept = train_speaker >= 0
    soft[chunk_idx[kept], speaker_idx[kept], train_speaker[kept]] += KEEP_BONUS
    hard = constrained_argmax(soft)
    return hard, soft, centroids
