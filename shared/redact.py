"""Keeps secrets out of logs, exceptions and anything shown to users.

Hugging Face tokens look like ``hf_`` + 30-40 letters/digits; API keys issued by
diarq look like ``dq_`` + url-safe base64; AWS access key ids ``AKIA``/``ASIA`` + 16.
Values of configured secrets (the Hugging Face token and the AWS credentials found in
the environment) are replaced too, whatever their shape.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable

REDACTED = "[REDACTED]"
# AWS access key ids (long-term AKIA..., temporary ASIA...) are identifiers, but they
# have no business in a log line or an error either
_SHAPES = re.compile(r"\b(?:hf_[A-Za-z0-9]{20,}|dq_[A-Za-z0-9_\-]{20,}|(?:AKIA|ASIA)[A-Z0-9]{16})")
# object storage credentials come from boto3's AWS chain: their values are secrets too
_SECRET_ENV = ("HUGGINGFACE_HUB_TOKEN", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY",
               "AWS_SESSION_TOKEN", "AWS_ACCESS_KEY_ID")


def _configured_secrets() -> list[str]:
    # Read at call time: tests and operators may set the token after import.
    values = [os.environ.get(name, "").strip() for name in _SECRET_ENV]
    return [v for v in values if len(v) >= 8]


def redact(text: str, extra_secrets: Iterable[str] = ()) -> str:
    """Return ``text`` with token-shaped strings and secrets replaced: the configured ones
    (environment) and ``extra_secrets`` (e.g. the token a caller is using, wherever it
    came from), whatever their shape."""
    if not text:
        return text
    secrets = {*_configured_secrets(), *(s.strip() for s in extra_secrets)}
    # longest first: a secret containing another is replaced whole
    for secret in sorted((s for s in secrets if len(s) >= 8), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return _SHAPES.sub(REDACTED, text)


class RedactingFilter(logging.Filter):
    """Logging filter that redacts the message, its arguments and exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not lose the log line
            message = str(record.msg)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        record.msg = redact(message)
        record.args = None
        return True


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Attach the filter to every handler of ``logger`` (root by default).

    Filters on handlers (not loggers) also see records propagated from child loggers.
    """
    target = logger or logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
