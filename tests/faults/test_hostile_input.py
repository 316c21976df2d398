"""Hostile and broken input: each gets a clear 4xx at submit or a job that ends with a
status and a code; never a 5xx, never a dead worker or a job left running.

Already covered elsewhere (not repeated): empty file, text named .wav, oversize (413),
unknown field "colour", min > max, negative count (tests/integration/test_jobs.py);
path-traversal and NUL filenames, non-UTF-8 filenames over raw HTTP, lying headers
(duration checked by the probe) (tests/integration/test_security.py).
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
from pathlib import Path

import pytest

from tests.integration.services import ROOT, wait_until

TERMINAL = ("succeeded", "failed", "canceled")


def _run(*cmd: str) -> None:
    subprocess.run(list(cmd), check=True, capture_output=True, timeout=60)


@pytest.fixture(scope="module")
def media(tmp_path_factory, speech_wav: Path) -> dict[str, Path]:  # noqa: ANN001
    """Broken and unusual files made with ffmpeg, sox and espeak-ng."""
    d = tmp_path_factory.mktemp("hostile")
    ff = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y"]
    out = {name: d / name for name in (
        "random.wav", "speech.mp3", "speech.m4a", "faststart.m4a", "novideo.mp4",
        "8k.wav", "48k_stereo.wav", "silence.wav", "one_word.wav", "ten_hours.wav")}
    out["random.wav"].write_bytes(os.urandom(64 * 1024))
    _run(*ff, "-i", str(speech_wav), "-c:a", "libmp3lame", "-b:a", "64k", str(out["speech.mp3"]))
    _run(*ff, "-i", str(speech_wav), "-c:a", "aac", str(out["speech.m4a"]))
    _run(*ff, "-i", str(speech_wav), "-c:a", "aac", "-movflags", "+faststart",
         str(out["faststart.m4a"]))
    _run(*ff, "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10", "-t", "2", "-an",
         "-c:v", "mpeg4", str(out["novideo.mp4"]))
    _run("sox", str(speech_wav), "-r", "8000", str(out["8k.wav"]))
    _run("sox", str(speech_wav), "-r", "48000", "-c", "2", str(out["48k_stereo.wav"]))
    _run("sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(out["silence.wav"]),
         "trim", "0", "3")
    word = d / "word.wav"
    _run("espeak-ng", "-v", "en-us", "-w", str(word), "Hello.")
    _run("sox", str(word), "-r", "16000", "-c", "1", str(out["one_word.wav"]))
    # a 2 s WAV whose RIFF/data sizes claim 10 hours
    short = d / "short.wav"
    _run("sox", str(speech_wav), str(short), "trim", "0", "2")
    data = bytearray(short.read_bytes())
    at = data.find(b"data")
    claim = 10 * 3600 * 16000 * 2
    struct.pack_into("<I", data, at + 4, claim)
    struct.pack_into("<I", data, 4, (claim + at) & 0xFFFFFFFF)
    out["ten_hours.wav"].write_bytes(bytes(data))
    # truncations: mp3 cut mid-stream and down to its first frames; m4a with the index
    # (moov) at the end cut in half, and with the index first cut in half
    for name, keep in (("speech.mp3", 0.4), ("speech.m4a", 0.5), ("faststart.m4a", 0.5)):
        raw = out[name].read_bytes()
        cut = d / f"truncated_{name}"
        cut.write_bytes(raw[: int(len(raw) * keep)])
        out[f"truncated_{name}"] = cut
    headonly = d / "headonly.mp3"
    headonly.write_bytes(out["speech.mp3"].read_bytes()[:700])
    out["headonly.mp3"] = headonly
    return out


@pytest.fixture(scope="module")
def stack(make_stack):  # noqa: ANN001, ANN201
    if not (ROOT / "models" / "diarization").is_dir():
        pytest.fail("offline models missing: run `make models` (diarq models prepare) first")
    s = make_stack(DIARQ_ASR_MODEL="tiny.en", DIARQ_MAX_UPLOAD_MB="3")
    # the real offline pipeline: failures come from real decoding and real models
    s.worker("real", ready=False)
    return s


def _post(stack, data: dict) -> tuple[int, dict]:  # noqa: ANN001
    resp = stack.client.post("/v1/jobs", data=data, content_type="multipart/form-data")
    assert resp.status_code < 500, resp.get_data(as_text=True)
    assert resp.is_json, (resp.status_code, resp.content_type)
    return resp.status_code, resp.get_json()


def _file(path: Path) -> tuple:
    return (io.BytesIO(path.read_bytes()), path.name)


BAD_OPTIONS = [
    {"num_speakers": "two"}, {"num_speakers": "2.5"}, {"num_speakers": "1e9"},
    {"num_speakers": "0"}, {"num_speakers": "33"}, {"max_speakers": "-3"},
    {"min_speakers": "99999999999999999999999"}, {"diarize": "maybe"}, {"align": "[]"},
    {"language": "english"}, {"language": "../../etc"}, {"participants": ",".join("x" * 40)},
    {"participants": "y" * 101}, {"prompt": "p" * 2001}, {"asr_model": "m" * 201},
    {"callback": "http://x"}, {"__proto__": "{}"}, {"options[num_speakers]": "2"},
    {"num_speakers": "\x00"}, {"language": "é"},
]


@pytest.mark.parametrize("options", BAD_OPTIONS, ids=[next(iter(o)) + ":" + repr(v)[:12]
                                                      for o in BAD_OPTIONS for v in o.values()])
def test_bad_options_are_422(stack, media, options: dict):  # noqa: ANN001
    status, body = _post(stack, {"file": _file(media["8k.wav"]), **options})
    assert (status, body["error"]["code"]) == (422, "invalid_options"), body
    assert len(body["error"]["message"]) < 3000  # says what is wrong, does not echo it all


def test_huge_multipart_field_values(stack, media):  # noqa: ANN001
    for field in ("prompt", "unknown_field", "participants"):
        status, body = _post(stack, {"file": _file(media["8k.wav"]), field: "z" * 2_500_000})
        assert status in (413, 422), (field, status, body)
    # many fields
    many = {f"f{i}": "v" for i in range(5000)}
    status, body = _post(stack, {"file": _file(media["8k.wav"]), **many})
    assert 400 <= status < 500, body


@pytest.mark.parametrize("name, codes", [
    ("random.wav", {"audio_not_audio"}),
    ("novideo.mp4", {"audio_no_audio_stream", "audio_not_audio"}),
    ("truncated_speech.m4a", {"audio_not_audio", "audio_truncated"}),
])
def test_refused_at_submit(stack, media, name: str, codes: set[str]):  # noqa: ANN001
    status, body = _post(stack, {"file": _file(media[name])})
    assert status in (400, 415, 422), (status, body)
    assert body["error"]["code"] in codes, body


# file -> what the real pipeline must make of it: "succeeded" or the code it fails with
PROCESSED: dict[str, str] = {
    "8k.wav": "succeeded",
    "48k_stereo.wav": "succeeded",
    "silence.wav": "succeeded",  # a result without segments
    "one_word.wav": "succeeded",
    # cut files: the header announces more than can be decoded (a WAV claiming 10 hours
    # passes the upload probe, which measures 2 s, and the worker reads its RIFF header)
    "ten_hours.wav": "audio_truncated",
    "truncated_speech.mp3": "audio_truncated",
    "truncated_faststart.m4a": "audio_truncated",
    "headonly.mp3": "audio_truncated",
}
# a job names a model; server paths are refused (at submit) without being opened
BAD_MODELS = {"/etc": "asr_model_not_allowed", "../../../../etc/passwd": "asr_model_not_allowed",
              "~root/.ssh": "asr_model_not_allowed", "no-such-model": "model_not_found"}


def test_processed_by_the_real_worker(stack, media):  # noqa: ANN001
    jobs: dict[str, str] = {}
    for name in PROCESSED:
        status, body = _post(stack, {"file": _file(media[name])})
        if status == 202:
            jobs[name] = body["id"]
        else:  # refusing at submit is fine for the broken ones, with an audio code
            assert body["error"]["code"] == PROCESSED[name], body
    for model in BAD_MODELS:
        status, body = _post(stack, {"file": _file(media["one_word.wav"]), "asr_model": model})
        if status == 202:
            jobs[f"asr_model={model}"] = body["id"]
        else:  # server paths are refused at submit (the worker checks again)
            assert (status, body["error"]["code"]) == (422, BAD_MODELS[model]), body
    refused_late = [m for m, code in BAD_MODELS.items()
                    if code == "asr_model_not_allowed" and f"asr_model={m}" in jobs]
    assert refused_late == [], "server paths must be refused at submit"
    worker = stack.workers[0]
    worker.wait_ready(timeout=180, marker="models loaded")
    rows = stack.wait_all_done(list(jobs.values()), timeout=300)
    outcome = {name: (rows[i].status, rows[i].error_code, rows[i].error_message)
               for name, i in jobs.items()}
    for name, (status, code, message) in outcome.items():
        assert status in TERMINAL, outcome
        expected = PROCESSED.get(name) or BAD_MODELS[name.removeprefix("asr_model=")]
        assert (code or status) == expected, (name, outcome[name], worker.log()[-3000:])
        if status == "failed":
            assert message and "etc/passwd" not in message, (name, outcome[name])
        if code and code.startswith("audio_"):
            # named as uploaded, never by its storage name or path
            assert message.startswith(name) and jobs[name] not in message, (name, message)
            assert str(stack.settings.storage_dir) not in message, (name, message)
    assert worker.proc.poll() is None, "the worker died"
    silent = stack.client.get(f"/v1/jobs/{jobs['silence.wav']}/result").get_json()
    assert silent["segments"] == []
    # and the worker still does real work afterwards
    again = stack.submit(media["one_word.wav"])["id"]
    assert wait_until(lambda: stack.rows([again])[again].status in TERMINAL, timeout=120)
    assert stack.rows([again])[again].status == "succeeded"
