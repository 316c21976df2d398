"""Errors a user can act on: each has a stable ``code`` and a message saying what to do."""

from __future__ import annotations


class DiarqError(Exception):
    """Base error. ``code`` is stable (clients switch on it); ``message`` is for people."""

    code = "internal_error"
    http_status = 500

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        if http_status:
            self.http_status = http_status

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class ConfigError(DiarqError):
    code = "config_invalid"


class InvalidOptions(DiarqError):
    code = "invalid_options"
    http_status = 422
    fields: list[str] = []  # the options at fault, where known (parse_options)


class AudioError(DiarqError):
    """The input is not usable audio (empty, not audio, truncated...)."""

    code = "audio_invalid"
    http_status = 422


class ModelError(DiarqError):
    """Model loading failed; the code says why (token_missing, token_invalid, ...)."""

    code = "model_error"
    http_status = 503
