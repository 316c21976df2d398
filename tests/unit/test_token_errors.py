"""Hub failures become distinct ModelError codes, and the token never leaks.

The exceptions are the real huggingface_hub types, produced the way the library
produces them: ``hf_raise_for_status`` on a real ``requests.Response``.
"""

from __future__ import annotations

import traceback

import pytest
import requests
from huggingface_hub.errors import LocalEntryNotFoundError, OfflineModeIsEnabled
from huggingface_hub.utils import hf_raise_for_status

from diarq.shared.errors import ModelError
from diarq.shared.settings import load_settings
from diarq.worker.diarization import load_hub_diarizer
from diarq.worker.diarization.hub_errors import call_hub

TOKEN = "hf_SecretTokenValue0123456789abcdefXYZ"
MODEL = "pyannote/speaker-diarization-3.1"


def _http_error(status: int, error_code: str | None = None, body: str = "",
                repo: str = MODEL, file: str = "config.yaml") -> Exception:
    response = requests.Response()
    response.status_code = status
    response.url = f"https://huggingface.co/{repo}/resolve/main/{file}?token={TOKEN}"
    response.headers["X-Error-Message"] = f"Invalid credentials in Authorization header {TOKEN}"
    if error_code:
        response.headers["X-Error-Code"] = error_code
    response._content = body.encode()
    response.request = requests.Request(
        "GET", response.url, headers={"authorization": f"Bearer {TOKEN}"}
    ).prepare()
    try:
        hf_raise_for_status(response)
    except Exception as exc:  # the library's own exception, as raised in real use
        return exc
    raise AssertionError("hf_raise_for_status did not raise")


def _raiser(exc: BaseException):  # type: ignore[no-untyped-def]
    def load() -> None:
        secret = TOKEN  # a local holding the token, as in the real call  # noqa: F841
        raise exc

    return load


def _assert_no_token(err: ModelError) -> None:
    text = "".join(traceback.format_exception(err))
    assert TOKEN not in str(err) and TOKEN not in repr(err) and TOKEN not in text
    assert TOKEN not in err.message
    assert err.__cause__ is None and err.__context__ is None


CASES = [
    (lambda: _http_error(401, "RepoNotFound"), "token_invalid"),
    (lambda: _http_error(401), "token_invalid"),
    (lambda: _http_error(403, "GatedRepo"), "model_access_denied"),
    (lambda: _http_error(403), "model_access_denied"),
    (lambda: _http_error(404, "RepoNotFound"), "model_not_found"),
    (lambda: _http_error(404, "EntryNotFound"), "model_not_found"),
    (lambda: _http_error(404, "RevisionNotFound"), "model_not_found"),
    (lambda: _http_error(503), "hub_unreachable"),
    (lambda: LocalEntryNotFoundError(f"cannot reach hub with {TOKEN}"), "hub_unreachable"),
    (lambda: OfflineModeIsEnabled(f"offline {TOKEN}"), "hub_unreachable"),
    (lambda: requests.ConnectionError(f"Max retries exceeded {TOKEN}"), "hub_unreachable"),
    (lambda: requests.Timeout(f"read timed out {TOKEN}"), "hub_unreachable"),
    (lambda: RuntimeError(f"something odd with {TOKEN}"), "model_load_failed"),
]


@pytest.mark.parametrize(("make", "code"), CASES)
def test_hub_failure_maps_to_code_without_token(make, code: str) -> None:  # type: ignore[no-untyped-def]
    original = make()
    assert TOKEN in str(original)  # so that the test can fail if it leaked
    with pytest.raises(ModelError) as info:
        call_hub(_raiser(original), MODEL, TOKEN)
    assert info.value.code == code
    _assert_no_token(info.value)


def test_gated_message_says_where_to_request_access() -> None:
    with pytest.raises(ModelError) as info:
        call_hub(_raiser(_http_error(403, "GatedRepo")), MODEL, TOKEN)
    assert f"https://hf.co/{MODEL}" in info.value.message
    assert "accept the conditions" in info.value.message


