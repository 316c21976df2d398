"""Options of one transcription job, validated the same way by CLI, API and worker."""

from __future__ import annotations

import json
import re

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from diarq.shared.errors import InvalidOptions

MAX_SPEAKERS = 32
MAX_NAME_CHARS = 100
# voice references per job (OpenAI's limit for known_speaker_references[])
MAX_REFERENCES = 4
# hotwords: faster-whisper puts them into the decoder prompt, which holds at most 223
# tokens (half the decoder's context); more words than this could not all be seen
MAX_HOTWORDS = 100


class SpeakerReference(BaseModel):
    """A voice sample of one known person, stored with the job (shared/storage.py); the
    options carry its name and the digest of the sample, never the audio or a path."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=MAX_NAME_CHARS)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


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
    # names and terms the transcription should recognise (faster-whisper's hotwords)
    hotwords: list[str] | None = Field(None, max_length=MAX_HOTWORDS)
    # each channel of the recording is one speaker, transcribed on its own
    multichannel: bool = False
    # known voices: the diarized speaker matching a reference best takes its name
    speaker_references: list[SpeakerReference] | None = Field(None, max_length=MAX_REFERENCES)

    @field_validator("participants", mode="before")
    @classmethod
    def _participant_names(cls, v: object) -> object:
        return participant_names(v)

    @field_validator("hotwords", mode="before")
    @classmethod
    def _split_hotwords(cls, v: object) -> object:
        # "Anna, Kubernetes" from a form field or CLI flag -> ["Anna", "Kubernetes"]
        if isinstance(v, str):
            v = [p.strip() for p in v.split(",")]
        if isinstance(v, list):
            v = [str(p).strip() for p in v if str(p).strip()] or None
            if v and any(len(p) > MAX_NAME_CHARS for p in v):
                raise ValueError(f"each hotword must be at most {MAX_NAME_CHARS} characters")
        return v

    def fingerprint(self) -> dict:
        """The options as hashed for dedupe and Idempotency-Key checks: every field,
        defaults included, except fields added later while they hold their defaults, so
        that the hashes of jobs stored before those fields existed stay the same."""
        return self._without_later_defaults(self.model_dump(mode="json"))

    def stored(self) -> dict:
        """The options as a job row keeps (and the API shows) them: those given, and the
        defaults of the original fields (fields added later only when set)."""
        return self._without_later_defaults(self.model_dump(mode="json", exclude_none=True))

    def _without_later_defaults(self, data: dict) -> dict:
        for name in _LATER_FIELDS:
            if name in data and data[name] == type(self).model_fields[name].default:
                del data[name]
        return data

    @model_validator(mode="after")
    def _consistent(self) -> JobOptions:
        lo, hi, n = self.min_speakers, self.max_speakers, self.num_speakers
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"min_speakers ({lo}) is greater than max_speakers ({hi})")
        if n is not None and ((lo is not None and n < lo) or (hi is not None and n > hi)):
            raise ValueError(f"num_speakers ({n}) is outside min_speakers..max_speakers")
        if self.multichannel and (n, lo, hi) != (None, None, None):
            raise ValueError("multichannel: each channel is one speaker; leave out "
                             "num_speakers, min_speakers and max_speakers")
        if self.speaker_references and self.participants:
            raise ValueError("give names either with voice references or as participants, "
                             "not both")
        return self


# fields added after options were first hashed (see JobOptions.fingerprint)
_LATER_FIELDS = ("hotwords", "multichannel", "speaker_references")


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
        parts, fields = [], []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "options"
            msg = err["msg"].removeprefix("Value error, ")
            parts.append(f"{where}: {msg}")
            if err["loc"]:
                fields.append(str(err["loc"][0]))
        error = InvalidOptions("invalid options: " + "; ".join(parts))
        error.fields = fields  # the options at fault, for APIs that name them
        raise error from None


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


def check_multichannel(options: JobOptions, channels: int, shown: str) -> int:
    """How many channels the pipeline decodes: 1 (downmixed), or every channel of a
    multichannel recording. InvalidOptions (``audio_not_multichannel``) when
    ``multichannel`` is asked of a recording without one channel per speaker."""
    if not options.multichannel:
        return 1
    if channels < 2:
        raise InvalidOptions(
            f"{shown} has {channels or 'no'} audio channel{'s' if channels != 1 else ''}; "
            "multichannel=true needs a recording with one channel per speaker (2 or more): "
            "send the multitrack file, or leave multichannel out to diarize the mix",
            code="audio_not_multichannel")
    if channels > MAX_SPEAKERS:
        raise InvalidOptions(
            f"{shown} has {channels} channels; multichannel=true takes at most "
            f"{MAX_SPEAKERS} (one speaker each)", code="audio_not_multichannel")
    return channels
