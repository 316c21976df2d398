"""Speaker-count clustering on synthetic embeddings (directions on the unit sphere)."""

from __future__ import annotations

import numpy as np

from worker.diarization.clustering import SpeakerCountClustering


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
    assert len(set(clustering.cluster(x, 4, 4, num_clusters=4).tolist())) == 4


def test_bounds_and_single_speaker() -> None:
    x, _ = _speakers([80])
    assert set(SpeakerCountClustering().cluster(x, 1, 20).tolist()) == {0}
    x, _ = _speakers([40, 40, 40, 40])
    assert len(set(SpeakerCountClustering().cluster(x, 1, 2).tolist())) == 2
    x, _ = _speakers([100])
    assert len(set(SpeakerCountClustering().cluster(x, 2, 5).tolist())) == 2


def test_long_recordings_cluster_a_bounded_sample() -> None:
    x, truth = _speakers([3000, 2500])
    labels = SpeakerCountClustering(max_train=500).cluster(x, 1, 20)
    assert _agrees(labels, truth)
