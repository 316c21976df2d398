"""API keys, ownership (another key gets 404), upload limits and per-key submit limits,
against the real app, PostgreSQL, Redis and (for raw HTTP) gunicorn via `diarq api`."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from diarq.shared.db import session_scope
from diarq.shared.errors import ConfigError
from diarq.shared.orm import Job
from tests.integration.keys import bearer, create_key_with_cli, use_key
from tests.integration.services import (
    DIARQ,
    ROOT,
    check_spec,
    embedded_env,
    free_port,
    running_api,
    wait_until,
)
from tests.integration.test_jobs import submit, wait_done

pytestmark = pytest.mark.integration


def _error(resp) -> dict:  # noqa: ANN001
    assert resp.is_json, resp.data[:300]
    return resp.get_json()["error"]


@pytest.fixture(scope="module")
def other_key(service_env: dict[str, str], settings) -> str:  # noqa: ANN001
    return create_key_with_cli(service_env, "someone-else")


@pytest.fixture
def anonymous(app):  # noqa: ANN001, ANN201
    """A client of the same app that sends no key at all."""
    from flask.testing import FlaskClient

    return FlaskClient(app, app.response_class, use_cookies=True)


# --- authentication ------------------------------------------------------------------

def test_requests_without_a_valid_key_get_401(anonymous, client):  # noqa: ANN001
    for method, url in (("get", "/v1/jobs"), ("get", f"/v1/jobs/{uuid.uuid4()}"),
                        ("post", "/v1/jobs"), ("delete", f"/v1/jobs/{uuid.uuid4()}"),
                        ("get", f"/v1/jobs/{uuid.uuid4()}/result"), ("post", "/api/diarize"),
                        ("get", "/no/such/route")):
        for headers in ({}, bearer("dq_" + "x" * 43), {"Authorization": "Basic abc"},
                        {"Authorization": "Bearer"}):
            resp = getattr(anonymous, method)(url, headers=headers)
            assert resp.status_code == 401, (method, url, headers, resp.data)
            assert _error(resp)["code"] == "unauthorized"
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # the spec documents the 401 of the job routes
    check_spec(anonymous.get("/v1/jobs"), "/v1/jobs", "GET")
    # probes and the spec stay public
    for url in ("/healthz", "/readyz", "/openapi.json"):
        assert anonymous.get(url).status_code == 200, url
    assert client.get("/v1/jobs").status_code == 200


def test_revoked_key_gets_401(app, settings, service_env, speech_wav):  # noqa: ANN001
    key = create_key_with_cli(service_env, "to-revoke")
    c = app.test_client()
    assert c.get("/v1/jobs", headers=bearer(key)).status_code == 200
    listed = subprocess.run(DIARQ + ["keys", "list"], env=service_env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)
    assert key not in listed.stdout + listed.stderr  # only the prefix is ever shown
    line = next(ln for ln in listed.stdout.splitlines() if ln.endswith("\tto-revoke"))
    key_id, prefix, status = line.split("\t")[:3]
    assert key.startswith(prefix) and status == "active"
    proc = subprocess.run(DIARQ + ["keys", "revoke", prefix], env=service_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    resp = c.get("/v1/jobs", headers=bearer(key))
    assert resp.status_code == 401 and _error(resp)["code"] == "unauthorized"
    listed = subprocess.run(DIARQ + ["keys", "list"], env=service_env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60, check=True)
    assert f"{key_id}\t{prefix}\trevoked\t" in listed.stdout
    unknown = subprocess.run(DIARQ + ["keys", "revoke", "dq_nothere"], env=service_env,
                             cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert unknown.returncode != 0 and "key_not_found" in unknown.stderr


def test_keys_are_stored_hashed(settings, api_key):  # noqa: ANN001
    from sqlalchemy import text

    from diarq.shared.db import get_engine

    with get_engine(settings).connect() as conn:
        rows = [" ".join(map(str, r)) for r in conn.execute(text("SELECT * FROM api_keys"))]
    assert rows and not any(api_key in r for r in rows)
    assert not any(api_key[3:] in r for r in rows)


# --- ownership: another key gets 404, everywhere ---------------------------------------

def test_another_keys_jobs_are_404(client, other_key, speech_wav):  # noqa: ANN001
    mine = check_spec(submit(client, speech_wav), "/v1/jobs", "POST")
    with open(speech_wav, "rb") as fh:  # answered at once, with the job (not its result)
        compat = client.post("/api/diarize", data={"audioFile": (fh, "m.wav")},
                             headers={"Prefer": "respond-async"})
    assert compat.status_code == 202
    assert wait_done(client, mine["id"])["status"] == "succeeded"
    theirs = bearer(other_key)
    for job_id in (mine["id"], compat.get_json()["id"]):
        for method, url, path in (
            ("get", f"/v1/jobs/{job_id}", "/v1/jobs/{id}"),
            ("get", f"/v1/jobs/{job_id}/result", "/v1/jobs/{id}/result"),
            ("get", f"/v1/jobs/{job_id}/result?format=srt", "/v1/jobs/{id}/result"),
            ("delete", f"/v1/jobs/{job_id}", "/v1/jobs/{id}"),
        ):
            resp = getattr(client, method)(url, headers=theirs)
            assert resp.status_code == 404, (method, url)
            body = check_spec(resp, path, method.upper())
            # the same answer as for an id that does not exist: nothing to learn from it
            assert body["error"]["code"] == "job_not_found"
    listing = client.get("/v1/jobs?limit=100", headers=theirs).get_json()
    assert {mine["id"], compat.get_json()["id"]}.isdisjoint({j["id"] for j in listing["jobs"]})
    # the other key's DELETE did nothing: the owner still sees the job and its result
    assert client.get(f"/v1/jobs/{mine['id']}").get_json()["deleted"] is False
    assert client.get(f"/v1/jobs/{mine['id']}/result").status_code == 200
    own = client.get("/v1/jobs?limit=100").get_json()["jobs"]
    assert mine["id"] in {j["id"] for j in own}


def test_idempotency_keys_are_per_api_key(client, other_key, speech_wav):  # noqa: ANN001
    headers = {"Idempotency-Key": f"shared-{uuid.uuid4()}"}
    with open(speech_wav, "rb") as fh:
        first = client.post("/v1/jobs", data={"file": (fh, "a.wav")}, headers=headers)
    with open(speech_wav, "rb") as fh:
        other = client.post("/v1/jobs", data={"file": (fh, "a.wav")},
                            headers={**headers, **bearer(other_key)})
    assert (first.status_code, other.status_code) == (202, 202)
    assert first.get_json()["id"] != other.get_json()["id"]


def test_auth_off_refused_on_a_public_address(settings):  # noqa: ANN001
    from diarq.api import create_app

    exposed = settings.model_copy(update={"auth": "off", "host": "0.0.0.0"})
    with pytest.raises(ConfigError) as info:
        create_app({"DIARQ_SETTINGS": exposed, "TESTING": True})
    assert "DIARQ_AUTH_OFF_FORCE" in info.value.message and "DIARQ_AUTH=on" in info.value.message
    forced = exposed.model_copy(update={"auth_off_force": True})
    assert create_app({"DIARQ_SETTINGS": forced, "TESTING": True}) is not None


def test_diarq_api_refuses_auth_off_on_public_host(service_env):  # noqa: ANN001
    env = {**service_env, "DIARQ_AUTH": "off", "DIARQ_HOST": "0.0.0.0"}
    proc = subprocess.run(DIARQ + ["api", "--port", str(free_port())], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "DIARQ_AUTH_OFF_FORCE" in proc.stderr and "Traceback" not in proc.stderr


def test_auth_off_embedded_mode_needs_no_key(settings, speech_wav):  # noqa: ANN001
    """DIARQ_AUTH=off (what `diarq up` uses on 127.0.0.1): no key, key-less jobs only."""
    from diarq.api import create_app

    app = create_app({"DIARQ_SETTINGS": settings.model_copy(
        update={"auth": "off", "job_queue": "idle-auth-off"}), "TESTING": True})
    c = app.test_client()
    job = check_spec(submit(c, speech_wav), "/v1/jobs", "POST")
    assert c.get(f"/v1/jobs/{job['id']}").status_code == 200
    listed = {j["id"] for j in c.get("/v1/jobs?limit=100").get_json()["jobs"]}
    assert job["id"] in listed
    assert c.delete(f"/v1/jobs/{job['id']}").status_code == 204


# --- uploads -------------------------------------------------------------------------

def test_uploads_get_generated_names_whatever_the_filename(client, settings, speech_wav):  # noqa: ANN001
    storage = Path(settings.storage_dir)
    outside = storage.parent
    before = {p for p in outside.rglob("*")}
    for name in ("../../../../tmp/evil.wav", "..\\..\\evil.wav", "/etc/passwd", "a/../../b.wav",
                 "nul\0byte.wav", "ünïcødé name.wav", "x" * 600):
        with open(speech_wav, "rb") as fh:
            resp = client.post("/v1/jobs", data={"file": (fh, name)})
        job = check_spec(resp, "/v1/jobs", "POST")
        with session_scope(settings) as s:
            row = s.get(Job, job["id"])
            rel = row.audio_path
        assert rel == f"audio/{job['id'][:2]}/{job['id']}", rel
        assert (storage / rel).is_file()
        shown = job["audio"]["filename"] or ""
        assert "/" not in shown and "\\" not in shown and "\0" not in shown and len(shown) <= 200
    created = {p for p in outside.rglob("*")} - before
    assert all(storage in p.parents for p in created), [p for p in created
                                                         if storage not in p.parents]


def test_content_is_probed_not_trusted(client, tmp_path, speech_wav):  # noqa: ANN001
    fake = tmp_path / "song.mp3"
    fake.write_bytes(b"ID3" + b"not really audio " * 200)
    with open(fake, "rb") as fh:
        resp = client.post("/v1/jobs", data={"file": (fh, "song.mp3", "audio/mpeg")})
    assert resp.status_code == 415 and _error(resp)["code"] == "audio_not_audio"
    # real audio named and typed as text is accepted: the bytes decide
    with open(speech_wav, "rb") as fh:
        resp = client.post("/v1/jobs", data={"file": (fh, "notes.txt", "text/plain")})
    job = check_spec(resp, "/v1/jobs", "POST")
    assert resp.status_code == 202 and job["audio"]["codec"] == "pcm_s16le"


def _wav_claiming(path: Path, seconds: float, src: Path) -> Path:
    """``src`` (a 16 kHz mono 16-bit WAV) with RIFF/data sizes patched to claim ``seconds``."""
    data = bytearray(src.read_bytes())
    at = data.find(b"data")
    claim = int(seconds * 16000 * 2)
    struct.pack_into("<I", data, at + 4, claim)
    struct.pack_into("<I", data, 4, claim + at)
    path.write_bytes(bytes(data))
    return path


def test_duration_limit_and_lying_headers(settings, api_key, speech_wav, tmp_path):  # noqa: ANN001
    from diarq.api import create_app

    limited = use_key(create_app({"DIARQ_SETTINGS": settings.model_copy(
        update={"max_audio_seconds": 3.0, "job_queue": "idle-duration"}), "TESTING": True}),
        api_key)
    c = limited.test_client()
    resp = submit(c, speech_wav)  # ~6 s of speech
    body = check_spec(resp, "/v1/jobs", "POST")
    assert resp.status_code == 422 and body["error"]["code"] == "audio_too_long"
    assert "DIARQ_MAX_AUDIO_SECONDS" in body["error"]["message"]

    # a truncated file whose header claims 10 h: the probe measures what is there
    short = tmp_path / "short.wav"
    subprocess.run(["sox", str(speech_wav), str(short), "trim", "0", "2"], check=True)
    liar = _wav_claiming(tmp_path / "liar.wav", 10 * 3600, short)
    job = check_spec(submit(c, liar), "/v1/jobs", "POST")
    assert 1.5 < job["audio"]["duration"] < 2.5, job["audio"]
    assert c.delete(f"/v1/jobs/{job['id']}").status_code == 204


def test_rate_limit_and_queued_quota_per_key(app, settings, service_env, speech_wav):  # noqa: ANN001
    from diarq.api import create_app

    # a fresh key and a queue nobody serves: jobs stay queued, counts are exact
    key = create_key_with_cli(service_env, "limited")
    rate = use_key(create_app({"DIARQ_SETTINGS": settings.model_copy(
        update={"rate_limit_per_minute": 3, "max_queued_per_key": 0, "job_queue": "idle-rl"}),
        "TESTING": True}), key).test_client()
    ids = [check_spec(submit(rate, speech_wav), "/v1/jobs", "POST")["id"] for _ in range(3)]
    resp = submit(rate, speech_wav)
    body = check_spec(resp, "/v1/jobs", "POST")
    assert resp.status_code == 429 and body["error"]["code"] == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    with open(speech_wav, "rb") as fh:
        compat = rate.post("/api/diarize", data={"audioFile": (fh, "a.wav")})
    assert compat.status_code == 429
    check_spec(compat, "/api/diarize", "POST")
    # other keys are not affected
    assert app.test_client().get("/v1/jobs").status_code == 200
    assert submit(app_for_idle(settings, service_env), speech_wav).status_code == 202

    quota = use_key(create_app({"DIARQ_SETTINGS": settings.model_copy(
        update={"rate_limit_per_minute": 0, "max_queued_per_key": 3, "job_queue": "idle-rl"}),
        "TESTING": True}), key).test_client()
    resp = submit(quota, speech_wav)
    body = check_spec(resp, "/v1/jobs", "POST")
    assert resp.status_code == 429 and body["error"]["code"] == "queue_quota_exceeded"
    assert int(resp.headers["Retry-After"]) > 0
    # cancelling one frees a place
    assert quota.delete(f"/v1/jobs/{ids[0]}").status_code == 204
    assert submit(quota, speech_wav).status_code == 202


def app_for_idle(settings, service_env):  # noqa: ANN001, ANN201
    """A client with its own key on a queue nobody serves."""
    from diarq.api import create_app

    key = create_key_with_cli(service_env, f"idle-{uuid.uuid4().hex[:6]}")
    return use_key(create_app({"DIARQ_SETTINGS": settings.model_copy(
        update={"job_queue": "idle-other"}), "TESTING": True}), key).test_client()


# --- raw HTTP against gunicorn: the size limit holds before the body is read -----------

@pytest.fixture(scope="module")
def gunicorn(service_env, workers, log_dir) -> Iterator[str]:  # noqa: ANN001
    with running_api(service_env, log_dir / "api-security.log") as url:
        yield url.removeprefix("http://")


def _raw(hostport: str, head: bytes, body_chunks: list[bytes] = (), timeout: float = 20) -> bytes:  # noqa: B006
    """Send a request head, then body chunks from a thread (the server may stop reading
    them), while reading the response here; return the response bytes."""
    import threading

    host, port = hostport.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head)

        def send() -> None:
            try:
                for chunk in body_chunks:
                    sock.sendall(chunk)
            except OSError:
                pass  # the server answered and closed: what the limit is for

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        out = b""
        try:
            while data := sock.recv(65536):
                out += data
        except (ConnectionResetError, TimeoutError):
            pass
        sender.join(timeout=timeout)
    return out


def test_declared_oversize_is_413_without_sending_the_body(gunicorn, api_key, settings):  # noqa: ANN001
    boundary = "b0undary"
    head = (f"POST /v1/jobs HTTP/1.1\r\nHost: {gunicorn}\r\nAuthorization: Bearer {api_key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {50 * 1024**3}\r\nConnection: close\r\n\r\n").encode()
    # only the head and a few bytes are sent: an answer proves the body was never awaited
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"a.wav\"\r\n\r\n").encode() + b"\0" * 1024
    answer = _raw(gunicorn, head + part, timeout=20)
    status_line = answer.split(b"\r\n", 1)[0]
    assert b" 413 " in status_line, answer[:300]
    assert b"upload_too_large" in answer


def test_chunked_upload_is_cut_off_at_the_limit(gunicorn, api_key, settings):  # noqa: ANN001
    incoming = Path(settings.storage_dir) / "incoming"
    boundary = "b0undary"
    head = (f"POST /v1/jobs HTTP/1.1\r\nHost: {gunicorn}\r\nAuthorization: Bearer {api_key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n").encode()
    part = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
            f"filename=\"a.wav\"\r\n\r\n").encode()
    limit = settings.max_upload_bytes
    chunk = b"\0" * (256 * 1024)
    chunks = [b"%x\r\n%s\r\n" % (len(part), part)]
    # up to 4x the limit is offered; the server answers once it has seen more than the limit
    chunks += [b"%x\r\n%s\r\n" % (len(chunk), chunk)] * (4 * limit // len(chunk))
    chunks += [b"0\r\n\r\n"]
    answer = _raw(gunicorn, head, chunks, timeout=30)
    assert b" 413 " in answer.split(b"\r\n", 1)[0], answer[:300]
    assert b"upload_too_large" in answer
    wait_until(lambda: not incoming.exists() or not any(incoming.iterdir()), timeout=10,
               what="the partial upload to be deleted")


def test_non_utf8_filename_over_raw_http(gunicorn, api_key, settings, speech_wav):  # noqa: ANN001
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"".encode()
            + b"\xff\xfe../../\xc3(evil\x80.wav" + b"\"\r\nContent-Type: audio/wav\r\n\r\n"
            + speech_wav.read_bytes() + f"\r\n--{boundary}--\r\n".encode())
    head = (f"POST /v1/jobs HTTP/1.1\r\nHost: {gunicorn}\r\nAuthorization: Bearer {api_key}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    answer = _raw(gunicorn, head + body)
    status_line, _, rest = answer.partition(b"\r\n")
    # werkzeug cannot decode such part headers: a 400 that says so, no file kept
    assert b" 400 " in status_line, answer[:500]
    assert b"malformed_upload" in rest
    incoming = Path(settings.storage_dir) / "incoming"
    assert not incoming.exists() or not any(incoming.iterdir())
    # a UTF-8 name with path parts and control characters: accepted, stored by job id
    body = body.replace(b"\xff\xfe../../\xc3(evil\x80.wav", "../../é\x01vil.wav".encode())
    head = head.replace(b"Content-Length: ", b"X-Old: ").replace(
        b"\r\n\r\n", f"\r\nContent-Length: {len(body)}\r\n\r\n".encode())
    answer = _raw(gunicorn, head + body)
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 202 " in status_line, answer[:500]

    job = json.loads(rest.split(b"\r\n\r\n", 1)[1])
    assert job["audio"]["filename"] == "évil.wav"
    with session_scope(settings) as s:
        assert s.get(Job, job["id"]).audio_path == f"audio/{job['id'][:2]}/{job['id']}"
    r = requests.delete(f"http://{gunicorn}/v1/jobs/{job['id']}", headers=bearer(api_key),
                        timeout=10)
    assert r.status_code == 204



def test_cli_client_sends_diarq_api_key(gunicorn, service_env, api_key, speech_wav):  # noqa: ANN001
    url = f"http://{gunicorn}"
    env = {**service_env, "DIARQ_API_KEY": api_key}
    proc = subprocess.run(DIARQ + ["submit", "--server", url, str(speech_wav)], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    job_id = proc.stdout.strip()
    status = subprocess.run(DIARQ + ["status", "--server", url, job_id], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0 and job_id in status.stdout
    without = {k: v for k, v in env.items() if k != "DIARQ_API_KEY"}
    proc = subprocess.run(DIARQ + ["status", "--server", url, job_id], env=without, cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0 and "unauthorized" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_up_demo_runs_without_a_key_by_default(tmp_path, speech_wav):  # noqa: ANN001
    """`diarq up --demo` (what `make demo` runs) with DIARQ_AUTH unset: auth is off for
    the embedded mode on 127.0.0.1, and no key is needed."""
    env = embedded_env(tmp_path, DIARQ_BENCH_TRIVIAL_PIPELINE_S="0.2")
    proc = subprocess.run(DIARQ + ["up", "--port", str(free_port()), "--demo", str(speech_wav),
                                   "--format", "json"],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["models"] == {"bench_trivial": True}
