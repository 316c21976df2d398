"""Renderers: exact output of each format on a small hand-built result."""

from __future__ import annotations

import json

import pytest

from diarq.shared.errors import InvalidOptions
from diarq.shared.renderers import CONTENT_TYPES, FORMATS, render, timestamp
from diarq.shared.result import AudioInfo, Result, Segment, Speaker, Turn, Word


def _result(names: tuple[str | None, str | None] = (None, None)) -> Result:
    return Result(
        job_id="job1",
        audio=AudioInfo(duration=3725.5, sample_rate=16000),
        language="en",
        speakers=[
            Speaker(id="SPEAKER_00", name=names[0], talk_time=2.0),
            Speaker(id="SPEAKER_01", name=names[1], talk_time=1.5),
        ],
        segments=[
            Segment(start=0.0, end=1.25, speaker="SPEAKER_00", text=" Hello there.",
                    words=[Word(word="Hello", start=0.0, end=0.5, speaker="SPEAKER_00"),
                           Word(word="there.", start=0.6, end=1.25, speaker="SPEAKER_00")]),
            Segment(start=1.5, end=2.0, speaker="SPEAKER_00", text="Again."),
            Segment(start=3723.0, end=3724.5005, speaker="SPEAKER_01", text="Bye <now> & go\tok"),
        ],
        diarization=[Turn(start=3723.0, end=3724.5, speaker="SPEAKER_01"),
                     Turn(start=0.0, end=2.0, speaker="SPEAKER_00")],
    )


def _empty() -> Result:
    return Result(audio=AudioInfo(duration=5.0, sample_rate=16000), language=None)


def test_timestamp_formats():
    assert timestamp(0) == "00:00:00,000"
    assert timestamp(3723.4567) == "01:02:03,457"
    assert timestamp(59.9996, sep=".") == "00:01:00.000"  # rounding carries into minutes
    assert timestamp(-0.2) == "00:00:00,000"
    assert timestamp(65.5, sep=".", hours=False) == "01:05.500"
    assert timestamp(3700, sep=".", hours=False) == "01:01:40.000"


def test_srt():
    out = render(_result(), "srt")
    assert out == (
        "1\n00:00:00,000 --> 00:00:01,250\n[SPEAKER_00] Hello there.\n\n"
        "2\n00:00:01,500 --> 00:00:02,000\n[SPEAKER_00] Again.\n\n"
        "3\n01:02:03,000 --> 01:02:04,500\n[SPEAKER_01] Bye <now> & go ok\n"
    )


def test_vtt_uses_voice_spans_and_escapes():
    out = render(_result(("Anna", "Boris")), "vtt")
    assert out.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:01.250\n<v Anna>Hello there.\n")
    assert "<v Boris>Bye &lt;now&gt; &amp; go ok" in out


def test_txt_joins_consecutive_segments_of_one_speaker_and_uses_names():
    out = render(_result(("Anna", None)), "txt")
    assert out == (
        "[00:00.000] Anna: Hello there. Again.\n"
        "[01:02:03.000] SPEAKER_01: Bye <now> & go ok\n"
    )


def test_tsv_milliseconds_and_no_tabs_in_cells():
    lines = render(_result(), "tsv").splitlines()
    assert lines[0] == "start\tend\tspeaker\ttext"
    assert lines[1] == "0\t1250\tSPEAKER_00\tHello there."
    assert lines[3] == "3723000\t3724500\tSPEAKER_01\tBye <now> & go ok"
    assert all(len(line.split("\t")) == 4 for line in lines)


def test_rttm_sorted_turns_with_ids():
    out = render(_result(), "rttm")
    assert out == (
        "SPEAKER job1 1 0.000 2.000 <NA> <NA> SPEAKER_00 <NA> <NA>\n"
        "SPEAKER job1 1 3723.000 1.500 <NA> <NA> SPEAKER_01 <NA> <NA>\n"
    )


def test_rttm_uses_names_as_one_token():
    out = render(_result(("Anna Maria", None)), "rttm")
    assert out.splitlines()[0].split() == [
        "SPEAKER", "job1", "1", "0.000", "2.000", "<NA>", "<NA>", "Anna_Maria", "<NA>", "<NA>"]
    assert " SPEAKER_01 " in out.splitlines()[1]


def test_json_round_trips():
    res = _result(("Anna", None))
    data = json.loads(render(res, "json"))
    assert data["speakers"][0]["name"] == "Anna"
    assert Result.from_dict(data) == res


def test_no_speaker_segments_have_no_label():
    res = Result(audio=AudioInfo(duration=2, sample_rate=16000), language="en",
                 segments=[Segment(start=0, end=1, speaker=None, text="Hi.")])
    assert render(res, "srt") == "1\n00:00:00,000 --> 00:00:01,000\nHi.\n"
    assert "<v" not in render(res, "vtt")
    assert render(res, "txt") == "[00:00.000] Hi.\n"
    assert render(res, "tsv").splitlines()[1] == "0\t1000\t\tHi."


@pytest.mark.parametrize("fmt", FORMATS)
def test_empty_result_renders_in_every_format(fmt):
    out = render(_empty(), fmt)
    expected = {"srt": "", "txt": "", "rttm": "", "vtt": "WEBVTT\n",
                "tsv": "start\tend\tspeaker\ttext\n"}
    if fmt == "json":
        assert json.loads(out)["segments"] == []
    else:
        assert out == expected[fmt]
    assert fmt in CONTENT_TYPES


def test_unknown_format_is_an_error():
    with pytest.raises(InvalidOptions) as info:
        render(_empty(), "docx")
    assert info.value.code == "invalid_format"
