"""The OpenAI-compatible endpoint with the official ``openai`` Python SDK, a client no one
here wrote, against a running diarq (`diarq api` + a real worker with the offline
models), and the new job options (hotwords, multichannel) on diarq's own routes."""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path

import pytest
import requests

from tests.integration.keys import bearer, create_key_with_cli
from tests.integration.services import (
    ROOT,
    check_spec,
    real_pipeline_worker,
    running_api,
)
from tests.integration.test_jobs import submit

pytestmark = [pytest.mark.integration, pytest.mark.slow]
QUEUE = "openai"  # only this module's real worker listens here
DATA = ROOT / "tests" / "data"
SAMPLE = DATA / "sample.wav"
# sample.rttm: speaker91 ("Sheila" in sample.stm) talks alone 21.78-28.50 s
SHEILA_ALONE = (21.8, 28.4)


@pytest.fixture(scope="module")
def real_worker(settings, service_env, log_dir):  # noqa: ANN001, ANN201
    with real_pipeline_worker("openai", service_env, log_dir, QUEUE) as worker:
        yield worker


@pytest.fixture(scope="module")
def openai_key(settings, service_env) -> str:  # noqa: ANN001
    # a key of its own: dedupe (on for this server) only reuses this module's results
    return create_key_with_cli(service_env, "openai-sdk-tests")


@pytest.fixture(scope="module")
def server(real_worker, service_env, log_dir, openai_key) -> str:  # noqa: ANN001
    env = {**service_env, "DIARQ_JOB_QUEUE": QUEUE, "DIARQ_OPENAI_WAIT_S": "500",
           # formats of one request reuse its result: one pipeline run, not six
           "DIARQ_DEDUPE": "true"}
    with running_api(env, log_dir / "api-openai.log") as url:
        yield url


@pytest.fixture(scope="module")
def sdk(server, openai_key):  # noqa: ANN001, ANN201
    from openai import OpenAI

    # no retries: a test must see the first answer
    return OpenAI(api_key=openai_key, base_url=f"{server}/v1", max_retries=0, timeout=550)


@pytest.fixture(scope="module")
def audio(tmp_path_factory) -> dict[str, Path]:  # noqa: ANN001
    """Clips cut with sox from the test recordings: Sheila's voice (6 s of sample.wav
    where she talks alone), JFK's (6 s of jfk.wav), and a 2-channel call: JFK on
    channel 1, a falcon_test speaker on channel 2 from 9.5 s (overlapping JFK's last
    words), each microphone hearing the other at -24 dB."""
    d = tmp_path_factory.mktemp("openai-audio")
    out = {"sheila": d / "sheila.wav", "john": d / "john.wav", "call": d / "call.wav"}
    run = [["sox", str(SAMPLE), str(out["sheila"]), "trim", "22.0", "6.0"],
           ["sox", str(DATA / "jfk.wav"), str(out["john"]), "trim", "0.3", "6.0"],
           ["sox", str(DATA / "jfk.wav"), str(d / "one.wav"), "pad", "0", "8.9"],
           ["sox", str(DATA / "falcon_test.wav"), str(d / "two.wav"), "trim", "6.0", "5.4",
            "pad", "9.5", "4"],
           ["sox", "-M", str(d / "one.wav"), str(d / "two.wav"), str(out["call"]),
            "remix", "1v1,2v0.06", "2v1,1v0.06"]]
    for cmd in run:
        subprocess.run(cmd, check=True)
    return out


def data_url(path: Path) -> str:
    return "data:audio/wav;base64," + base64.b64encode(path.read_bytes()).decode()


def _job_result(server: str, key: str, job_id: str) -> dict:
    resp = requests.get(f"{server}/v1/jobs/{job_id}/result", headers=bearer(key), timeout=30)
    assert resp.status_code == 200, resp.text[:300]
    return resp.json()


