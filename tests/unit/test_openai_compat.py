"""POST /v1/audio/transcriptions without services: OpenAI's response formats (pure), the
model mapping, and every refusal in OpenAI's error shape with nothing left behind.

The app runs on SQLite and the filesystem broker in a temporary directory; no worker
runs, so a valid request waits out its (short) bound: that is the 504 test. The route
with a real worker and the official SDK is tests/integration/test_openai_compat.py.
"""

from __future__ import annotations

import base64
import io
import subprocess
from pathlib import Path

import pytest

from diarq.api.openai_formats import diarized_json, letters, render_openai, verbose_json
from diarq.api.openai_models import resolve_model
from diarq.shared.result import AudioInfo, Result, Segment, Speaker, Word
from diarq.shared.settings import load_settings
from diarq.shared.storage import audio_key, reference_key

DATA = Path(__file__).resolve().parent.parent / "data"
PATH = "/v1/audio/transcriptions"


def _result(**extra) -> Result:  # noqa: ANN003
    words = [Word(word="Hello", start=0.0, end=0.4, score=0.9),
             Word(word="there.", start=0.5, end=0.9, score=0.8),
             Word(word="1984", start=None, end=None)]
    segs = [Segment(start=0.0, end=0.9, speaker="SPEAKER_00", text="Hello there. 1984",
                    words=words, avg_logprob=-0.2, compression_ratio=1.1, no_speech_prob=0.01,
                    temperature=0.0),
            Segment(start=1.0, end=2.0, speaker="SPEAKER_01", text="Hi.", words=[]),
            Segment(start=2.0, end=3.0, speaker="SPEAKER_02", text="Yes.", words=[])]
    speakers = [Speaker(id="SPEAKER_00", name=None), Speaker(id="SPEAKER_01", name="Anna"),
                Speaker(id="SPEAKER_02", name=None)]
    return Result(audio=AudioInfo(duration=3.2, sample_rate=16000), language="en",
                  segments=segs, speakers=speakers, **extra)


# --- formats ---------------------------------------------------------------------------

def test_letters_continue_past_z():
    assert [letters(i) for i in (0, 1, 25, 26, 27, 51, 52)] == [
        "A", "B", "Z", "AA", "AB", "AZ", "BA"]


def test_diarized_json_names_known_speakers_and_letters_the_rest():
    body = diarized_json(_result())
    assert body["task"] == "transcribe" and body["duration"] == 3.2
    assert body["text"] == "Hello there. 1984 Hi. Yes."
    assert [(s["type"], s["id"], s["speaker"]) for s in body["segments"]] == [
        ("transcript.text.segment", "seg_0", "A"), ("transcript.text.segment", "seg_1", "Anna"),
        ("transcript.text.segment", "seg_2", "B")]
    assert body["usage"] == {"type": "duration", "seconds": 4}


def test_verbose_json_segments_and_words_as_asked():
    body = verbose_json(_result(), ["word"])
    assert body["language"] == "english" and "segments" not in body
    assert body["words"] == [{"word": "Hello", "start": 0.0, "end": 0.4},
                             {"word": "there.", "start": 0.5, "end": 0.9}]
    seg = verbose_json(_result())["segments"][0]
    assert seg == {"id": 0, "seek": 0, "start": 0.0, "end": 0.9, "text": "Hello there. 1984",
                   "tokens": [], "temperature": 0.0, "avg_logprob": -0.2,
                   "compression_ratio": 1.1, "no_speech_prob": 0.01}
    assert verbose_json(_result())["segments"][1]["avg_logprob"] is None
    assert "words" not in verbose_json(_result(), ["segment"])


def test_text_json_srt_vtt():
    assert render_openai(_result(), "json")[0]["text"] == "Hello there. 1984 Hi. Yes."
    text, ctype = render_openai(_result(), "text")
    assert text == "Hello there. 1984 Hi. Yes.\n" and ctype.startswith("text/plain")
    srt, _ = render_openai(_result(), "srt")
    assert srt.startswith("1\n00:00:00,000 --> 00:00:00,900\n[A] Hello there.")
    assert "[Anna] Hi." in srt
    vtt, ctype = render_openai(_result(), "vtt")
    assert vtt.startswith("WEBVTT") and "<v B>Yes." in vtt and ctype.startswith("text/vtt")


def test_srt_without_diarization_has_no_labels():
    plain = _result().model_copy(update={"speakers": [], "segments": [
        s.model_copy(update={"speaker": None}) for s in _result().segments]})
    assert "[" not in render_openai(plain, "srt")[0]


# --- models ----------------------------------------------------------------------------

