"""Overlapping vs exclusive turns, clean speech per speaker, and word assignment from
exclusive turns."""

from __future__ import annotations

from diarq.shared.result import Segment, Turn, Word
from diarq.worker.assign import assign_all
from diarq.worker.turns import clean_spans, exclusive_from_overlapping


def T(start, end, speaker):  # noqa: N802 - short builder for readable tables
    return Turn(start=start, end=end, speaker=speaker)


def _spans(turns):
    return [(t.start, t.end, t.speaker) for t in turns]


def test_exclusive_gives_the_interjection_inside_a_long_turn():
    turns = [T(0, 10, "A"), T(4, 5, "B"), T(9, 12, "B")]
    assert _spans(exclusive_from_overlapping(turns)) == [
        (0, 4, "A"), (4, 5, "B"), (5, 9, "A"), (9, 12, "B")]


def test_exclusive_never_overlaps_and_keeps_gaps():
    turns = [T(0, 2, "A"), T(1, 3, "B"), T(2.5, 4, "C"), T(6, 7, "A")]
    out = exclusive_from_overlapping(turns)
    assert all(a.end <= b.start for a, b in zip(out, out[1:], strict=False))
    assert _spans(out) == [(0, 1, "A"), (1, 2.5, "B"), (2.5, 4, "C"), (6, 7, "A")]


def test_clean_spans_leave_out_overlapped_speech():
    turns = [T(0, 4, "A"), T(3, 6, "B"), T(6, 8, "B"), T(10, 11, "A")]
    assert clean_spans(turns) == {"A": [(0, 3), (10, 11)], "B": [(4, 8)]}


def test_assign_all_decides_overlapped_words_from_exclusive_turns():
    # B's short turn lies inside A's; the overlapping rule gives overlapped words to the
    # turn that started last (B), the exclusive turns say A dominates until 4.5 s
    words = [Word(word=w, start=s, end=e) for w, s, e in
             [("one", 1.0, 1.5), ("two", 4.1, 4.4), ("three", 4.6, 4.9), ("four", 6, 6.5)]]
    seg = Segment(start=1, end=6.5, speaker=None, text="one two three four", words=words)
    turns = [T(0, 10, "A"), T(4, 5, "B")]
    exclusive = [T(0, 4.5, "A"), T(4.5, 5, "B"), T(5, 10, "A")]
    by_overlap = assign_all([seg], turns, exclusive=exclusive, words_from="overlapping",
                            split=False)
    by_exclusive = assign_all([seg], turns, exclusive=exclusive, split=False)
    assert [w.speaker for w in by_overlap.segments[0].words] == [
        "SPEAKER_00", "SPEAKER_01", "SPEAKER_01", "SPEAKER_00"]
    assert [w.speaker for w in by_exclusive.segments[0].words] == [
        "SPEAKER_00", "SPEAKER_00", "SPEAKER_01", "SPEAKER_00"]
    # both turn lists come back renamed alike
    assert {t.speaker for t in by_exclusive.exclusive} == {"SPEAKER_00", "SPEAKER_01"}
    assert by_exclusive.turns[0].speaker == "SPEAKER_00"
    assert by_exclusive.exclusive[1].speaker == "SPEAKER_01"
