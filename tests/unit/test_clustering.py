"""Speaker-count clustering on synthetic embeddings (directions on the unit sphere)."""

from __future__ import annotations

import numpy as np

from diarq.worker.diarization.clustering import SpeakerCountClustering


def _speakers(sizes: list[int], spread: float = 0.15, dim: int = 64, seed: int = 0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(sizes), dim))
    x, y = [], []
    for k, n in enumerate(sizes):
        c = centres[k] / np.linalg.norm(centres[k])
        x.append(c + spread * rng.normal(size=(n, dim)) / np.sqrt(dim))
        y += [k] * n
    return np.vstack(x), np.array(y)


def _agrees(labels: np.ndarray, truth: np.ndarray) -> bool:
    """Same partition up to renaming."""
    pairs = set(zip(labels.tolist(), truth.tolist(), strict=True))
    return len(pairs) == len(set(labels.tolist())) == len(set(truth.tolist()))


def test_counts_speakers_and_ignores_outliers() -> None:
    x, truth = _speakers([60, 40, 30])
    rng = np.random.default_rng(1)
    outliers = rng.normal(size=(3, x.shape[1]))  # three stray embeddings
    labels = SpeakerCountClustering().cluster(np.vstack([x, outliers]), 1, 20)
    assert len(set(labels.tolist())) == 3
    assert _agrees(labels[: len(truth)], truth)


def test_given_count_is_honoured_and_matches_automatic_when_equal() -> None:
    x, truth = _speakers([50, 50, 20])
    clustering = SpeakerCountClustering()
    auto = clustering.cluster(x, 1, 20)
    given = clustering.cluster(x, 3, 3, num_clusters=3)
    assert _agrees(auto, truth) and _agrees(given, truth)
    assert len(set(clustering.cluster(x, 2, 2, num_clusters=2).tolist())) == 2
    # a fourth speaker the embeddings do not show is not carved out of the three
    assert _agrees(clustering.cluster(x, 4, 4, num_clusters=4), truth)


def _two_speaker_chunks(num_chunks: int = 20):  # type: ignore[no-untyped-def]
    """Chunks with local speaker 0 = A and 1 = B talking alone; in chunk 5 a third
    local speaker talks briefly over A (too little clean speech to be clustered)."""
    from pyannote.core import SlidingWindow, SlidingWindowFeature

    x, truth = _speakers([num_chunks, num_chunks], spread=0.3)
    frames = 100
    seg = np.zeros((num_chunks, frames, 3))
    seg[:, 0:40, 0] = 1
    seg[:, 50:90, 1] = 1
    seg[5, 30:45, 2] = 1
    emb = np.full((num_chunks, 3, x.shape[1]), np.nan)
    emb[:, 0] = x[truth == 0]
    emb[:, 1] = x[truth == 1]
    emb[5, 2] = x[truth == 0][0] + 0.05  # an overlapped voice sounds like the main one
    return emb, SlidingWindowFeature(seg, SlidingWindow(start=0.0, duration=5.0, step=1.25))


def test_extra_given_speaker_only_where_cannot_link_forces_it() -> None:
    emb, seg = _two_speaker_chunks()
    clustering = SpeakerCountClustering()
    auto, _, _ = clustering(emb, segmentations=seg)
    assert len(set(auto[:, :2].ravel().tolist())) == 2
    assert auto[5, 2] < 0  # no speaker left for the third voice
    given, _, centroids = clustering(emb, segmentations=seg, num_clusters=3)
    a, b = given[0, 0], given[0, 1]
    assert a != b and set(given[:, 0].tolist()) == {a} and set(given[:, 1].tolist()) == {b}
    # the third voice gets the extra speaker; nobody else does
    assert given[5, 2] not in (a, b) and given[5, 2] >= 0
    assert centroids.shape[0] == 3


def test_bounds_and_single_speaker() -> None:
    x, _ = _speakers([80])
    assert set(SpeakerCountClustering().cluster(x, 1, 20).tolist()) == {0}
    x, _ = _speakers([40, 40, 40, 40])
    assert len(set(SpeakerCountClustering().cluster(x, 1, 2).tolist())) == 2
    # a minimum the embeddings do not support adds no split of the one voice (extra
    # speakers come only from cannot-link, test_extra_given_speaker_...)
    x, _ = _speakers([100])
    assert set(SpeakerCountClustering().cluster(x, 2, 5).tolist()) == {0}


def test_long_recordings_cluster_a_bounded_sample() -> None:
    x, truth = _speakers([3000, 2500])
    labels = SpeakerCountClustering(max_train=500).cluster(x, 1, 20)
    assert _agrees(labels, truth)
