"""Options of one transcription job, validated the same way by CLI, API and worker."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from diarq.shared.errors import InvalidOptions

MAX_SPEAKERS = 32
MAX_NAME_CHARS = 100


class JobOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    num_speakers: int | None = Field(None, ge=1, le=MAX_SPEAKERS)
    min_speakers: int | None = Field(None, ge=1, le=MAX_SPEAKERS)
    max_speakers: int | None = Field(None, ge=1, le=MAX_SPEAKERS)
    language: str | None = Field(
        None, min_length=2, max_length=8, pattern=r"^[a-z]{2,3}(-[A-Za-z]+)?$"
    )
    diarize: bool = True
    align: bool = True
    asr_model: str | None = Field(None, max_length=200)
    participants: list[str] | None = Field(None, max_length=MAX_SPEAKERS)
    prompt: str | None = Field(None, max_length=2000)

    @field_validator("participants", mode="before")
    @classmethod
    def _split_names(cls, v: object) -> object:
        return participant_names(v)

    @model_validator(mode="after")
    def _consistent(self) -> JobOptions:
        lo, hi, n = self.min_speakers, self.max_speakers, self.num_speakers
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_speakers ({lo}) is greater than max_speakers ({hi})")
        if n is not None and ((lo is not None and n < lo) or (hi is not None and n > hi)):
            raise ValueError(f"num_speakers ({n}) is outside min_speakers..max_speakers")
        return self


def participant_names(value: object) -> object:
    """The ``participants`` field as a list of names, from any of the shapes clients send:

    - ``Anna, Boris`` (a form field or CLI flag): split on commas;
    - a JSON list of strings, ``["Anna", "Boris"]``;
    - a JSON list of objects with a name, ``[{"name": "Anna"}, {"name": "Boris"}]`` (the
      original client's shape; other keys of an object are ignored);
    - an already-parsed list of those (repeated form fields, JSON bodies).

    A text that starts with ``[`` or ``{`` is JSON or an error, never names split on its
    commas (``[{"name": "John"}`` is not a name). Blank names are dropped; no names at
    all is None. Anything else is left for pydantic to refuse.
    """
    if isinstance(value, str):
        text = value.strip()
        if text[:1] in ("[", "{"):
            try:
                value = json.loads(text)
            except ValueError:
                raise ValueError("not valid JSON; send a JSON list such as "
                                 '[{"name": "Anna"}, {"name": "Boris"}] or ["Anna", "Boris"], '
                                 "or names separated by commas: Anna, Boris") from None
            if not isinstance(value, list):
                raise ValueError('must be a list, e.g. [{"name": "Anna"}, {"name": "Boris"}]')
        else:
            value = text.split(",")
    if not isinstance(value, list):
        return value
    names = []
    for item in value:
        if isinstance(item, dict):
            item = item.get("name")
        if not isinstance(item, str):
            raise ValueError('each participant must be a name or an object {"name": "..."}')
        if item.strip():
            names.append(item.strip())
    if any(len(name) > MAX_NAME_CHARS for name in names):
        raise ValueError(f"each participant name must be at most {MAX_NAME_CHARS} characters")
    return names or None


def parse_options(data: dict) -> JobOptions:
    """Validate raw options; raise InvalidOptions with a readable message."""
    clean = {k: v for k, v in data.items() if v is not None and v != ""}
    try:
        return JobOptions(**clean)
    except ValidationError as exc:
        parts = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "options"
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {msg}")
        raise InvalidOptions("invalid options: " + "; ".join(parts)) from None


# a model name ("base") or, for the hub profile, a hub id ("Systran/faster-whisper-small")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?")


def check_job_model(asr_model: str | None, profile: str) -> None:
    """A job submitted to the service may name a model, not a directory of the worker
    machine: a path would let any API user make workers open (and report on) arbitrary
    server paths. Local model directories are the operator's choice (DIARQ_ASR_MODEL, or
    ``diarq process`` on one's own machine). Raises InvalidOptions (422)."""
    if not asr_model:
        return
    hub_id = "/" in asr_model and profile == "hub"
    if _MODEL_NAME.fullmatch(asr_model) and ".." not in asr_model and \
            ("/" not in asr_model or hub_id):
        return
    raise InvalidOptions("asr_model must be a model name such as base or tiny.en (or a hub id "
                         "with DIARQ_PROFILE=hub); a local model directory can only be "
                         "configured by the operator (DIARQ_ASR_MODEL)",
                         code="asr_model_not_allowed")
