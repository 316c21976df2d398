"""Where each cluster of local speakers talks alone: pooled clean speech per cluster.

pyannote's segmentation gives, per 5 s chunk, up to three local speakers; the
chunk-level clustering labels each (chunk, local speaker). A frame of the
recording is a cluster's *clean speech* when, in most of the chunks that cover
it, the only active local speaker belongs to that cluster (so overlapped speech
and frames the chunks disagree on are left out).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyannote.core import SlidingWindowFeature


@dataclass
class CleanSpeech:
    """Frames (on a grid of ``res`` seconds from ``origin``) where a cluster talks alone;
    a frame may belong to two clusters when the chunks covering it are split evenly."""

    frames: np.ndarray  # (m,) frame index
    clusters: np.ndarray  # (m,) cluster of that frame
    res: float
    origin: float

    def seconds(self, num_clusters: int) -> np.ndarray:
        """Seconds of clean speech of each cluster 0..num_clusters-1."""
        return np.bincount(self.clusters, minlength=num_clusters)[:num_clusters] * self.res

    def runs(self, cluster: int) -> list[tuple[int, int]]:
        """[start, end) frame runs of ``cluster``."""
        f = np.sort(self.frames[self.clusters == cluster])
        if len(f) == 0:
            return []
        breaks = np.flatnonzero(np.diff(f) > 1)
        starts = np.concatenate([[f[0]], f[breaks + 1]])
        ends = np.concatenate([f[breaks], [f[-1]]]) + 1
        return list(zip(starts.tolist(), ends.tolist(), strict=True))


def clean_speech(segmentations: SlidingWindowFeature, labels: np.ndarray) -> CleanSpeech:
    """Clean speech of every cluster.

    ``segmentations``: binarized (num_chunks, num_frames, local_speakers);
    ``labels``: (num_chunks, local_speakers) cluster of each local speaker (< 0: none).
    A frame is clean when at least half of the chunks covering it see exactly one
    local speaker there; it belongs to each cluster holding at least half of those
    chunks' votes.
    """
    data = np.nan_to_num(np.asarray(segmentations.data), nan=0.0) > 0.5
    num_chunks, num_frames, _ = data.shape
    window = segmentations.sliding_window
    res = window.duration / num_frames
    empty = CleanSpeech(np.zeros(0, np.int64), np.zeros(0, np.int64), res, float(window.start))
    if num_chunks == 0:
        return empty
    offsets = np.round(np.arange(num_chunks) * window.step / res).astype(np.int64)
    alone = data.sum(axis=2) == 1  # (chunks, frames)
    who = np.argmax(data, axis=2)  # the active local speaker where alone
    lab = np.where(alone, np.take_along_axis(labels, who, axis=1), -1).ravel()
    alone = alone.ravel()
    g = (offsets[:, None] + np.arange(num_frames)[None, :]).ravel()
    total = int(g.max()) + 1
    cover = np.bincount(g, minlength=total)
    solo = np.bincount(g[alone], minlength=total)  # chunks seeing one speaker alone
    keep = lab >= 0
    if not keep.any():
        return empty
    k = int(lab.max()) + 1
    codes, votes = np.unique(g[keep] * k + lab[keep], return_counts=True)
    frames, clusters = codes // k, codes % k
    ok = (solo[frames] * 2 >= cover[frames]) & (votes * 2 >= solo[frames])
    return CleanSpeech(frames[ok], clusters[ok], res, float(window.start))


def pooled_audio(waveform: np.ndarray, sample_rate: int, clean: CleanSpeech, cluster: int,
                 cap_seconds: float, min_run_seconds: float = 0.3) -> np.ndarray:
    """Up to ``cap_seconds`` of the cluster's clean speech, longest runs first (runs
    shorter than ``min_run_seconds`` are left out), concatenated in time order."""
    res = clean.res
    spans = [(s, e) for s, e in clean.runs(cluster) if (e - s) * res >= min_run_seconds]
    spans.sort(key=lambda r: r[0] - r[1])
    chosen, total = [], 0.0
    for s, e in spans:
        if total >= cap_seconds:
            break
        take = min(e - s, int(np.ceil((cap_seconds - total) / res)))
        chosen.append((s, s + take))
        total += take * res
    chosen.sort()
    pieces = []
    for s, e in chosen:
        a = int((clean.origin + s * res) * sample_rate)
        b = int((clean.origin + e * res) * sample_rate)
        pieces.append(waveform[a:b])
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    return np.concatenate(pieces).astype(np.float32, copy=False)
