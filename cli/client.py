"""Client commands against a running diarq server: submit, status, result.

They speak plain HTTP (requests), exactly like any other client of the API.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import click

from diarq.shared.errors import DiarqError
from diarq.shared.hashing import sha256_file
from diarq.shared.serialize import overall_progress

DEFAULT_SERVER = "http://127.0.0.1:3001"
FORMATS = ("json", "srt", "vtt", "txt", "tsv", "rttm")
TERMINAL = ("succeeded", "failed", "canceled")


class ClientError(DiarqError):
    code = "client_error"


def _check(resp: Any) -> Any:
    if resp.status_code >= 400:
        try:
            err = resp.json()["error"]
            raise ClientError(err["message"], code=err["code"])
        except (ValueError, KeyError, TypeError):
            raise ClientError(f"HTTP {resp.status_code} from server") from None
    return resp


def _auth_headers() -> dict[str, str]:
    """``Authorization: Bearer $DIARQ_API_KEY`` when a key is set (servers with auth on)."""
    import os

    key = os.environ.get("DIARQ_API_KEY", "").strip()
    return {"Authorization": f"Bearer {key}"} if key else {}


def _request(method: str, url: str, **kwargs: Any) -> Any:
    import requests

    headers = {**_auth_headers(), **kwargs.pop("headers", {})}
    try:
        return _check(requests.request(method, url, timeout=kwargs.pop("timeout", 60),
                                       headers=headers, **kwargs))
    except requests.ConnectionError:
        base = url.split("/v1/")[0]
        raise ClientError(f"cannot reach the diarq server at {base}; start it with `diarq up` "
                          "or pass --server URL", code="server_unreachable") from None


def form_data(options: dict[str, Any]) -> dict[str, str]:
    """Options as multipart form fields (booleans as true/false, None left out)."""
    return {k: str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in options.items() if v is not None}


def submit_file(server: str, path: Path, options: dict[str, Any], *,
                direct_above_mb: float | None = None) -> dict[str, Any]:
    """Create a job for ``path``: above ``direct_above_mb`` the file goes straight to the
    server's object store (a direct upload) when the server offers that."""
    data = form_data(options)
    threshold = DEFAULT_THRESHOLD_MB if direct_above_mb is None else direct_above_mb
    if path.stat().st_size > threshold * 1024 * 1024:
        upload_id = direct_upload(server, path)
        if upload_id is not None:
            return _request("POST", f"{server}/v1/jobs", data={**data, "upload_id": upload_id},
                            timeout=600).json()
    with open(path, "rb") as fh:
        return _request("POST", f"{server}/v1/jobs", files={"file": (path.name, fh)},
                        data=data, timeout=600).json()


# --- direct uploads: big files go straight to the server's object store -------------------
# (POST /v1/uploads, then PUT to the presigned URL with a progress bar); the job or batch
# request names the upload_id instead of carrying the bytes. A server that stores uploads
# on its own disk answers 409 direct_upload_unavailable: the file goes through the API.
DEFAULT_THRESHOLD_MB = 64


class _ProgressReader:
    """A file read by requests in chunks, advancing a tqdm bar; ``len()`` gives requests
    the Content-Length a presigned PUT needs (no chunked transfer encoding)."""

    def __init__(self, fh: BinaryIO, size: int, bar: Any):
        self.fh, self.size, self.bar = fh, size, bar

    def __len__(self) -> int:
        return self.size

    def read(self, n: int = -1) -> bytes:
        data = self.fh.read(n)
        self.bar.update(len(data))
        return data


