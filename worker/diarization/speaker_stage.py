"""Speaker-level decisions on candidate speakers (one ECAPA embedding each).

The chunk-level clustering over-splits on purpose; its clusters are *candidates*.
Each candidate with enough clean speech gets one embedding of its pooled clean
speech from a strong speaker model. Here those candidates become speakers:

1. average-linkage agglomeration of the candidates on the cosine similarity of
   their embeddings, stopped below ``merge_similarity`` (on the eval meetings
   same-speaker candidates score about 0.45-0.9, different people mostly below
   0.4, impure candidates in between);
2. a group with less than ``small_speech`` seconds of clean speech is kept only if
   it is far from every larger speaker (similarity below ``small_similarity``;
   with no larger speaker, below ``short_pair_similarity`` from the other short
   groups: two short, noisy embeddings need more agreement), otherwise it joins
   the nearest; below ``min_speech`` seconds a group is no
   speaker at all (its speech is given to the nearest speaker later). Both are
   absolute durations, so a person who talks for 20 s is a speaker in a
   3-minute call and in a 2-hour meeting alike;
3. the count is then brought inside the caller's bounds: too many -> the
   smallest short speaker, else the most similar pair, is merged; too few -> the
   dropped groups come back (most speech first); the caller adds more
   (``undo_merge`` takes candidates back out of a merge).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage


@dataclass(frozen=True)
class StageParams:
    merge_similarity: float = 0.45
    small_speech: float = 8.0
    small_similarity: float = 0.45  # a short group joins a larger speaker from here
    short_pair_similarity: float = 0.6  # ... another short group, when none is larger
    min_speech: float = 1.0


class Groups:
    """Candidates grouped into speakers; similarity of two groups = mean similarity of
    their members' pairs (average linkage), kept as sums so a merge costs O(groups)."""

    def __init__(self, similarity: np.ndarray, speech: np.ndarray) -> None:
        self.sums = np.array(similarity, dtype=float)
        self.sizes = np.ones(len(speech))
        self.speech = np.asarray(speech, dtype=float).copy()
        self.members: list[list[int]] = [[i] for i in range(len(speech))]

    def __len__(self) -> int:
        return len(self.members)

    def similarities(self) -> np.ndarray:
        """(groups, groups) average-linkage similarities, -inf on the diagonal."""
        m = self.sums / np.outer(self.sizes, self.sizes)
        np.fill_diagonal(m, -np.inf)
        return m

    def merge(self, a: int, b: int) -> None:
        a, b = min(a, b), max(a, b)
        self.sums[a, :] += self.sums[b, :]
        self.sums[:, a] += self.sums[:, b]
        self.sizes[a] += self.sizes[b]
        self.speech[a] += self.speech[b]
        self.members[a] = self.members[a] + self.members[b]
        self.remove(b)

    def remove(self, g: int) -> list[int]:
        self.sums = np.delete(np.delete(self.sums, g, axis=0), g, axis=1)
        self.sizes = np.delete(self.sizes, g)
        self.speech = np.delete(self.speech, g)
        return self.members.pop(g)

    def agglomerate(self, stop: float) -> None:
        """Merge the most similar pair while its similarity >= stop (scipy's average
        linkage, the same merges in O(n^2) time)."""
        n = len(self.members)
        if any(len(m) > 1 for m in self.members):
            raise ValueError("agglomerate starts from single candidates")
        if n < 2:
            return
        dist = np.clip(1.0 - self.sums[np.triu_indices(n, k=1)], 0.0, None)
        labels = fcluster(linkage(dist, method="average"), 1.0 - stop, criterion="distance") - 1
        member = np.zeros((int(labels.max()) + 1, n))
        member[labels, np.arange(n)] = 1.0
        self.sums = member @ self.sums @ member.T
        self.sizes = member.sum(axis=1)
        self.speech = member @ self.speech
        self.members = [np.flatnonzero(row).tolist() for row in member]


def decide_speakers(embeddings: np.ndarray, speech: np.ndarray, params: StageParams,
                    min_speakers: int = 1, max_speakers: int | None = None
                    ) -> tuple[list[list[int]], list[list[int]]]:
    """Speakers as lists of candidate indices, and the dropped groups (no speaker;
    their speech goes to the nearest speaker). ``embeddings``: (n, d) L2-normalised,
    ``speech``: clean seconds per candidate. The number of speakers respects the
    bounds when there are enough groups; the caller splits when there are too few."""
    n = len(speech)
    if n == 0:
        return [], []
    groups = Groups(embeddings @ embeddings.T, np.asarray(speech, dtype=float))
    groups.agglomerate(params.merge_similarity)
    _absorb_small(groups, params)
    dropped = [g for g in range(len(groups)) if groups.speech[g] < params.min_speech]
    dropped_members = [groups.members[g] for g in dropped]
    for g in sorted(dropped, reverse=True):
        groups.remove(g)
    # bounds
    if max_speakers is not None:
        while len(groups) > max(max_speakers, 1):
            _merge_one(groups, params)
    dropped_members.sort(key=lambda m: -float(np.sum(np.asarray(speech)[m])))
    while len(groups) < min_speakers and dropped_members:
        groups.members.append(dropped_members.pop(0))
    return groups.members, dropped_members


def undo_merge(members: list[list[int]], sim: np.ndarray) -> bool:
    """Take back one merge: of all candidates that share a speaker with others, the one
    least like the rest of its speaker becomes a speaker of its own (one candidate's
    speech moves, not half a speaker's); False when every speaker is one candidate."""
    best: tuple[float, int, int] | None = None
    for g, m in enumerate(members):
        if len(m) < 2:
            continue
        sub = sim[np.ix_(m, m)]
        rest = (sub.sum(axis=1) - np.diag(sub)) / (len(m) - 1)
        i = int(np.argmin(rest))
        if best is None or rest[i] < best[0]:
            best = (float(rest[i]), g, m[i])
    if best is None:
        return False
    _, g, c = best
    members[g] = [i for i in members[g] if i != c]
    members.append([c])
    return True


def _absorb_small(groups: Groups, params: StageParams) -> None:
    """Short groups close to a larger speaker (or, when none is larger, to another
    group) join it, the most similar pair first."""
    while len(groups) > 1:
        small = groups.speech < params.small_speech
        m = groups.similarities()
        stop = params.short_pair_similarity
        if (~small).any():
            m[:, small] = -np.inf  # a short group joins a larger one
            stop = params.small_similarity
        m[~small, :] = -np.inf  # ... and only short groups move
        g, h = np.unravel_index(np.argmax(m), m.shape)
        if m[g, h] < stop:
            return
        groups.merge(int(g), int(h))


def _merge_one(groups: Groups, params: StageParams) -> None:
    """One merge towards a smaller count: the shortest short speaker into its nearest,
    or else the most similar pair."""
    small = np.flatnonzero(groups.speech < params.small_speech)
    if len(small):
        g = int(small[np.argmin(groups.speech[small])])
        row = groups.similarities()[g]
        groups.merge(g, int(np.argmax(row)))
        return
    m = groups.similarities()
    a, b = np.unravel_index(np.argmax(m), m.shape)
    groups.merge(int(a), int(b))