def test_every_response_format_through_the_sdk(sdk):  # noqa: ANN001
    from openai.types.audio import Transcription, TranscriptionDiarized, TranscriptionVerbose

    with SAMPLE.open("rb") as fh:
        plain = sdk.audio.transcriptions.create(file=fh, model="whisper-1")
    assert isinstance(plain, Transcription)
    assert "chicago" in plain.text.lower() and len(plain.text.split()) > 40

    for fmt in ("text", "srt", "vtt"):
        with SAMPLE.open("rb") as fh:
            body = sdk.audio.transcriptions.create(file=fh, model="whisper-1",
                                                   response_format=fmt)
        assert isinstance(body, str) and "Chicago" in body, fmt
    with SAMPLE.open("rb") as fh:
        srt = sdk.audio.transcriptions.create(file=fh, model="whisper-1", response_format="srt")
    assert srt.startswith("1\n00:00:") and " --> " in srt and "[" not in srt  # not diarized

    with SAMPLE.open("rb") as fh:
        verbose = sdk.audio.transcriptions.create(
            file=fh, model="whisper-1", response_format="verbose_json",
            timestamp_granularities=["word", "segment"])
    assert isinstance(verbose, TranscriptionVerbose)
    assert verbose.language == "english" and 29 < verbose.duration < 31
    assert verbose.segments and verbose.words and len(verbose.words) > 40
    starts = [w.start for w in verbose.words]
    assert starts == sorted(starts) and all(w.end >= w.start for w in verbose.words)
    assert verbose.segments[0].avg_logprob is not None
    assert verbose.text == plain.text

    with SAMPLE.open("rb") as fh:
        diarized = sdk.audio.transcriptions.create(
            file=fh, model="gpt-4o-transcribe-diarize", response_format="diarized_json")
    assert isinstance(diarized, TranscriptionDiarized) and diarized.task == "transcribe"
    assert {s.speaker for s in diarized.segments} == {"A", "B"}
    assert all(s.type == "transcript.text.segment" and s.end >= s.start
               for s in diarized.segments)
    # the diarize model labels speakers in srt too
    with SAMPLE.open("rb") as fh:
        labelled = sdk.audio.transcriptions.create(
            file=fh, model="gpt-4o-transcribe-diarize", response_format="srt")
    assert "[A]" in labelled and "[B]" in labelled


def test_a_voice_reference_names_its_speaker(sdk, server, openai_key, audio):  # noqa: ANN001
    with SAMPLE.open("rb") as fh:
        raw = sdk.audio.transcriptions.with_raw_response.create(
            file=fh, model="gpt-4o-transcribe-diarize", response_format="diarized_json",
            known_speaker_names=["Sheila", "John"],
            known_speaker_references=[data_url(audio["sheila"]), data_url(audio["john"])])
    diarized = raw.parse()
    labels = {s.speaker for s in diarized.segments}
    assert "Sheila" in labels and "John" not in labels, labels
    assert labels - {"Sheila"} == {"A"}  # the other voice, not named by any reference
    # Sheila is who talks where she talks alone in the reference annotation
    lo, hi = SHEILA_ALONE
    inside = [s for s in diarized.segments if lo <= (s.start + s.end) / 2 <= hi]
    assert inside and all(s.speaker == "Sheila" for s in inside), inside
    result = _job_result(server, openai_key, raw.headers["X-Diarq-Job-Id"])
    voices = result["models"]["voice_references"]
    assert [m["name"] for m in voices["matches"]] == ["Sheila"]
    assert voices["unmatched"] == ["John"]
    assert all(score < voices["threshold"] for by_name in voices["scores"].values()
               for name, score in by_name.items() if name == "John")


