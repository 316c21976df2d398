import time

import pytest

from diarq.shared.errors import InvalidOptions
from diarq.shared.webhooks import RETRY_DELAYS_S, sign, validate_webhook_url, verify


def test_signature_round_trip_and_tamper():
    body = b'{"job_id": "j1", "status": "succeeded"}'
    header = sign("s3cret", body)
    assert verify("s3cret", body, header)
    assert not verify("s3cret", body + b" ", header)
    assert not verify("other", body, header)
    assert not verify("s3cret", body, "garbage")


def test_old_signatures_are_refused():
    body = b"{}"
    assert not verify("k", body, sign("k", body, int(time.time()) - 3600))


def test_retries_cover_at_least_an_hour():
    assert sum(RETRY_DELAYS_S) >= 3600
    assert list(RETRY_DELAYS_S) == sorted(RETRY_DELAYS_S)


@pytest.mark.parametrize("url", [
    "ftp://example.com/x", "file:///etc/passwd", "http://", "javascript:alert(1)",
    "http://user:pw@example.com/",
])
def test_bad_schemes(url):
    with pytest.raises(InvalidOptions):
        validate_webhook_url(url, allow_private=True)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:8080/hook", "http://localhost/hook", "http://10.1.2.3/",
    "http://[::1]/", "http://169.254.169.254/latest/meta-data",
])
def test_private_targets_refused_unless_allowed(url):
    with pytest.raises(InvalidOptions):
        validate_webhook_url(url)
    assert validate_webhook_url(url, allow_private=True) == url
