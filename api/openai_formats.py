"""A diarq :class:`Result` in the response formats of OpenAI's transcription API (pure).

* ``json``: ``{"text", "usage"}``; ``text``: the text alone;
* ``srt`` / ``vtt``: diarq's renderers (shared/renderers.py), speakers as labels below
  when the job was diarized;
* ``verbose_json``: ``task, language`` (Whisper's English name of the language, as
  OpenAI reports it), ``duration, text, segments`` and, with ``word`` in
  ``timestamp_granularities[]``, ``words``;
* ``diarized_json``: ``task, duration, text, segments`` with
  ``type: "transcript.text.segment"`` and a ``speaker`` each.

Speaker labels: a known name (voice reference, ``known_speaker_names[]`` or
participants) where there is one, else ``A``, ``B``, ... in order of first appearance
(multichannel: channel order), as OpenAI labels unknown speakers.

Fields diarq does not have are said so: a verbose segment's ``tokens`` is empty (token
ids are not kept), its ``seek`` is the segment start in 10 ms frames (Whisper's window
offset is not kept), and ``avg_logprob``, ``compression_ratio``, ``no_speech_prob``,
``temperature`` are Whisper's values for the window the segment came from, null where
the backend does not report them (WhisperX).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from diarq.shared.asr_models import LANGUAGE_NAMES
from diarq.shared.renderers import CONTENT_TYPES, render
from diarq.shared.result import Result, Segment

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt", "diarized_json")
_NO_SPACE_LANGUAGES = {"zh", "ja", "th", "lo", "km", "my", "yue", "bo"}


def letters(index: int) -> str:
    """0 -> A, 25 -> Z, 26 -> AA: OpenAI's labels for speakers without a name."""
    out = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        out = chr(ord("A") + rem) + out
    return out


def speaker_labels(result: Result) -> dict[str, str]:
    """Speaker id -> label: its name, else the next letter (speakers in result order)."""
    labels: dict[str, str] = {}
    unnamed = 0
    for speaker in result.speakers:
        if speaker.name:
            labels[speaker.id] = speaker.name
        else:
            labels[speaker.id] = letters(unnamed)
            unnamed += 1
    return labels


def full_text(result: Result) -> str:
    joiner = "" if (result.language or "").split("-")[0] in _NO_SPACE_LANGUAGES else " "
    return joiner.join(s.text.strip() for s in result.segments if s.text.strip())


def _usage(result: Result) -> dict[str, Any]:
    # OpenAI bills whisper-1 by the second; this is the same measure of the request
    return {"type": "duration", "seconds": math.ceil(result.audio.duration)}


def _verbose_segment(index: int, seg: Segment) -> dict[str, Any]:
    return {
        "id": index,
        "seek": int(round(seg.start * 100)),
        "start": seg.start,
        "end": seg.end,
        "text": seg.text,
        "tokens": [],
        "temperature": seg.temperature,
        "avg_logprob": seg.avg_logprob,
        "compression_ratio": seg.compression_ratio,
        "no_speech_prob": seg.no_speech_prob,
    }


def _words(segments: Iterable[Segment]) -> list[dict[str, Any]]:
    # untimed words (numerals WhisperX's aligner skips) have no place in a timed list
    return [{"word": w.word, "start": w.start, "end": w.end}
            for seg in segments for w in seg.words
            if w.start is not None and w.end is not None]


def verbose_json(result: Result, granularities: Iterable[str] = ()) -> dict[str, Any]:
    wanted = set(granularities) or {"segment"}
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": LANGUAGE_NAMES.get((result.language or "").split("-")[0],
                                       result.language or ""),
        "duration": result.audio.duration,
        "text": full_text(result),
    }
    if "segment" in wanted:
        body["segments"] = [_verbose_segment(i, s) for i, s in enumerate(result.segments)]
    if "word" in wanted:
        body["words"] = _words(result.segments)
    body["usage"] = _usage(result)
    return body


def diarized_json(result: Result) -> dict[str, Any]:
    labels = speaker_labels(result)
    return {
        "task": "transcribe",
        "duration": result.audio.duration,
        "text": full_text(result),
        "segments": [
            {"type": "transcript.text.segment", "id": f"seg_{i}", "start": s.start,
             "end": s.end, "text": s.text,
             # a segment the diarization left without a speaker: OpenAI's field is a string
             "speaker": labels.get(s.speaker or "", "unknown")}
            for i, s in enumerate(result.segments)
        ],
        "usage": _usage(result),
    }


def with_labels(result: Result) -> Result:
    """``result`` with every speaker's display name set to its OpenAI label."""
    labels = speaker_labels(result)
    return result.model_copy(update={"speakers": [
        s.model_copy(update={"name": labels[s.id]}) for s in result.speakers]})


def render_openai(result: Result, fmt: str,
                  granularities: Iterable[str] = ()) -> tuple[str | dict[str, Any], str]:
    """(body, content type) of ``result`` in ``fmt`` (one of RESPONSE_FORMATS)."""
    if fmt == "json":
        return {"text": full_text(result), "usage": _usage(result)}, "application/json"
    if fmt == "text":
        return full_text(result) + "\n", "text/plain; charset=utf-8"
    if fmt in ("srt", "vtt"):
        return render(with_labels(result), fmt), CONTENT_TYPES[fmt]
    if fmt == "verbose_json":
        return verbose_json(result, granularities), "application/json"
    if fmt == "diarized_json":
        return diarized_json(result), "application/json"
    raise ValueError(f"unknown response format {fmt!r}")