def test_access_error_names_the_repo_that_refused_not_the_pipeline() -> None:
    """3.1 loads segmentation-3.0 from another gated repo: a user with access to 3.1 only
    must be sent to segmentation-3.0's page."""
    refused = "pyannote/segmentation-3.0"
    with pytest.raises(ModelError) as info:
        call_hub(_raiser(_http_error(403, "GatedRepo", repo=refused, file="pytorch_model.bin")),
                 MODEL, TOKEN)
    assert info.value.code == "model_access_denied"
    assert f"https://hf.co/{refused}" in info.value.message
    assert f"https://hf.co/{MODEL}" not in info.value.message
    assert f"{MODEL} needs it" in info.value.message
    _assert_no_token(info.value)


@pytest.mark.parametrize(("url", "repo"), [
    ("https://huggingface.co/pyannote/segmentation-3.0/resolve/main/pytorch_model.bin",
     "pyannote/segmentation-3.0"),
    ("https://huggingface.co/api/models/pyannote/speaker-diarization-community-1/revision/main",
     "pyannote/speaker-diarization-community-1"),
    ("https://hf-mirror.example/pyannote/speaker-diarization-3.1/resolve/abc/plda%2Fplda.npz",
     "pyannote/speaker-diarization-3.1"),
    ("https://huggingface.co/api/whoami-v2", None),
])
def test_repo_from_the_failing_request(url: str, repo: str | None) -> None:
    from diarq.worker.diarization.hub_errors import repo_from_error

    response = requests.Response()
    response.url = url
    assert repo_from_error(requests.HTTPError(response=response)) == repo


def test_unreachable_suggests_offline_profile() -> None:
    with pytest.raises(ModelError) as info:
        call_hub(_raiser(requests.ConnectionError("down")), MODEL, TOKEN)
    assert "DIARQ_PROFILE=offline" in info.value.message


def test_401_without_token_is_token_missing() -> None:
    with pytest.raises(ModelError) as info:
        call_hub(_raiser(_http_error(401, "RepoNotFound")), MODEL, None)
    assert info.value.code == "token_missing"


def test_hub_id_without_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUGGINGFACE_HUB_TOKEN", raising=False)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(ModelError) as info:
        load_hub_diarizer(load_settings(profile="hub", hub_diarization_model=MODEL))
    assert info.value.code == "token_missing"
    assert "HUGGINGFACE_HUB_TOKEN" in info.value.message


def test_missing_local_directory(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(ModelError) as info:
        load_hub_diarizer(load_settings(profile="hub",
                                        hub_diarization_model=str(tmp_path / "nope")))
    assert info.value.code == "model_not_found"
    _assert_no_token(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError) as info:
        load_hub_diarizer(load_settings(profile="hub",
                                        hub_diarization_model=str(tmp_path / "empty")))
    assert info.value.code == "model_not_found" and "config.yaml" in info.value.message


def test_from_pretrained_returning_none_is_a_model_error(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import diarq.worker.diarization.backends as diarization
    from tests.hub_shaped import CONFIG_31

    config = tmp_path / "config.yaml"
    config.write_text(CONFIG_31.format(extra=""))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setattr(diarization, "_download_config", lambda model, token: config)
    monkeypatch.setattr(diarization, "_from_pretrained", lambda checkpoint, token: None)
    with pytest.raises(ModelError) as info:
        load_hub_diarizer(load_settings(profile="hub", hub_diarization_model=MODEL))
    assert info.value.code == "model_access_denied"
    # every repo 3.1 needs, and not community-1 (its PLDA is not needed: #2044)
    for repo in (MODEL, "pyannote/segmentation-3.0", "pyannote/wespeaker-voxceleb-resnet34-LM"):
        assert f"https://hf.co/{repo}" in info.value.message
    assert "community-1" not in info.value.message
    _assert_no_token(info.value)


def test_real_download_attempt_without_network_is_mapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real pyannote/huggingface_hub call path, with the hub made unreachable."""
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-diarq-test-cache")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelError) as info:
        load_hub_diarizer(load_settings(profile="hub", hub_diarization_model=MODEL))
    assert info.value.code == "hub_unreachable"
    _assert_no_token(info.value)
