"""Speaker renames (shared/speakers.py): parsing a PATCH body, merging, and applying
names to a result without touching the shared row; every format uses the names."""

from __future__ import annotations

import copy

import pytest

from diarq.shared.errors import InvalidOptions
from diarq.shared.renderers import FORMATS, render
from diarq.shared.result import Result
from diarq.shared.speakers import apply_names, clean_name, merge_renames, parse_renames

LABELS = ["SPEAKER_00", "SPEAKER_01"]
DATA = {
    "job_id": "j", "audio": {"duration": 4.0, "sample_rate": 16000}, "language": "en",
    "speakers": [{"id": "SPEAKER_00", "name": "Boris", "talk_time": 2.0},
                 {"id": "SPEAKER_01", "name": None, "talk_time": 1.0}],
    "segments": [{"start": 0.0, "end": 2.0, "speaker": "SPEAKER_00", "text": "Hello.",
                  "words": []},
                 {"start": 2.5, "end": 3.5, "speaker": "SPEAKER_01", "text": "Hi.",
                  "words": []}],
    "diarization": [{"start": 0.0, "end": 2.0, "speaker": "SPEAKER_00"},
                    {"start": 2.5, "end": 3.5, "speaker": "SPEAKER_01"}],
}


def test_object_and_list_bodies() -> None:
    assert parse_renames({"SPEAKER_01": "Anna"}, LABELS) == {"SPEAKER_01": "Anna"}
    assert parse_renames([{"id": "SPEAKER_00", "name": " Anna  Maria "}], LABELS) == {
        "SPEAKER_00": "Anna Maria"}
    assert parse_renames({"SPEAKER_00": None, "SPEAKER_01": ""}, LABELS) == {
        "SPEAKER_00": None, "SPEAKER_01": None}


@pytest.mark.parametrize("body", [{}, [], "Anna", 3, {"SPEAKER_07": "x"}, [{"name": "x"}],
                                  {"SPEAKER_00": 5}, {"SPEAKER_00": "x" * 101}, [1]])
def test_bad_bodies_are_refused_with_a_code(body: object) -> None:
    with pytest.raises(InvalidOptions) as info:
        parse_renames(body, LABELS)
    assert info.value.code == "invalid_speakers"


def test_names_are_one_line_of_printable_text() -> None:
    assert clean_name("Anna\nBoris\x00\t", "S") == "Anna Boris"
    hostile = "<img src=x onerror=alert(1)>"
    assert clean_name(hostile, "S") == hostile  # kept as text; pages show it as text


def test_merge_is_a_merge_patch() -> None:
    stored = merge_renames(None, {"SPEAKER_00": "Anna"})
    assert stored == {"SPEAKER_00": "Anna"}
    assert merge_renames(stored, {"SPEAKER_01": "Carl"}) == {"SPEAKER_00": "Anna",
                                                            "SPEAKER_01": "Carl"}
    assert merge_renames(stored, {"SPEAKER_00": None}) is None


def test_apply_keeps_labels_and_the_shared_row() -> None:
    row = copy.deepcopy(DATA)
    named = apply_names(row, {"SPEAKER_01": "Anna"})
    assert row == DATA  # the stored (maybe shared) row is unchanged
    assert [(s["id"], s["name"]) for s in named["speakers"]] == [("SPEAKER_00", "Boris"),
                                                                 ("SPEAKER_01", "Anna")]
    assert [s["speaker"] for s in named["segments"]] == LABELS
    assert apply_names(row, None) is row


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_shows_the_rename(fmt: str) -> None:
    out = render(Result.from_dict(apply_names(DATA, {"SPEAKER_01": "Anna Lee"})), fmt)
    assert ("Anna_Lee" if fmt == "rttm" else "Anna Lee") in out
    if fmt == "json":
        assert '"id": "SPEAKER_01"' in out
