"""Probing a stored recording at submit (every route): is it audio, how long is it?"""

from __future__ import annotations

from diarq.api.errors import ApiError
from diarq.shared.errors import AudioError
from diarq.shared.settings import Settings
from diarq.shared.storage import Storage, UploadWriter

# AudioError codes from probing that mean "this is not audio at all"
_NOT_AUDIO = {"audio_not_audio"}


def probe_file(storage: Storage, key: str, settings: Settings, filename: str | None,
               writer: UploadWriter | None = None):  # noqa: ANN201 (AudioProbe)
    """Duration and codec of a stored upload; AudioError when it is not usable audio.
    Object storage: the object is read with ranged GETs (its headers only), or, for an
    upload the API still holds in memory (``writer``: smaller than one part), that copy."""
    import io

    from diarq.shared.media import probe_upload

    local = storage.local_path(key)
    if local is not None:
        return probe_upload(local, max_seconds=settings.max_audio_seconds, filename=filename)
    held = writer.in_memory() if writer is not None else None
    if held is not None:
        return probe_upload(io.BytesIO(held), max_seconds=settings.max_audio_seconds,
                            filename=filename)
    try:
        source = storage.open(key)
    except FileNotFoundError:
        raise AudioError("the upload is missing from storage; send it again",
                         code="audio_missing") from None
    with source:
        return probe_upload(source, max_seconds=settings.max_audio_seconds, filename=filename)


def probe_error_response(exc: AudioError) -> ApiError:
    status = 415 if exc.code in _NOT_AUDIO else exc.http_status
    if exc.code == "audio_too_long":
        status = 422  # the bytes were acceptable (413 is for size); the duration is not
    return ApiError(exc.message, code=exc.code, http_status=status)
