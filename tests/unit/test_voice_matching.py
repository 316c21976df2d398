"""Voice references: matching speakers to references (pure), and the clean speech a
speaker's vector is computed from."""

from __future__ import annotations

import numpy as np
import pytest

from diarq.shared.result import Turn
from diarq.worker.voices import match_references, pool_by_name, similarities, speaker_samples


def _vec(*xs: float) -> np.ndarray:
    return np.asarray(xs, dtype=np.float64)


def test_best_cosine_above_threshold_takes_the_name():
    speakers = {"S0": _vec(1, 0, 0), "S1": _vec(0, 1, 0)}
    refs = {"Anna": _vec(0.1, 1, 0), "Boris": _vec(0, 0, 1)}
    matches = match_references(speakers, refs, threshold=0.7)
    assert {s: m.name for s, m in matches.items()} == {"S1": "Anna"}
    assert matches["S1"].score == pytest.approx(1 / np.sqrt(1.01), abs=1e-4)


def test_one_reference_per_speaker_and_one_speaker_per_reference():
    # both speakers resemble Anna, S0 more (S1 is asked first): only S0 is Anna
    speakers = {"S1": _vec(0.8, 0.6, 0), "S0": _vec(1, 0.05, 0)}
    refs = {"Anna": _vec(1, 0, 0)}
    matches = match_references(speakers, refs, threshold=0.5)
    assert list(matches) == ["S0"] and matches["S0"].name == "Anna"


def _at(degrees: float) -> np.ndarray:
    r = np.radians(degrees)
    return _vec(np.cos(r), np.sin(r))


def test_best_pair_first_even_when_two_weaker_pairs_would_name_more():
    # Anna at 0 deg, Boris at 40 deg; S0 at 15 deg is Anna (0.97) but close to Boris too
    # (0.91); S1 at -30 deg resembles Anna (0.87) only. Best pair first: S0 is Anna, and
    # S1 stays unnamed. (The one-to-one assignment of highest total would name S0 Boris
    # and S1 Anna: two names, both doubtful.)
    speakers = {"S0": _at(15), "S1": _at(-30)}
    refs = {"Anna": _at(0), "Boris": _at(40)}
    cos = similarities(speakers, refs)
    assert cos["S0"]["Boris"] + cos["S1"]["Anna"] > cos["S0"]["Anna"] + 0.6
    matches = match_references(speakers, refs, threshold=0.6)
    assert {s: m.name for s, m in matches.items()} == {"S0": "Anna"}


def test_nothing_matches_under_the_threshold():
    speakers = {"S0": _vec(1, 0)}
    assert match_references(speakers, {"Anna": _vec(0.5, 0.5)}, threshold=0.8) == {}
    assert match_references({}, {"Anna": _vec(1, 0)}, threshold=0.0) == {}
    assert match_references(speakers, {}, threshold=0.0) == {}


def test_clips_with_one_name_are_pooled():
    pooled = pool_by_name([("Anna", _vec(1, 0)), ("Anna", _vec(0, 1)), ("Boris", _vec(2, 0))])
    assert set(pooled) == {"Anna", "Boris"}
    assert pooled["Anna"] == pytest.approx(_vec(1, 1) / np.sqrt(2))
    assert pooled["Boris"] == pytest.approx(_vec(1, 0))


def test_speaker_samples_take_clean_speech_only():
    sr = 16000
    audio = np.arange(10 * sr, dtype=np.float32)
    # A 0-4 s, B 3-6 s: clean A is 0-3 s, clean B 4-6 s; B's 0.2 s sliver at 8 s is
    # left out because B has longer clean stretches
    turns = [Turn(start=0, end=4, speaker="A"), Turn(start=3, end=6, speaker="B"),
             Turn(start=8, end=8.2, speaker="B")]
    samples = speaker_samples(audio, turns)
    assert len(samples["A"]) == 3 * sr and samples["A"][0] == 0
    assert len(samples["B"]) == 2 * sr and samples["B"][0] == 4 * sr


def test_speaker_samples_are_capped_at_the_longest_stretches():
    sr = 16000
    audio = np.zeros(100 * sr, dtype=np.float32)
    turns = [Turn(start=0, end=5, speaker="A"), Turn(start=10, end=40, speaker="A"),
             Turn(start=50, end=52, speaker="A")]
    samples = speaker_samples(audio, turns, max_seconds=32)
    # the 30 s stretch, then 2 s of the next longest (the 5 s one)
    assert len(samples["A"]) == 32 * sr
