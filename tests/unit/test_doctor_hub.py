"""`diarq doctor` lists every repo the chosen pipeline needs and names each refused one.

The hub cannot be reached here: its answers are played by a stand-in for ``requests.get``
that answers like the hub does (200 with the file, 403 for a gated repo without access).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

from diarq.cli.doctor import check_hub, check_local_pipeline, check_token
from diarq.shared.settings import load_settings
from tests.hub_shaped import CONFIG_31, CONFIG_COMMUNITY_1

TOKEN = "hf_DoctorRepoCanary0123456789abcdefghij"


class _Hub:
    """Answers GETs like huggingface.co for an account with access to ``allowed``."""

    def __init__(self, allowed: set[str], files: dict[str, str]) -> None:
        self.allowed, self.files, self.asked = allowed, files, []

    def __call__(self, url: str, **_: object) -> requests.Response:
        resp = requests.Response()
        resp._content, resp._content_consumed = b"", True
        path = url.split("huggingface.co/", 1)[1]
        self.asked.append(path)
        if path == "api/whoami-v2":
            resp.status_code, resp._content = 200, b'{"name": "anna"}'
            return resp
        repo = "/".join(path.split("/")[:2])
        resp.status_code = 200 if repo in self.allowed else 403
        if resp.status_code == 200 and path.endswith("config.yaml"):
            resp._content = self.files.get(repo, "").encode()
        return resp


@pytest.fixture
def hub_settings(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.delenv("HF_ENDPOINT", raising=False)

    def make(model: str):  # type: ignore[no-untyped-def]
        return load_settings(profile="hub", hub_diarization_model=model)

    return make


def test_31_lists_its_repos_and_names_the_refused_one(hub_settings) -> None:  # type: ignore[no-untyped-def]
    model = "pyannote/speaker-diarization-3.1"
    hub = _Hub({model, "pyannote/wespeaker-voxceleb-resnet34-LM"},
               {model: CONFIG_31.format(extra="")})
    checks = {c.name: c for c in check_hub(hub_settings(model), get=hub)}
    assert checks[f"repo {model}"].status == "ok"
    assert checks["repo pyannote/wespeaker-voxceleb-resnet34-LM"].status == "ok"
    refused = checks["repo pyannote/segmentation-3.0"]
    assert refused.status == "fail" and "https://huggingface.co/pyannote/segmentation-3.0" in \
        refused.fix
    assert "refused: pyannote/segmentation-3.0" in checks["diarization model"].detail
    # community-1 is not needed by 3.1 (its PLDA is never used: pyannote-audio#2044)
    assert not any("community-1" in path for path in hub.asked)
    assert all(TOKEN not in c.line() for c in checks.values())


def test_community_1_needs_only_its_own_repo(hub_settings) -> None:  # type: ignore[no-untyped-def]
    model = "pyannote/speaker-diarization-community-1"
    hub = _Hub({model}, {model: CONFIG_COMMUNITY_1.format(extra="")})
    checks = check_hub(hub_settings(model), get=hub)
    assert [c.name for c in checks if c.name.startswith("repo ")] == [f"repo {model}"]
    assert all(c.status == "ok" for c in checks)


def test_config_unreadable_falls_back_to_the_known_list(hub_settings) -> None:  # type: ignore[no-untyped-def]
    model = "pyannote/speaker-diarization-3.1"
    checks = check_hub(hub_settings(model), get=_Hub(set(), {}))
    names = [c.name for c in checks if c.name.startswith("repo ")]
    assert names == [f"repo {model}", "repo pyannote/segmentation-3.0",
                     "repo pyannote/wespeaker-voxceleb-resnet34-LM"]
    assert all(c.status == "fail" for c in checks if c.name.startswith("repo "))


def test_no_token_names_every_gated_repo(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_TOKEN", raising=False)
    (check,) = check_token(load_settings(profile="hub"))
    assert check.status == "fail"
    assert "pyannote/segmentation-3.0" in check.fix
    assert "pyannote/speaker-diarization-3.1" in check.fix


def test_local_31_directory_reports_each_repo(tmp_path: Path) -> None:
    pipeline = tmp_path / "pyannote" / "speaker-diarization-3.1"
    pipeline.mkdir(parents=True)
    (pipeline / "config.yaml").write_text(CONFIG_31.format(extra=""))
    seg = tmp_path / "pyannote" / "segmentation-3.0"
    seg.mkdir()
    (seg / "pytorch_model.bin").write_bytes(b"weights")
    checks = {c.name: c for c in check_local_pipeline(str(pipeline))}
    assert checks["repo pyannote/segmentation-3.0"].status == "ok"
    missing = checks["repo pyannote/wespeaker-voxceleb-resnet34-LM"]
    assert missing.status == "fail"
    assert "huggingface-cli download pyannote/wespeaker-voxceleb-resnet34-LM" in missing.fix