def direct_upload(server: str, path: Path, *, filename: str | None = None,
                  sha256: str | None = None, headers: dict[str, str] | None = None,
                  show_progress: bool = True) -> str | None:
    """Upload ``path`` straight to the store; its upload id, or None when the server
    does not offer direct uploads (send it through the API then)."""
    import requests
    from tqdm import tqdm

    size = path.stat().st_size
    body = {"filename": filename or path.name, "size": size,
            "sha256": sha256 or sha256_file(path)}
    try:
        made = _request("POST", f"{server}/v1/uploads", json=body,
                        headers=headers or {}).json()
    except ClientError as exc:
        if exc.code in ("direct_upload_unavailable", "not_found", "method_not_allowed"):
            return None  # local storage, or an older server
        raise
    bar = tqdm(total=size, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
               desc=f"upload {path.name}"[:40], disable=not show_progress)
    try:
        with path.open("rb") as fh:
            resp = requests.request(made["method"], made["url"],
                                    data=_ProgressReader(fh, size, bar),
                                    headers=made.get("headers") or {}, timeout=600)
    except requests.RequestException as exc:
        raise ClientError(f"the upload of {path.name} to the server's object store failed "
                          f"({type(exc).__name__}); check the network and run the command "
                          "again", code="upload_failed") from None
    finally:
        bar.close()
    if resp.status_code >= 300:
        raise ClientError(f"the server's object store refused the upload of {path.name} "
                          f"(HTTP {resp.status_code}); run the command again (the upload URL "
                          "may have expired)", code="upload_failed")
    return str(made["id"])


def get_job(server: str, job_id: str) -> dict[str, Any]:
    return _request("GET", f"{server}/v1/jobs/{job_id}").json()


def get_result(server: str, job_id: str, fmt: str,
               headers: dict[str, str] | None = None) -> str:
    return _request("GET", f"{server}/v1/jobs/{job_id}/result", params={"format": fmt},
                    headers=headers or {}).content.decode("utf-8")


def wait_for(server: str, job_id: str, *, show_progress: bool = True,
             poll_s: float = 0.5, timeout_s: float | None = None,
             alive: Callable[[], bool] | None = None) -> dict[str, Any]:
    """Poll until the job finishes, with a tqdm bar; returns the final job.

    ``alive``: stop waiting (ClientError) once it returns False, e.g. when the worker
    of ``diarq up`` exited (a worker that cannot load its models leaves jobs queued)."""
    from tqdm import tqdm

    deadline = time.monotonic() + timeout_s if timeout_s else None
    bar = tqdm(total=100, unit="%", disable=not show_progress, file=sys.stderr,
               bar_format="{desc:<20} {bar} {n:.0f}% [{elapsed}]")
    told: str | None = None
    try:
        while True:
            job = get_job(server, job_id)
            waiting = job.get("waiting") or {}
            detail = job["stage"] or waiting.get("code")
            bar.set_description_str(f"{job['status']}" + (f" {detail}" if detail else ""))
            bar.n = round(100 * overall_progress(job), 1)
            bar.refresh()
            # why it waits, once per change of reason (positions move: not a new reason)
            reason = waiting_line(job)
            if reason and waiting.get("code") != told:
                bar.write(reason, file=sys.stderr)
            told = waiting.get("code")
            if job["status"] in TERMINAL:
                return job
            if alive is not None and not alive():
                raise ClientError(f"job {job_id} is {job['status']} but a service process "
                                  "stopped; see its messages", code="service_stopped")
            if deadline is not None and time.monotonic() > deadline:
                raise ClientError(f"job {job_id} did not finish within {timeout_s:.0f} s",
                                  code="wait_timeout")
            time.sleep(poll_s)
    finally:
        bar.close()


def waiting_line(job: dict[str, Any]) -> str | None:
    """``waiting [code]: message`` for a queued job that says why it waits."""
    waiting = job.get("waiting")
    if job.get("status") != "queued" or not waiting:
        return None
    return f"waiting [{waiting['code']}]: {waiting['message']}"


def explain_failure(job: dict[str, Any]) -> ClientError:
    err = job.get("error") or {}
    if job["status"] == "canceled":
        return ClientError(f"job {job['id']} was canceled", code="job_canceled")
    return ClientError(f"job {job['id']} failed: {err.get('message', 'no message')}",
                       code=err.get("code", "job_failed"))


