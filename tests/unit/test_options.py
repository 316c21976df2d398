"""Option validation as the CLI sees it: bad options fail before any model loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from diarq.cli import cli
from diarq.shared.errors import InvalidOptions
from diarq.shared.options import parse_options

DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.mark.parametrize("raw,fragment", [
    ({"min_speakers": 3, "max_speakers": 2}, "greater than max_speakers"),
    ({"num_speakers": -1}, "num_speakers"),
    ({"num_speakers": 0}, "num_speakers"),
    ({"max_speakers": 1000}, "max_speakers"),
    ({"num_speakers": 5, "max_speakers": 3}, "outside"),
    ({"language": "english!"}, "language"),
    ({"colour": "blue"}, "colour"),
])
def test_bad_options_are_rejected_with_a_reason(raw, fragment):
    with pytest.raises(InvalidOptions) as info:
        parse_options(raw)
    assert info.value.code == "invalid_options"
    assert fragment in info.value.message


def test_participants_string_is_split_and_blank_values_dropped():
    opts = parse_options({"participants": " Anna, Boris ,,", "language": "", "prompt": None})
    assert opts.participants == ["Anna", "Boris"]
    assert opts.language is None and opts.diarize and opts.align


@pytest.mark.parametrize("args,code", [
    (["--min-speakers", "3", "--max-speakers", "2"], "invalid_options"),
    (["--num-speakers", "-2"], "invalid_options"),
])
def test_cli_rejects_bad_options_before_loading_models(args, code):
    result = CliRunner().invoke(cli, ["process", str(DATA / "jfk.wav"), *args],
                                standalone_mode=False)
    assert isinstance(result.exception, InvalidOptions)
    assert result.exception.code == code


def test_cli_reports_missing_file_without_traceback(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", "from diarq.cli import main; main()", "process",
         str(tmp_path / "nope.wav")],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error [audio_missing]:")
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("raw", [
    '[{"name": "John"}, {"name": "Jane"}]',  # the original client's request
    ' [ {"name": "John", "email": "j@example.org"}, {"name": " Jane "} ] ',
    '["John", "Jane"]',
    "John, Jane",
    ["John", "Jane"],  # repeated form fields
    [{"name": "John"}, {"name": "Jane"}],  # already parsed JSON
])
def test_participants_in_every_shape_clients_send(raw):
    assert parse_options({"participants": raw}).participants == ["John", "Jane"]


@pytest.mark.parametrize("raw,fragment", [
    ('[{"name": "John"}, {"name": "Jane"}', "not valid JSON"),  # cut short
    ("{name: John}", "not valid JSON"),
    ('{"name": "John"}', "must be a list"),
    ("[1, 2]", "each participant"),
    ('[{"who": "John"}]', "each participant"),
    ('["' + "x" * 101 + '"]', "at most 100"),
])
def test_participants_that_look_like_json_but_are_not_names_are_refused(raw, fragment):
    with pytest.raises(InvalidOptions) as info:
        parse_options({"participants": raw})
    assert info.value.code == "invalid_options"
    assert "participants:" in info.value.message and fragment in info.value.message


def test_participants_json_is_never_split_on_commas():
    # before: '[{"name": "John"}' and '{"name": "Jane"}]' became two "names"
    names = parse_options({"participants": '[{"name": "John"}, {"name": "Jane"}]'}).participants
    assert not any("{" in n or "[" in n for n in names)


def test_cli_process_refuses_broken_participants_json_before_loading_models():
    result = CliRunner().invoke(cli, ["process", str(DATA / "jfk.wav"), "--participants",
                                      '[{"name": "John"'], standalone_mode=False)
    assert isinstance(result.exception, InvalidOptions)
    assert "participants: not valid JSON" in result.exception.message


def test_cli_submit_refuses_broken_participants_json_before_uploading():
    # no server at this address: the option is refused first, so no connection is tried
    result = CliRunner().invoke(cli, ["submit", str(DATA / "jfk.wav"), "--server",
                                      "http://127.0.0.1:9", "--participants", "[John"],
                                standalone_mode=False)
    assert isinstance(result.exception, InvalidOptions), result.exception
    assert "participants: not valid JSON" in result.exception.message
def test_options_added_later_leave_old_hashes_and_rows_alone():
    import hashlib
    import json

    from diarq.shared.dedupe import options_sha256

    opts = parse_options({"min_speakers": 2, "participants": "Anna"})
    # what the hash and the stored row were before hotwords/multichannel/references
    before = {"num_speakers": None, "min_speakers": 2, "max_speakers": None, "language": None,
              "diarize": True, "align": True, "asr_model": None, "participants": ["Anna"],
              "prompt": None}
    legacy = hashlib.sha256(json.dumps(before, sort_keys=True, separators=(",", ":"),
                                       ensure_ascii=False).encode()).hexdigest()
    assert options_sha256(opts) == legacy
    assert opts.stored() == {"min_speakers": 2, "diarize": True, "align": True,
                             "participants": ["Anna"]}
    # set, they count
    hinted = parse_options({"min_speakers": 2, "participants": "Anna", "hotwords": "Kraków"})
    assert options_sha256(hinted) != legacy and hinted.stored()["hotwords"] == ["Kraków"]
    assert parse_options({"multichannel": "true"}).stored()["multichannel"] is True


def test_hotwords_are_split_and_bounded():
    assert parse_options({"hotwords": " Szymborska, Kubernetes ,,"}).hotwords == [
        "Szymborska", "Kubernetes"]
    with pytest.raises(InvalidOptions, match="hotword"):
        parse_options({"hotwords": ["x" * 101]})
    with pytest.raises(InvalidOptions, match="hotwords"):
        parse_options({"hotwords": [f"w{i}" for i in range(101)]})
