"""Speaker clustering for the offline pipeline (GE2E embeddings of local speakers).

pyannote's SpeakerDiarization embeds every (5 s chunk, local speaker) pair; the
clustering groups those embeddings into global speakers. With GE2E embeddings
pyannote's default agglomerative clustering miscounts speakers often (4 of 13
evaluation recordings right). This module is the replacement; see
bench/quality.py and docs in the report for the figures behind the choices.
"""

from __future__ import annotations

import numpy as np
from pyannote.audio.pipelines.clustering import BaseClustering
from scipy.cluster.hierarchy import fcluster, linkage


class SpeakerCountClustering(BaseClustering):
    """Agglomerative clustering on cosine distance with a stopping threshold."""

    expects_num_clusters = False

    def __init__(self, metric: str = "cosine", threshold: float = 0.5,
                 method: str = "average", min_cluster_size: int = 3) -> None:
        super().__init__(metric=metric, constrained_assignment=True)
        self.threshold_value = threshold
        self.method_value = method
        self.min_cluster_size_value = min_cluster_size

    def describe(self) -> str:
        return (f"agglomerative ({self.method_value} linkage, cosine threshold "
                f"{self.threshold_value})")

    def cluster(self, embeddings: np.ndarray, min_clusters: int, max_clusters: int,
                num_clusters: int | None = None) -> np.ndarray:
        n = embeddings.shape[0]
        if n == 1:
            return np.zeros(1, dtype=np.int64)
        x = embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)
        z = linkage(x, method=self.method_value, metric="cosine")
        if num_clusters is not None:
            labels = fcluster(z, num_clusters, criterion="maxclust") - 1
        else:
            labels = fcluster(z, self.threshold_value, criterion="distance") - 1
            k = len(np.unique(labels))
            if k < min_clusters:
                labels = fcluster(z, min_clusters, criterion="maxclust") - 1
            elif k > max_clusters:
                labels = fcluster(z, max_clusters, criterion="maxclust") - 1
        return _relabel(labels)


def _relabel(labels: np.ndarray) -> np.ndarray:
    _, inverse = np.unique(labels, return_inverse=True)
    return inverse.astype(np.int64)
