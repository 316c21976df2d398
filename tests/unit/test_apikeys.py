from diarq.shared.apikeys import KEY_PREFIX, display_prefix, generate_key, hash_key, parse_bearer
from diarq.shared.redact import REDACTED, redact


def test_keys_are_unique_hashed_and_redacted():
    a, b = generate_key(), generate_key()
    assert a != b and a.startswith(KEY_PREFIX)
    assert hash_key(a) != hash_key(b) and a not in hash_key(a)
    assert len(hash_key(a)) == 64
    assert redact(f"key {a}") == f"key {REDACTED}"
    assert display_prefix(a) == a[:9]


def test_parse_bearer():
    assert parse_bearer("Bearer dq_abc") == "dq_abc"
    assert parse_bearer("bearer  dq_abc ") == "dq_abc"
    assert parse_bearer("Basic abc") is None
    assert parse_bearer("Bearer ") is None
    assert parse_bearer(None) is None
    assert parse_bearer("Bearer " + "x" * 500) is None
