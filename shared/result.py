"""The result schema (DESIGN §3), versioned. One serializer: ``Result.to_dict()``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, PrivateAttr

SCHEMA_VERSION = 1


class Word(BaseModel):
    word: str
    start: float | None
    end: float | None
    score: float | None = None
    speaker: str | None = None


class Segment(BaseModel):
    start: float
    end: float
    speaker: str | None
    text: str
    words: list[Word] = Field(default_factory=list)
    # what Whisper reported for the decoding window this text came from (faster-whisper;
    # None where the backend does not say); a segment split at a speaker change keeps
    # the values of the window it was cut from
    avg_logprob: float | None = None
    compression_ratio: float | None = None
    no_speech_prob: float | None = None
    temperature: float | None = None


class Turn(BaseModel):
    start: float
    end: float
    speaker: str


class Speaker(BaseModel):
    id: str
    name: str | None = None
    talk_time: float = 0.0
    # multichannel recordings: the channel (1-based) this speaker was recorded on
    channel: int | None = None


class AudioInfo(BaseModel):
    duration: float
    sample_rate: int


class Result(BaseModel):
    """A job's result. ``voices`` (the speakers' voice embeddings, when the diarizer made
    them) rides along for the worker to store in the database; it is not part of the
    JSON (biometric data: diarq.shared.voices)."""

    schema_version: int = SCHEMA_VERSION
    job_id: str | None = None
    audio: AudioInfo
    language: str | None
    speakers: list[Speaker] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)
    # overlapping turns: several speakers at once where people talk over each other
    diarization: list[Turn] = Field(default_factory=list)
    # the same speakers, one at a time: where turns overlap, the dominant speaker
    exclusive_diarization: list[Turn] = Field(default_factory=list)
    models: dict[str, Any] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)

    _voices: Any = PrivateAttr(default=None)

    @property
    def voices(self) -> Any:
        """The VoiceSet of the recording's speakers, or None."""
        return self._voices

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Result:
        return cls.model_validate(data)

    def speaker_label(self, speaker_id: str | None) -> str:
        """Display name for a speaker id (participant name when given)."""
        if speaker_id is None:
            return "UNKNOWN"
        for s in self.speakers:
            if s.id == speaker_id:
                return s.name or s.id
        return speaker_id
