"""A job's asr_model may name a model (or a hub id on the hub profile), never a path."""

from __future__ import annotations

import pytest

from diarq.shared.errors import InvalidOptions
from diarq.shared.options import check_job_model


@pytest.mark.parametrize("name, profile", [
    ("base", "offline"), ("tiny.en", "offline"), ("large-v3", "hub"),
    ("Systran/faster-whisper-small", "hub"), (None, "offline"),
])
def test_model_names_pass(name: str | None, profile: str) -> None:
    check_job_model(name, profile)


@pytest.mark.parametrize("name, profile", [
    ("/etc", "hub"), ("../models", "offline"), ("a/../b", "hub"), ("~root", "hub"),
    ("etc/passwd", "offline"), ("a\\b", "hub"), (".hidden", "hub"), ("a/b/c", "hub"),
    ("C:\\models", "hub"),
])
def test_paths_are_refused(name: str, profile: str) -> None:
    with pytest.raises(InvalidOptions) as info:
        check_job_model(name, profile)
    assert info.value.code == "asr_model_not_allowed"
    assert "DIARQ_ASR_MODEL" in info.value.message and info.value.http_status == 422