server_option = click.option("--server", envvar="DIARQ_SERVER", default=DEFAULT_SERVER,
                             show_default=True, help="Base URL of the diarq API.")
direct_option = click.option(
    "--direct-above-mb", type=click.FloatRange(0), envvar="DIARQ_DIRECT_UPLOAD_MB",
    default=64, show_default=True,
    help="Files larger than this go straight to the server's object store (a direct "
         "upload, with a progress bar) when it has one.")


def pipeline_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The job options every command that runs the pipeline takes (process, submit,
    batch): speaker counts, language, hotwords, multichannel, model, stages."""
    for option in reversed((
        click.option("--num-speakers", type=int, help="Exact number of speakers, when known."),
        click.option("--min-speakers", type=int, help="At least this many speakers."),
        click.option("--max-speakers", type=int, help="At most this many speakers."),
        click.option("--language", help="Language code (en, de, ru...); detected when absent."),
        click.option("--hotwords", help="Names and terms to recognise, comma-separated: "
                                        '"Szymborska,Kubernetes".'),
        click.option("--multichannel", is_flag=True,
                     help="One speaker per channel (phone calls, one track per participant)."),
        click.option("--asr-model", help="Whisper model (offline: base, tiny.en; `diarq "
                     "process` also takes a local model directory)."),
        click.option("--no-diarize", is_flag=True, help="Transcribe only; no speakers."),
        click.option("--no-align", is_flag=True, help="Segment-level times only (faster)."),
    )):
        command = option(command)
    return command


def flag_or_none(value: bool) -> bool | None:
    """An absent flag is no option at all (the server's default applies)."""
    return True if value else None


@click.command("submit")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@server_option
@pipeline_options
@click.option("--participants", help='Names in order of first appearance: "Anna, Boris" or a '
              'JSON list: [{"name": "Anna"}, {"name": "Boris"}] or ["Anna", "Boris"].')
@click.option("--prompt", help="Initial prompt for transcription.")
@click.option("--wait", is_flag=True, help="Wait for the job and print its result.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="txt", show_default=True,
              help="Result format printed with --wait.")
@direct_option
def submit_cmd(file: Path, server: str, no_diarize: bool, no_align: bool, wait: bool,
               fmt: str, direct_above_mb: float, **options: Any) -> None:
    """Upload FILE as a new job; print its id (or, with --wait, its result)."""
    options["multichannel"] = flag_or_none(options["multichannel"])
    if no_diarize:
        options["diarize"] = False
    if no_align:
        options["align"] = False
    from diarq.shared.options import parse_options

    parse_options(options)  # the server's own check, before the upload: fails fast, same text
    job = submit_file(server.rstrip("/"), file, options, direct_above_mb=direct_above_mb)
    if not wait:
        click.echo(job["id"])
        return
    click.echo(f"job {job['id']}", err=True)
    done = wait_for(server.rstrip("/"), job["id"])
    if done["status"] != "succeeded":
        raise explain_failure(done)
    click.echo(get_result(server.rstrip("/"), job["id"], fmt), nl=False)


@click.command("status")
@click.argument("job_id")
@server_option
@click.option("--wait", is_flag=True, help="Wait until the job finishes (progress bar).")
def status_cmd(job_id: str, server: str, wait: bool) -> None:
    """Show a job's status, stage and progress."""
    import json

    job = wait_for(server.rstrip("/"), job_id) if wait else get_job(server.rstrip("/"), job_id)
    click.echo(json.dumps(job, indent=2))
    reason = waiting_line(job)
    if reason:
        click.echo(reason, err=True)


@click.command("result")
@click.argument("job_id")
@server_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="json", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file instead of stdout.")
def result_cmd(job_id: str, server: str, fmt: str, output: Path | None) -> None:
    """Fetch a succeeded job's result."""
    text = get_result(server.rstrip("/"), job_id, fmt)
    if output:
        output.write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


def register(group: click.Group) -> None:
    group.add_command(submit_cmd)
    group.add_command(status_cmd)
    group.add_command(result_cmd)
