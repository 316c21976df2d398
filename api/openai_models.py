"""OpenAI's ``model`` field -> the diarq model setup (documented in docs/openai.md).

* OpenAI's transcription model names (``whisper-1``, ``gpt-4o-transcribe``,
  ``gpt-4o-mini-transcribe``, ``gpt-4o-transcribe-diarize``, ...) run the configured
  profile with its configured Whisper model (DIARQ_PROFILE, DIARQ_ASR_MODEL);
  ``gpt-4o-transcribe-diarize`` also diarizes whatever the response format.
* A faster-whisper model name runs that model, if the profile has it: offline, the
  models it carries (``base``, ``tiny.en``); hub, any faster-whisper name
  (``large-v3``, ``large-v3-turbo``, ``distil-large-v3``...).
* Anything else is a 400 (``unknown_model``) that lists what this server takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from diarq.api.errors import ApiError
from diarq.shared.asr_models import FASTER_WHISPER_MODELS, OFFLINE_ASR_MODELS
from diarq.shared.settings import Settings

# OpenAI's names for its speech-to-text models (openai-python's AudioModel, 2026)
OPENAI_MODELS = (
    "whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15", "gpt-4o-transcribe-diarize", "gpt-transcribe",
)
DIARIZE_MODELS = frozenset({"gpt-4o-transcribe-diarize"})


@dataclass(frozen=True)
class ModelChoice:
    asr_model: str | None  # None: the configured DIARQ_ASR_MODEL
    diarize: bool  # the model itself asks for speakers


def served_models(settings: Settings) -> tuple[str, ...]:
    """Every ``model`` value this server accepts."""
    local = OFFLINE_ASR_MODELS if settings.profile == "offline" else FASTER_WHISPER_MODELS
    return OPENAI_MODELS + local


def resolve_model(name: str, settings: Settings) -> ModelChoice:
    """``model`` -> what runs; ApiError 400 ``unknown_model`` for other names."""
    name = name.strip()
    if name in OPENAI_MODELS:
        return ModelChoice(asr_model=None, diarize=name in DIARIZE_MODELS)
    if name in served_models(settings):
        return ModelChoice(asr_model=name, diarize=False)
    shown = name[:80] or "(empty)"
    raise ApiError(f"model {shown!r} is not served here; use one of: "
                   f"{', '.join(served_models(settings))} (OpenAI's names run the "
                   f"configured {settings.profile} profile)", code="unknown_model",
                   http_status=400)
