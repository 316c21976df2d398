"""API keys on SQLite (create/list/revoke/authenticate) and the auth-off exposure check."""

from __future__ import annotations

import pytest

from diarq.shared.errors import ConfigError, DiarqError
from diarq.shared.settings import load_settings


def test_key_life_cycle(settings) -> None:  # noqa: ANN001
    from diarq.shared.apikeys import hash_key
    from diarq.shared.keystore import authenticate, create_key, list_keys, revoke_key

    info, key = create_key(settings, "alice")
    assert key.startswith("dq_") and len(key) > 40 and key.startswith(info.prefix)
    assert authenticate(settings, key) == info.id
    assert authenticate(settings, key + "x") is None
    assert authenticate(settings, "hf_" + key[3:]) is None
    listed = list_keys(settings)
    assert [(k.id, k.name, k.revoked_at) for k in listed] == [(info.id, "alice", None)]
    assert key not in repr(listed) and hash_key(key) not in repr(listed)
    assert revoke_key(settings, info.prefix).revoked_at is not None
    assert authenticate(settings, key) is None
    # revoking again keeps the first revocation time
    first = list_keys(settings)[0].revoked_at
    assert revoke_key(settings, str(info.id)).revoked_at == first


def test_revoke_errors(settings) -> None:  # noqa: ANN001
    from diarq.shared.keystore import create_key, revoke_key

    with pytest.raises(DiarqError) as info:
        revoke_key(settings, "dq_nothere")
    assert info.value.code == "key_not_found"
    with pytest.raises(DiarqError) as info:
        create_key(settings, "   ")
    assert info.value.code == "invalid_key_name"


@pytest.mark.parametrize(("host", "loopback"), [
    ("127.0.0.1", True), ("127.1.2.3", True), ("::1", True), ("[::1]", True),
    ("localhost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False),
    ("example.com", False), ("", False),
])
def test_is_loopback(host: str, loopback: bool) -> None:
    from diarq.api.auth import is_loopback

    assert is_loopback(host) is loopback


def test_auth_off_exposure_check(settings) -> None:  # noqa: ANN001
    from diarq.api.auth import check_auth_exposure

    check_auth_exposure(settings.model_copy(update={"auth": "on"}), "0.0.0.0")
    check_auth_exposure(settings.model_copy(update={"auth": "off"}), "127.0.0.1")
    with pytest.raises(ConfigError) as info:
        check_auth_exposure(settings.model_copy(update={"auth": "off"}), "0.0.0.0")
    assert "DIARQ_AUTH_OFF_FORCE" in info.value.message
    check_auth_exposure(settings.model_copy(update={"auth": "off", "auth_off_force": True}),
                        "0.0.0.0")


def test_auth_is_on_unless_configured_off(monkeypatch) -> None:  # noqa: ANN001
    monkeypatch.delenv("DIARQ_AUTH", raising=False)
    assert load_settings().auth == "on"
    monkeypatch.setenv("DIARQ_AUTH", "off")
    assert load_settings().auth == "off"
