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