def test_model_mapping_per_profile():
    offline, hub = load_settings(profile="offline"), load_settings(profile="hub")
    assert resolve_model("whisper-1", offline).asr_model is None
    assert resolve_model("gpt-4o-transcribe-diarize", offline).diarize
    assert not resolve_model("gpt-4o-transcribe", offline).diarize
    assert resolve_model("tiny.en", offline).asr_model == "tiny.en"
    assert resolve_model("large-v3", hub).asr_model == "large-v3"
    from diarq.api.errors import ApiError

    for name, settings in (("large-v3", offline), ("gpt-5", hub), ("../models", hub)):
        with pytest.raises(ApiError) as info:
            resolve_model(name, settings)
        assert info.value.code == "unknown_model" and info.value.http_status == 400


def test_model_and_language_tables_match_the_installed_libraries():
    from faster_whisper.utils import available_models
    from whisperx.utils import LANGUAGES

    from diarq.shared.asr_models import FASTER_WHISPER_MODELS, LANGUAGE_NAMES

    assert tuple(available_models()) == FASTER_WHISPER_MODELS
    assert LANGUAGE_NAMES == LANGUAGES


# --- the route without a worker ----------------------------------------------------------

@pytest.fixture
def app(tmp_path: Path):  # noqa: ANN201
    from diarq.api import create_app
    from diarq.shared.db import upgrade

    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                             broker_url=f"filesystem://{tmp_path / 'broker'}",
                             storage_dir=tmp_path / "storage", auth="off",
                             openai_wait_s=0.3)
    upgrade(settings)
    return create_app({"DIARQ_SETTINGS": settings, "TESTING": True})


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, str]:  # noqa: ANN001
    """Data URLs: a 6 s voice clip, a 1 s one, and a text file."""
    d = tmp_path_factory.mktemp("clips")
    subprocess.run(["sox", str(DATA / "sample.wav"), str(d / "six.wav"), "trim", "22", "6"],
                   check=True)
    subprocess.run(["sox", str(DATA / "sample.wav"), str(d / "one.wav"), "trim", "22", "1"],
                   check=True)

    def url(data: bytes, kind: str = "audio/wav") -> str:
        return f"data:{kind};base64," + base64.b64encode(data).decode()

    return {"six": url((d / "six.wav").read_bytes()), "one": url((d / "one.wav").read_bytes()),
            "text": url(b"these are not the samples you are looking for", "text/plain")}


def _post(app, fields: dict | None = None, *, file: Path | None = DATA / "jfk.wav"):  # noqa: ANN001, ANN202
    data = {"model": "whisper-1", **(fields or {})}
    if file is not None:
        data["file"] = (io.BytesIO(file.read_bytes()), file.name)
    return app.test_client().post(PATH, data=data, content_type="multipart/form-data")


def _openai_error(resp) -> dict:  # noqa: ANN001
    from tests.integration.services import check_spec

    body = check_spec(resp, PATH, "POST")
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def _left_behind(app) -> tuple[int, list[Path]]:  # noqa: ANN001
    from sqlalchemy import func, select

    from diarq.shared.db import session_scope
    from diarq.shared.orm import Job

    settings = app.extensions["diarq"].settings
    with session_scope(settings) as session:
        jobs = session.scalar(select(func.count()).select_from(Job))
    files = [p for p in Path(settings.storage_dir).rglob("*") if p.is_file()]
    return jobs, files


@pytest.mark.parametrize("fields,code,param", [
    ({"stream": "true"}, "streaming_unsupported", "stream"),
    ({"model": "gpt-5"}, "unknown_model", None),
    ({"response_format": "xml"}, "invalid_value", "response_format"),
    ({"timestamp_granularities[]": ["word", "char"]}, "invalid_value",
     "timestamp_granularities"),
    ({"include[]": "logprobs"}, "unsupported_parameter", "include"),
    ({"colour": "blue"}, "unsupported_parameter", "colour"),
    ({"temperature": "7"}, "invalid_value", "temperature"),
    ({"language": "english!"}, "invalid_options", "language"),
    ({"known_speaker_names[]": ["Anna", "Boris"], "known_speaker_references[]": "six"},
     "reference_names_mismatch", "known_speaker_names"),
    ({"known_speaker_references[]": "six"}, "reference_names_mismatch",
     "known_speaker_names"),
    ({"known_speaker_names[]": list("ABCDE"), "known_speaker_references[]": ["six"] * 5},
     "too_many_references", "known_speaker_references"),
    ({"known_speaker_names[]": "Anna", "known_speaker_references[]": "text"},
     "reference_not_audio", "known_speaker_references"),
    ({"known_speaker_names[]": "Anna", "known_speaker_references[]": "one"},
     "reference_duration", "known_speaker_references"),
    ({"known_speaker_names[]": "Anna", "known_speaker_references[]": "not a data url"},
     "reference_invalid", "known_speaker_references"),
    ({"multichannel": "true"}, "audio_not_multichannel", None),
    ({"multichannel": "true", "num_speakers": "2"}, "invalid_options", None),
])
def test_bad_requests_are_400_in_openai_shape_and_leave_nothing(app, clips, fields, code,
                                                                param):  # noqa: ANN001
    fields = {k: ([clips.get(x, x) for x in v] if isinstance(v, list) else clips.get(v, v))
              for k, v in fields.items()}
    resp = _post(app, fields)
    assert resp.status_code == 400, resp.data[:300]
    err = _openai_error(resp)
    assert err["code"] == code and err["type"] == "invalid_request_error"
    if param:
        assert err["param"] == param
    assert _left_behind(app) == (0, [])