def test_multichannel_call_one_speaker_per_channel(sdk, server, openai_key, audio):  # noqa: ANN001
    with audio["call"].open("rb") as fh:
        raw = sdk.audio.transcriptions.with_raw_response.create(
            file=fh, model="whisper-1", response_format="diarized_json",
            known_speaker_names=["John", "Falcon"], extra_body={"multichannel": "true"})
    diarized = raw.parse()
    john = " ".join(s.text for s in diarized.segments if s.speaker == "John").lower()
    falcon = [s for s in diarized.segments if s.speaker == "Falcon"]
    assert "country" in john and "crocodile" not in john
    assert "crocodile" in " ".join(s.text for s in falcon).lower()
    # channel 2 hears JFK at -24 dB before its own speaker starts: none of that is Falcon's
    assert all(s.start >= 9.4 for s in falcon), falcon
    assert all(s.end <= 11.5 for s in diarized.segments if s.speaker == "John")
    result = _job_result(server, openai_key, raw.headers["X-Diarq-Job-Id"])
    assert [(s["id"], s["name"], s["channel"]) for s in result["speakers"]] == [
        ("CHANNEL_1", "John", 1), ("CHANNEL_2", "Falcon", 2)]
    assert result["models"]["diarization"]["method"] == "multichannel"
    ex = result["exclusive_diarization"]
    assert ex and all(a["end"] <= b["start"] for a, b in zip(ex, ex[1:], strict=False))


def test_bad_input_through_the_sdk(sdk, server, audio, tmp_path):  # noqa: ANN001
    import openai

    text = tmp_path / "notes.txt"
    text.write_text("not a recording")

    def refused(error: type, **kwargs) -> openai.APIStatusError:  # noqa: ANN003
        with SAMPLE.open("rb") as fh, pytest.raises(error) as info:
            sdk.audio.transcriptions.create(file=fh, **{"model": "whisper-1", **kwargs})
        return info.value

    assert refused(openai.BadRequestError, model="gpt-5").code == "unknown_model"
    assert refused(openai.BadRequestError, stream=True).code == "streaming_unsupported"
    err = refused(openai.BadRequestError, known_speaker_names=["Sheila"],
                  known_speaker_references=["data:text/plain;base64,"
                                            + base64.b64encode(text.read_bytes()).decode()])
    assert err.code == "reference_not_audio" and err.param == "known_speaker_references"
    err = refused(openai.BadRequestError, known_speaker_names=["Sheila", "Diane"],
                  known_speaker_references=[data_url(audio["sheila"])])
    assert err.code == "reference_names_mismatch"
    err = refused(openai.BadRequestError, known_speaker_names=list("ABCDE"),
                  known_speaker_references=[data_url(audio["sheila"])] * 5)
    assert err.code == "too_many_references"
    err = refused(openai.BadRequestError, extra_body={"multichannel": "true"})
    assert err.code == "audio_not_multichannel" and "one channel per speaker" in err.message
    from openai import OpenAI

    stranger = OpenAI(api_key="dq_not_a_key", base_url=f"{server}/v1", max_retries=0)
    with SAMPLE.open("rb") as fh, pytest.raises(openai.AuthenticationError) as info:
        stranger.audio.transcriptions.create(file=fh, model="whisper-1")
    assert info.value.code == "unauthorized"
    assert info.value.body["type"] == "authentication_error"


def test_hotwords_and_multichannel_on_diarq_routes(client, speech_wav):  # noqa: ANN001
    resp = submit(client, speech_wav, hotwords="Szymborska, Kubernetes")
    job = check_spec(resp, "/v1/jobs", "POST")
    assert job["options"]["hotwords"] == ["Szymborska", "Kubernetes"]
    with speech_wav.open("rb") as fh:
        # respond-async: the job itself, not the result /api/diarize waits for
        resp = client.post("/api/diarize", data={"audioFile": (fh, "a.wav"),
                                                 "hotwords": "Anna,Boris"},
                           content_type="multipart/form-data",
                           headers={"Prefer": "respond-async"})
    assert check_spec(resp, "/api/diarize", "POST")["options"]["hotwords"] == ["Anna", "Boris"]
    with speech_wav.open("rb") as fh:
        resp = client.post("/v1/batches", data={"files": [(fh, "a.wav")], "hotwords": "Anna"},
                           content_type="multipart/form-data")
    batch = check_spec(resp, "/v1/batches", "POST")
    assert batch["options"]["hotwords"] == ["Anna"]
    resp = submit(client, speech_wav, multichannel="true")
    assert resp.status_code == 422
    err = check_spec(resp, "/v1/jobs", "POST")["error"]
    assert err["code"] == "audio_not_multichannel" and speech_wav.name in err["message"]
