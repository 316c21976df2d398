"""Speaker clustering for the offline pipeline (GE2E embeddings of local speakers).

pyannote's SpeakerDiarization embeds every (5 s chunk, local speaker) pair; the
clustering groups those embeddings into global speakers. pyannote's default
agglomerative clustering found the right number of speakers on 4 of 13
evaluation recordings with GE2E embeddings (bench/quality.py).

What this does instead (two parameters, both relative to the recording):

1. average-linkage agglomerative clustering on cosine distance, cut at a fixed
   distance threshold;
2. a speaker is a cluster holding at least ``min_cluster_fraction`` of the
   embeddings (a person who talks for a few percent of the recording); smaller
   clusters are outliers (noise, overlap, a bad embedding) and do not count;
   their embeddings join the nearest speaker's centroid.

With the number of speakers given: fewer than found -> the tree cut nearest the
threshold holding exactly that many speakers of that minimum size (a plain "cut
into k clusters" spends slots on outlier singletons); more than found -> the
speakers found are kept and each extra one is seeded at the embedding least
like all speakers so far (see ``_grow``).

Measured with bench/quality.py on ../shared/eval (13 recordings with RTTM, offline
profile, automatic count; DER accumulated, 0.25 s collar each side):

  pyannote AgglomerativeClustering (its defaults)        4/13 right, 25.7 %
  average linkage + threshold only (0.2 .. 0.4)          4-7/13, 19-27 %
  spectral clustering, eigengap count (NME-SC) [a]       0/13 (over-counts), 60 %
  silhouette-chosen k (AHC or k-means) [a]               2-3/13, 19-41 %
  this module (threshold 0.25, min share 5 %)            8/13, 17.7 %
  ... with the true count given, deeper tree cut          26.0 %
  ... with the true count given, seeded growth (_grow)   19.4 %

[a] measured with a 0.5 s chunk hop and overlapped frames kept.
Leave-one-out choice of (threshold, min share) over a 5x5 grid picked the same
threshold for every held-out file (8/13, 17.7 %); 3-8 % shares are a plateau.

Very long recordings: at most ``max_train`` embeddings (evenly spaced in time)
are clustered, bounding memory (the linkage matrix is quadratic); every
embedding is then assigned to the nearest centroid by pyannote's base class.
"""

from __future__ import annotations

import numpy as np
from pyannote.audio.pipelines.clustering import BaseClustering
from scipy.cluster.hierarchy import fcluster, linkage

THRESHOLD = 0.25
MIN_CLUSTER_FRACTION = 0.05
MAX_TRAIN = 4000


class SpeakerCountClustering(BaseClustering):
    """Agglomerative clustering with a minimum speaker share (module docstring)."""

    expects_num_clusters = False

    def __init__(self, metric: str = "cosine", threshold: float = THRESHOLD,
                 min_cluster_fraction: float = MIN_CLUSTER_FRACTION,
                 max_train: int = MAX_TRAIN) -> None:
        super().__init__(metric=metric, constrained_assignment=True)
        self.threshold_value = threshold
        self.min_cluster_fraction = min_cluster_fraction
        self.max_train = max_train

    def describe(self) -> str:
        return (f"agglomerative (average linkage, cosine threshold {self.threshold_value}, "
                f"speakers hold >= {self.min_cluster_fraction:.0%} of the embeddings)")

    def cluster(self, embeddings: np.ndarray, min_clusters: int, max_clusters: int,
                num_clusters: int | None = None) -> np.ndarray:
        n = embeddings.shape[0]
        x = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        if n < 2 or max_clusters < 2:
            return np.zeros(n, dtype=np.int64)
        train = np.arange(n)
        if n > self.max_train:
            train = np.linspace(0, n - 1, self.max_train).round().astype(int)
        tree = linkage(x[train], method="average", metric="cosine")
        min_size = max(2, int(np.ceil(self.min_cluster_fraction * len(train))))

        threshold_labels = fcluster(tree, self.threshold_value, criterion="distance") - 1
        found = int((np.bincount(threshold_labels) >= min_size).sum())
        target = num_clusters if num_clusters is not None else found
        target = min(max(target, min_clusters), max_clusters, len(train))
        if target == found:
            return _assign(x, x[train], threshold_labels, min_size)
        if target > found:
            return _grow(x, x[train], threshold_labels, min_size, target)
        labels = _cut_with_speakers(tree, target, min_size, self.threshold_value)
        return _assign(x, x[train], labels, min_size, keep=target)


def _grow(x: np.ndarray, x_train: np.ndarray, labels: np.ndarray, min_size: int,
          target: int) -> np.ndarray:
    """More speakers than found (a count the user gave): keep the speakers found and
    seed each extra one at the embedding least like every speaker so far.

    The speakers the clustering missed are usually people who barely talk; splitting
    a main speaker in two to make room for them (what a deeper tree cut does) cost
    far more (DER with the true count 26 % -> 18 % on bench/quality.py).
    """
    sizes = np.bincount(labels)
    speakers = np.flatnonzero(sizes >= min_size)
    if len(speakers) == 0:
        speakers = np.array([int(np.argmax(sizes))])
    centroids = [x_train[labels == s].mean(axis=0) for s in speakers]
    centroids = [c / np.linalg.norm(c) for c in centroids]
    while len(centroids) < target:
        closest = np.max(x_train @ np.stack(centroids).T, axis=1)
        centroids.append(x_train[int(np.argmin(closest))])
    return np.argmax(x @ np.stack(centroids).T, axis=1).astype(np.int64)


def _cut_with_speakers(tree: np.ndarray, k: int, min_size: int, threshold: float) -> np.ndarray:
    """A cut of ``tree`` with exactly k clusters of >= min_size members, the one whose
    height is nearest the threshold (so a given count that agrees with the automatic
    one gives the same result); else the shallowest cut with more, or the cut into k."""
    n = tree.shape[0] + 1
    best: tuple[float, np.ndarray] | None = None
    first_above: np.ndarray | None = None
    # depth d = number of clusters; the cut sits just above merge n-1-d's height
    for depth in range(k, min(n, k + 200) + 1):
        labels = fcluster(tree, depth, criterion="maxclust") - 1
        big = int((np.bincount(labels) >= min_size).sum())
        height = float(tree[n - 1 - depth, 2]) if depth < n else 0.0
        if big == k:
            gap = abs(height - threshold)
            if best is None or gap < best[0]:
                best = (gap, labels)
        elif big > k and first_above is None:
            first_above = labels
        if best is not None and height < threshold and big != k:
            break
    if best is not None:
        return best[1]
    if first_above is not None:
        return first_above
    return fcluster(tree, k, criterion="maxclust") - 1


def _assign(x: np.ndarray, x_train: np.ndarray, labels: np.ndarray, min_size: int,
            keep: int | None = None) -> np.ndarray:
    """Labels of every embedding: nearest centroid among the speaker clusters (the
    ``keep`` largest, or those with >= min_size members)."""
    sizes = np.bincount(labels)
    order = np.argsort(-sizes, kind="stable")
    speakers = order[:keep] if keep is not None else order[sizes[order] >= min_size]
    if len(speakers) == 0:
        speakers = order[:1]
    centroids = np.stack([x_train[labels == s].mean(axis=0) for s in speakers])
    centroids /= np.linalg.norm(centroids, axis=1, keepdims=True)
    return np.argmax(x @ centroids.T, axis=1).astype(np.int64)
