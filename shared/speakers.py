"""Speaker display names given after the fact (PATCH /v1/jobs/{id}/speakers).

Names are kept per job (``jobs.speaker_names``, a map label -> name) and applied when a
result is read, never written into the result row: dedupe copies share that row, and the
labels (``SPEAKER_00``) stay what machines key on. A rename wins over the name that
``participants`` gave at submit; removing it brings that name back.
"""

from __future__ import annotations

from typing import Any

from diarq.shared.errors import InvalidOptions

MAX_NAME_CHARS = 100


def clean_name(value: object, label: str) -> str | None:
    """One display name: one line of printable text, at most MAX_NAME_CHARS; None or ""
    removes the rename."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidOptions(f"the name for {label} must be a string or null",
                             code="invalid_speakers")
    name = " ".join("".join(ch if ch.isprintable() else " " for ch in value).split())
    if len(name) > MAX_NAME_CHARS:
        raise InvalidOptions(f"the name for {label} is longer than {MAX_NAME_CHARS} "
                             "characters; shorten it", code="invalid_speakers")
    return name or None


def parse_renames(body: Any, labels: list[str]) -> dict[str, str | None]:
    """The renames of a request body: ``{"SPEAKER_00": "Anna", "SPEAKER_01": null}`` (JSON
    merge patch: null removes a rename) or ``[{"id": "SPEAKER_00", "name": "Anna"}]``.
    ``labels``: the job's speaker ids; any other label is refused."""
    pairs: list[tuple[object, object]]
    if isinstance(body, dict):
        pairs = list(body.items())
    elif isinstance(body, list) and all(isinstance(item, dict) and "id" in item
                                        for item in body):
        pairs = [(item["id"], item.get("name")) for item in body]
    else:
        raise InvalidOptions('send a JSON object {"SPEAKER_00": "Anna"} or a list '
                             '[{"id": "SPEAKER_00", "name": "Anna"}]', code="invalid_speakers")
    if not pairs:
        raise InvalidOptions("name at least one speaker", code="invalid_speakers")
    known = set(labels)
    out: dict[str, str | None] = {}
    for label, value in pairs:
        if not isinstance(label, str) or label not in known:
            shown = ", ".join(labels) or "none (the result found no speakers)"
            raise InvalidOptions(f"unknown speaker {str(label)[:40]!r}; this job's speakers "
                                 f"are: {shown}", code="invalid_speakers")
        out[label] = clean_name(value, label)
    return out


def merge_renames(stored: dict[str, str] | None,
                  renames: dict[str, str | None]) -> dict[str, str] | None:
    """``stored`` with ``renames`` applied (None values remove); None when empty."""
    merged = dict(stored or {})
    for label, name in renames.items():
        if name is None:
            merged.pop(label, None)
        else:
            merged[label] = name
    return merged or None


def apply_names(data: dict[str, Any], names: dict[str, str] | None) -> dict[str, Any]:
    """Result data with the job's renames in ``speakers[].name`` (a new dict; ``data``,
    which may be a shared row, is not changed)."""
    if not names:
        return data
    speakers = [{**s, "name": names.get(s.get("id"), s.get("name"))}
                for s in data.get("speakers") or []]
    return {**data, "speakers": speakers}
