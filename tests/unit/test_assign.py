"""Word/segment speaker assignment, splitting, relabelling, participants."""

from __future__ import annotations

import numpy as np

from diarq.shared.result import Segment, Turn, Word
from diarq.worker.assign import assign, speakers_for_spans, talk_times


def W(word, start, end):  # noqa: N802 - short builder for readable tables
    return Word(word=word, start=start, end=end)


def T(start, end, speaker):  # noqa: N802
    return Turn(start=start, end=end, speaker=speaker)


def test_max_overlap_wins_and_gap_words_take_nearest_turn():
    turns = [T(0, 2, "A"), T(1.8, 4, "B"), T(6, 8, "A")]
    starts = np.array([0.5, 1.7, 4.5, 5.8, 10.0])
    ends = np.array([1.0, 2.5, 5.0, 5.9, 11.0])
    # 1.7-2.5: A overlaps 0.3, B overlaps 0.7; 4.5-5.0 is nearer B (0.5) than A (1.0);
    # 5.8-5.9 nearer A; 10-11 after everything: last turn A
    assert speakers_for_spans(starts, ends, turns) == ["A", "B", "B", "A", "A"]


def test_overlap_is_summed_per_speaker():
    # B has two short turns covering more of the word than A's single turn
    turns = [T(0, 0.4, "A"), T(0.4, 0.7, "B"), T(0.7, 1.0, "B")]
    assert speakers_for_spans(np.array([0.0]), np.array([1.0]), turns) == ["B"]


def test_overlapped_speech_goes_to_the_interjection():
    # A's long turn spans B's short interjection: words inside both go to B,
    # words only in A's turn stay A's
    turns = [T(0, 10, "A"), T(4, 5, "B")]
    starts, ends = np.array([1.0, 4.2, 4.6, 6.0]), np.array([1.5, 4.5, 4.9, 6.5])
    assert speakers_for_spans(starts, ends, turns) == ["A", "B", "B", "A"]


def test_no_turns_gives_none():
    assert speakers_for_spans(np.array([0.0]), np.array([1.0]), []) == [None]


def test_segments_split_at_speaker_change_and_relabelled_by_first_appearance():
    seg = Segment(start=0, end=4, speaker=None, text=" Hi Bob. Hello Ann, welcome.",
                  words=[W("Hi", 0, 0.4), W("Bob.", 0.5, 1.0), W("Hello", 2.0, 2.4),
                         W("Ann,", 2.5, 2.9), W("welcome.", 3.0, 3.6)])
    # pyannote's cluster labels are not in time order: the first voice is SPEAKER_01
    turns = [T(0, 1.2, "SPEAKER_01"), T(1.9, 4, "SPEAKER_00")]
    segs, new_turns, speakers = assign([seg], turns, participants=["Anna", "Boris"])
    assert [(s.speaker, s.text, s.start, s.end) for s in segs] == [
        ("SPEAKER_00", "Hi Bob.", 0, 1.0),
        ("SPEAKER_01", "Hello Ann, welcome.", 2.0, 3.6),
    ]
    assert all(w.speaker == s.speaker for s in segs for w in s.words)
    assert [(t.speaker, t.start) for t in new_turns] == [("SPEAKER_00", 0), ("SPEAKER_01", 1.9)]
    assert [(s.id, s.name, s.talk_time) for s in speakers] == [
        ("SPEAKER_00", "Anna", 1.2), ("SPEAKER_01", "Boris", 2.1)]


def test_single_jitter_word_does_not_split_segment():
    words = [W("one", 0, 0.3), W("two", 0.4, 0.7), W("three", 0.8, 1.0), W("four", 1.1, 1.5),
             W("five", 1.6, 2.0)]
    seg = Segment(start=0, end=2, speaker=None, text="one two three four five", words=words)
    turns = [T(0, 0.75, "X"), T(0.75, 1.05, "Y"), T(1.05, 2.0, "X")]
    segs, _, speakers = assign([seg], turns)
    assert len(segs) == 1
    assert segs[0].speaker == "SPEAKER_00"
    # the word keeps its own speaker; the segment is the majority's
    assert [w.speaker for w in segs[0].words] == ["SPEAKER_00", "SPEAKER_00", "SPEAKER_01",
                                                  "SPEAKER_00", "SPEAKER_00"]
    assert [s.id for s in speakers] == ["SPEAKER_00", "SPEAKER_01"]


def test_no_space_languages_join_without_spaces():
    seg = Segment(start=0, end=2, speaker=None, text="你好世界",
                  words=[W("你好", 0, 0.6), W("你们", 0.6, 1.0), W("世界", 1.2, 1.6),
                         W("好", 1.6, 2.0)])
    segs, _, _ = assign([seg], [T(0, 1.1, "A"), T(1.1, 2, "B")], language="zh")
    assert [s.text for s in segs] == ["你好你们", "世界好"]


def test_untimed_words_take_neighbour_speaker():
    seg = Segment(start=0, end=2, speaker=None, text="in 1984 ok",
                  words=[W("in", 0, 0.3), Word(word="1984", start=None, end=None),
                         W("ok", 1.5, 2.0)])
    segs, _, _ = assign([seg], [T(0, 2, "A")])
    assert [w.speaker for w in segs[0].words] == ["SPEAKER_00"] * 3


def test_segment_without_words_uses_its_span():
    segs, _, _ = assign([Segment(start=5, end=6, speaker=None, text="x")],
                        [T(0, 1, "A"), T(4.5, 7, "B")])
    # B says the first word, so B is SPEAKER_00; A (a turn without words) comes after
    assert segs[0].speaker == "SPEAKER_00"


def test_without_turns_speakers_stay_none():
    seg = Segment(start=0, end=1, speaker="junk", text="x", words=[W("x", 0, 1)])
    segs, turns, speakers = assign([seg], [])
    assert segs[0].speaker is None and segs[0].words[0].speaker is None
    assert turns == [] and speakers == []


def test_talk_time_counts_overlaps_once():
    assert talk_times([T(0, 2, "A"), T(1, 3, "A"), T(5, 6, "A"), T(0, 1, "B")]) == {
        "A": 4.0, "B": 1.0}


def test_fewer_participants_than_speakers():
    _, _, speakers = assign([], [T(0, 1, "A"), T(1, 2, "B")], participants=["Only"])
    assert [(s.id, s.name) for s in speakers] == [("SPEAKER_00", "Only"), ("SPEAKER_01", None)]


def test_many_words_vectorised_blocks():
    n = 5000
    starts = np.arange(n, dtype=float)
    turns = [T(i * 10.0, i * 10.0 + 10.0, "A" if i % 2 == 0 else "B") for i in range(n // 10)]
    out = speakers_for_spans(starts, starts + 0.5, turns)
    assert out[:10] == ["A"] * 10 and out[10:20] == ["B"] * 10 and out[-1] == "B"
