"""Multichannel recordings: each channel's own speech against crosstalk bleed, turns,
words kept per channel, speakers in channel order, and decoding channels apart."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from diarq.shared.errors import InvalidOptions
from diarq.shared.options import check_multichannel, parse_options
from diarq.shared.result import Segment, Word
from diarq.worker.multichannel import (
    FRAME,
    channel_speakers,
    channel_turns,
    drowned,
    frame_levels,
    keep_own_words,
    mask_runs,
    merge_channels,
    own_speech,
)

SR = 16000
DATA = Path(__file__).resolve().parent.parent / "data"


def _tone(seconds: float, amplitude: float, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _two_people(bleed: float = 0.05) -> np.ndarray:
    """Person 1 talks 0-2 s, person 2 talks 3-5 s, both 6-7 s; each microphone hears the
    other at ``bleed`` amplitude (-26 dB for 0.05)."""
    one = np.zeros(8 * SR, np.float32)
    two = np.zeros(8 * SR, np.float32)
    one[0:2 * SR] = _tone(2, 0.3)
    two[3 * SR:5 * SR] = _tone(2, 0.3, 330)
    one[6 * SR:7 * SR] = _tone(1, 0.3)
    two[6 * SR:7 * SR] = _tone(1, 0.3, 330)
    return np.stack([one + bleed * two, two + bleed * one])


def test_bleed_is_not_the_other_channels_speech():
    tracks = _two_people()
    levels = frame_levels(tracks)
    speech = np.ones(levels.shape, dtype=bool)  # as if VAD heard speech everywhere
    own = own_speech(levels, speech, bleed_db=15.0)
    assert mask_runs(own[0]) == [(0.0, 2.0), (6.0, 7.0)]
    assert mask_runs(own[1]) == [(3.0, 5.0), (6.0, 7.0)]


def test_without_a_bleed_margin_bleed_counts_as_speech():
    # the rule must be what removes bleed: with a margin above the bleed level (26 dB),
    # channel 1's bleed into channel 2 counts as channel 2's speech
    levels = frame_levels(_two_people())
    own = own_speech(levels, np.ones(levels.shape, dtype=bool), bleed_db=40.0)
    assert (0.0, 2.0) in mask_runs(own[1])


def test_channel_turns_overlap_where_both_talk_and_exclusive_keeps_the_louder():
    tracks = _two_people()
    tracks[1, 6 * SR:7 * SR] *= 0.5  # person 2 is quieter while both talk
    levels = frame_levels(tracks)
    found = channel_turns(levels, own_speech(levels, np.ones(levels.shape, bool), 15.0))
    assert [(t.start, t.end, t.speaker) for t in found.turns] == [
        (0.0, 2.0, "CHANNEL_1"), (3.0, 5.0, "CHANNEL_2"), (6.0, 7.0, "CHANNEL_1"),
        (6.0, 7.0, "CHANNEL_2")]
    ex = found.exclusive
    assert all(a.end <= b.start for a, b in zip(ex, ex[1:], strict=False))
    assert [(t.start, t.end, t.speaker) for t in ex] == [
        (0.0, 2.0, "CHANNEL_1"), (3.0, 5.0, "CHANNEL_2"), (6.0, 7.0, "CHANNEL_1")]


def test_words_of_bleed_are_dropped_and_own_words_kept():
    tracks = _two_people()
    levels = frame_levels(tracks)
    found = channel_turns(levels, own_speech(levels, np.ones(levels.shape, bool), 15.0))
    bleed = drowned(levels, 15.0)
    # Whisper on channel 2 transcribed channel 1's words at 0.5-1.5 s (bleed) and its own
    words = [Word(word="hello", start=0.5, end=0.9), Word(word="there", start=1.0, end=1.5),
             Word(word="yes", start=3.2, end=3.6), Word(word="indeed", start=3.7, end=4.2)]
    seg = Segment(start=0.5, end=4.2, speaker=None, text="hello there yes indeed",
                  words=words)
    kept = keep_own_words([seg], found.turns, "CHANNEL_2", bleed[1], "en")
    assert [(s.text, s.start, s.end, s.speaker) for s in kept] == [
        ("yes indeed", 3.2, 4.2, "CHANNEL_2")]
    assert {w.speaker for w in kept[0].words} == {"CHANNEL_2"}
    # the same words on channel 1: its own speech until 2 s, the rest is gone
    kept1 = keep_own_words([seg], found.turns, "CHANNEL_1", bleed[0], "en")
    assert [s.text for s in kept1] == ["hello there"]


def test_segments_without_words_go_by_their_span():
    tracks = _two_people()
    levels = frame_levels(tracks)
    found = channel_turns(levels, own_speech(levels, np.ones(levels.shape, bool), 15.0))
    bleed = drowned(levels, 15.0)
    segs = [Segment(start=0.2, end=1.8, speaker=None, text="bleed"),
            Segment(start=3.1, end=4.9, speaker=None, text="own")]
    assert [s.text for s in keep_own_words(segs, found.turns, "CHANNEL_2", bleed[1],
                                           "en")] == ["own"]


def test_merge_and_speakers_in_channel_order():
    a = [Segment(start=5, end=6, speaker="CHANNEL_1", text="later")]
    b = [Segment(start=1, end=2, speaker="CHANNEL_2", text="first")]
    assert [s.text for s in merge_channels([a, b])] == ["first", "later"]
    tracks = _two_people()
    levels = frame_levels(tracks)
    found = channel_turns(levels, own_speech(levels, np.ones(levels.shape, bool), 15.0))
    speakers = channel_speakers(3, found.turns, ["Agent"])
    assert [(s.id, s.name, s.channel, s.talk_time) for s in speakers] == [
        ("CHANNEL_1", "Agent", 1, 3.0), ("CHANNEL_2", None, 2, 3.0), ("CHANNEL_3", None, 3, 0.0)]


def test_frame_levels_are_dbfs():
    full = np.ones((1, FRAME * 3), np.float32)
    assert frame_levels(full)[0] == pytest.approx([0.0, 0.0, 0.0], abs=1e-6)
    assert frame_levels(np.zeros((2, FRAME - 1), np.float32)).shape == (2, 0)


def test_mono_recording_is_refused_for_multichannel():
    options = parse_options({"multichannel": True})
    with pytest.raises(InvalidOptions) as info:
        check_multichannel(options, 1, "call.wav")
    assert info.value.code == "audio_not_multichannel" and "call.wav" in info.value.message
    assert check_multichannel(options, 2, "call.wav") == 2
    assert check_multichannel(parse_options({}), 6, "call.wav") == 1


def test_speaker_counts_make_no_sense_with_multichannel():
    with pytest.raises(InvalidOptions, match="each channel is one speaker"):
        parse_options({"multichannel": True, "num_speakers": 2})


def test_decode_keeps_channels_apart(tmp_path: Path):
    from diarq.worker.audio import decode_audio

    stereo = tmp_path / "stereo.wav"
    # channel 1: jfk; channel 2: silence (sox -M merges files as channels)
    silent = tmp_path / "silent.wav"
    subprocess.run(["sox", str(DATA / "jfk.wav"), str(silent), "vol", "0"], check=True)
    subprocess.run(["sox", "-M", str(DATA / "jfk.wav"), str(silent), str(stereo)], check=True)
    both = decode_audio(stereo, channels=2)
    mono = decode_audio(DATA / "jfk.wav")
    assert both.shape == (2, len(mono)) and both.flags.c_contiguous
    assert np.allclose(both[0], mono, atol=1e-4)
    assert np.abs(both[1]).max() < 1e-3  # (sox dithers its silence by one LSB)
