import logging

from diarq.shared.redact import REDACTED, RedactingFilter, install_redaction, redact

TOKEN = "hf_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"


def test_token_shapes_are_redacted():
    text = f"401 for token {TOKEN} and key dq_abcdefghijklmnopqrstuvwxyz012345"
    out = redact(text)
    assert TOKEN not in out and "dq_abcdefghij" not in out
    assert out.count(REDACTED) == 2


def test_configured_secret_of_any_shape(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "plain-secret-value-123")
    assert "plain-secret-value-123" not in redact("auth=plain-secret-value-123")


def test_short_words_are_left_alone():
    assert redact("hf_ is a prefix; so is dq_") == "hf_ is a prefix; so is dq_"


def test_logging_filter_redacts_args_and_tracebacks(caplog):
    logger = logging.getLogger("diarq.test.redact")
    handler = logging.StreamHandler()
    logger.addHandler(handler)
    try:
        install_redaction(logger)
        assert any(isinstance(f, RedactingFilter) for f in handler.filters)
        record = logger.makeRecord(logger.name, logging.ERROR, __file__, 1, "token=%s", (TOKEN,),
                                   None)
        try:
            raise RuntimeError(f"bad {TOKEN}")
        except RuntimeError:
            import sys
            record.exc_info = sys.exc_info()
        RedactingFilter().filter(record)
        assert TOKEN not in record.getMessage()
        assert TOKEN not in record.exc_text
    finally:
        logger.removeHandler(handler)


def test_extra_secrets_are_replaced_whatever_their_shape(monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_TOKEN", raising=False)
    odd = "not-token-shaped-secret-42"  # e.g. a token from a file, not from the environment
    out = redact(f"401 for Bearer {odd} and {TOKEN}", extra_secrets=[odd])
    assert odd not in out and TOKEN not in out and out.count(REDACTED) == 2
    assert redact("short abc stays", extra_secrets=["abc"]) == "short abc stays"