def test_missing_file_and_wrong_method_keep_the_shape(app):  # noqa: ANN001
    resp = _post(app, file=None)
    assert resp.status_code == 400 and _openai_error(resp)["param"] == "file"
    # answers made outside the view (routing) are reshaped too
    resp = app.test_client().get(PATH)
    body = resp.get_json()
    assert resp.status_code == 405 and body["error"]["type"] == "invalid_request_error"


def test_unauthenticated_request_gets_openai_shape(tmp_path: Path):
    from diarq.api import create_app
    from diarq.shared.db import upgrade

    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
                             broker_url=f"filesystem://{tmp_path / 'broker'}",
                             storage_dir=tmp_path / "storage", auth="on")
    upgrade(settings)
    app = create_app({"DIARQ_SETTINGS": settings, "TESTING": True})
    resp = _post(app)
    assert resp.status_code == 401
    err = _openai_error(resp)
    assert err["type"] == "authentication_error" and err["code"] == "unauthorized"
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


def test_past_the_bound_504_and_the_same_request_waits_for_the_same_job(app, clips):  # noqa: ANN001
    # no worker runs: the job stays queued, the request waits 0.3 s and answers 504
    fields = {"response_format": "diarized_json", "known_speaker_names[]": "Sheila",
              "known_speaker_references[]": clips["six"], "hotwords": "Chicago, Texas"}
    first = _post(app, fields)
    assert first.status_code == 504 and first.headers["x-should-retry"] == "true"
    err = _openai_error(first)
    assert err["code"] == "transcription_timeout" and err["type"] == "server_error"
    again = _post(app, fields)
    assert again.status_code == 504
    job_id = err["message"].split("as job ")[1].split(":")[0]
    assert job_id in _openai_error(again)["message"]
    jobs, files = _left_behind(app)
    assert jobs == 1  # the retry joined the queued job instead of adding one
    storage = Path(app.extensions["diarq"].settings.storage_dir)
    assert sorted(p.relative_to(storage).as_posix() for p in files if "broker" not in str(p)) \
        == [audio_key(job_id), reference_key(job_id, 0)]  # the references go with the job
    status = app.test_client().get(f"/v1/jobs/{job_id}").get_json()
    assert status["status"] == "queued"
    opts = status["options"]
    assert opts["hotwords"] == ["Chicago", "Texas"] and opts["diarize"] is True
    assert [r["name"] for r in opts["speaker_references"]] == ["Sheila"]
    # deleting the job deletes its voice reference with its audio
    assert app.test_client().delete(f"/v1/jobs/{job_id}").status_code == 204
    assert not (storage / f"references/{job_id[:2]}/{job_id}").exists()


def test_names_without_references_name_speakers_in_order_of_appearance(app):  # noqa: ANN001
    resp = _post(app, {"known_speaker_names[]": ["Anna", "Boris"], "keywords[]": ["Kraków"]})
    assert resp.status_code == 504  # no worker: the bound passes
    job_id = _openai_error(resp)["message"].split("as job ")[1].split(":")[0]
    opts = app.test_client().get(f"/v1/jobs/{job_id}").get_json()["options"]
    assert opts["participants"] == ["Anna", "Boris"] and "speaker_references" not in opts
    assert opts["diarize"] is True and opts["hotwords"] == ["Kraków"]


def test_oversized_reference_field_is_413_and_leaves_nothing(app):  # noqa: ANN001
    huge = "data:audio/wav;base64," + "A" * (5 * 1024 * 1024)
    resp = _post(app, {"known_speaker_names[]": "Anna", "known_speaker_references[]": huge})
    assert resp.status_code == 413
    err = _openai_error(resp)
    assert err["code"] == "reference_too_large" and err["param"] == "known_speaker_references"
    assert _left_behind(app) == (0, [])
