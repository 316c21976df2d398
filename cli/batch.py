"""`diarq batch DIR|ARCHIVE`: upload many recordings as batches in bounded chunks, wait
for them with one progress bar, write the results into --out mirroring the input tree.

Resumable: the output directory holds a state file (cli/batch_state.py) mapping
each input file (relative path + SHA-256) to its job; a second run polls the jobs it
knows and uploads only files it has no job for (new or changed ones). Each chunk is sent
with an Idempotency-Key derived from its contents, so a chunk whose answer was lost to
an interruption is answered with the batch the server already made, not made twice.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click

from diarq.cli.batch_state import STATE_NAME, BatchState, FileState
from diarq.cli.client import (
    DEFAULT_THRESHOLD_MB,
    FORMATS,
    TERMINAL,
    ClientError,
    _request,
    direct_option,
    direct_upload,
    flag_or_none,
    form_data,
    get_result,
    pipeline_options,
    server_option,
)
from diarq.shared.hashing import sha256_file

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")


def scan(source: Path, out_dir: Path) -> Iterator[tuple[str, Path]]:
    """(relative posix path, file) for every non-hidden file under ``source``, sorted,
    leaving out the output directory when it lies inside the source."""
    out_dir = out_dir.resolve()
    for dirpath, dirnames, filenames in os.walk(source):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (here / d).resolve() != out_dir)
        for name in sorted(filenames):
            if not name.startswith("."):
                path = here / name
                yield path.relative_to(source).as_posix(), path


def chunks(items: list[tuple[str, Path, str]], max_files: int,
           max_bytes: int) -> Iterator[list[tuple[str, Path, str]]]:
    """Groups of at most ``max_files`` files and ``max_bytes`` bytes (a larger file
    travels alone)."""
    group: list[tuple[str, Path, str]] = []
    size = 0
    for item in items:
        n = item[1].stat().st_size
        if group and (len(group) >= max_files or size + n > max_bytes):
            yield group
            group, size = [], 0
        group.append(item)
        size += n
    if group:
        yield group


def chunk_key(group: list[tuple[str, Path, str]], data: dict[str, str]) -> str:
    """Idempotency-Key of one upload: the same files and options give the same key."""
    body = json.dumps([[rel, sha] for rel, _, sha in group] + [sorted(data.items())])
    return "diarq-batch-" + hashlib.sha256(body.encode()).hexdigest()[:40]


def upload(server: str, group: list[tuple[str, Path, str]], data: dict[str, str],
           headers: dict[str, str], state: BatchState, *, archive: bool = False,
           direct_above_mb: float | None = None) -> dict:
    """POST one chunk as a batch; record each file's job (or rejection) in the state.
    Files above ``direct_above_mb`` go straight to the server's object store first
    (direct uploads, named by upload_id in the batch request) when it has one."""
    threshold = DEFAULT_THRESHOLD_MB if direct_above_mb is None else direct_above_mb
    upload_ids: list[str] = []
    through_api = []
    for rel, path, sha in group:
        uploaded = None
        if not archive and path.stat().st_size > threshold * 1024 * 1024:
            uploaded = direct_upload(server, path, filename=rel, sha256=sha, headers=headers)
        if uploaded is None:
            through_api.append((rel, path, sha))
        else:
            upload_ids.append(uploaded)
    with ExitStack() as stack:
        files = [("files", (rel, stack.enter_context(path.open("rb"))))
                 for rel, path, _ in through_api]
        # the key names the files, however they travel: a retry is the same request
        batch = _request("POST", f"{server}/v1/batches", files=files or None,
                         data={**data, "upload_id": upload_ids} if upload_ids else data,
                         headers={**headers, "Idempotency-Key": chunk_key(group, data)},
                         timeout=600).json()
    if archive:  # entries are the archive's members, all from the one uploaded file
        sha = group[0][2]
        for job in batch["jobs"]:
            state.files[job["source_name"]] = FileState(sha, job["id"], batch["id"],
                                                        job["status"])
        for rej in batch["rejected"]:
            state.files[rej["name"]] = FileState(sha, None, batch["id"], "rejected",
                                                 error=rej["reason"])
    else:
        jobs = {job["source_name"]: job for job in batch["jobs"]}
        rejected = {rej["name"]: rej["reason"] for rej in batch["rejected"]}
        for rel, _, sha in group:
            job = jobs.get(rel)
            if job is not None:
                state.files[rel] = FileState(sha, job["id"], batch["id"], job["status"])
            else:
                state.files[rel] = FileState(sha, None, batch["id"], "rejected",
                                             error=rejected.get(rel, "not accepted"))
    state.save()
    return batch


def output_stems(rels: list[str]) -> dict[str, str]:
    """Output name (without the format extension) per input: ``a/b.wav`` -> ``a/b``;
    where two inputs would share one (b.wav, b.mp3), both keep their extension."""
    stems = {rel: posixpath.splitext(rel)[0] or rel for rel in rels}
    seen: dict[str, int] = {}
    for stem in stems.values():
        seen[stem] = seen.get(stem, 0) + 1
    return {rel: (stem if seen[stem] == 1 else rel) for rel, stem in stems.items()}


def write_results(server: str, job_id: str, out_dir: Path, stem: str,
                  formats: list[str], headers: dict[str, str]) -> None:
    for fmt in formats:
        target = out_dir / f"{stem}.{fmt}"
        target.parent.mkdir(parents=True, exist_ok=True)
        text = get_result(server, job_id, fmt, headers=headers)
        tmp = target.with_name(target.name + ".part")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, target)


def wait_and_write(server: str, state: BatchState, out_dir: Path, formats: list[str],
                   headers: dict[str, str], poll_s: float) -> tuple[int, int]:
    """Poll the batches until every job is finished, writing results as jobs succeed.
    Returns (succeeded, failed)."""
    from tqdm import tqdm

    tracked = {rel: fs for rel, fs in state.files.items() if fs.job_id}
    stems = output_stems(sorted(tracked))
    by_job = {fs.job_id: rel for rel, fs in tracked.items()}
    reported: set[str] = set()
    bar = tqdm(total=len(tracked), unit="file", file=sys.stderr, desc="batch")
    try:
        while True:
            for batch_id in sorted({fs.batch_id for fs in tracked.values()
                                    if fs.status not in TERMINAL}):
                batch = _request("GET", f"{server}/v1/batches/{batch_id}",
                                 headers=headers).json()
                for job in batch["jobs"]:
                    rel = by_job.get(job["id"])
                    if rel is not None:
                        fs = tracked[rel]
                        fs.status = job["status"]
                        if job["error"]:
                            fs.error = f"{job['error']['code']}: {job['error']['message']}"
            for rel, fs in tracked.items():
                missing = [f for f in formats if f not in fs.written]
                if fs.status == "succeeded" and missing:
                    write_results(server, fs.job_id, out_dir, stems[rel], missing, headers)
                    fs.written += missing
                elif fs.status in ("failed", "canceled") and rel not in reported:
                    reported.add(rel)
                    bar.write(f"{fs.status}: {rel}: {fs.error or 'no message'}")
            state.save()
            done = sum(1 for fs in tracked.values() if fs.status in TERMINAL)
            ok = sum(1 for fs in tracked.values() if fs.status == "succeeded")
            bar.n = done
            bar.set_postfix_str(f"failed {done - ok}" if done - ok else "")
            bar.refresh()
            if done == len(tracked):
                return ok, done - ok
            time.sleep(poll_s)
    finally:
        bar.close()


@click.command("batch")
@click.argument("source", type=click.Path(exists=True, path_type=Path))
@server_option
@click.option("--api-key", envvar="DIARQ_API_KEY", default=None,
              help="API key (default: $DIARQ_API_KEY).")
@click.option("--formats", default="json", show_default=True,
              help="Comma-separated result formats to write: " + ",".join(FORMATS))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Output directory (holds the resume state); default SOURCE-results.")
@click.option("--wait", is_flag=True, help="Wait for every job and write the results.")
@click.option("--chunk-files", type=click.IntRange(1, 1000), default=20, show_default=True,
              help="At most this many files per upload request.")
@click.option("--chunk-mb", type=click.IntRange(1), default=200, show_default=True,
              help="At most this many MB per upload request (a larger file goes alone).")
@pipeline_options
@click.option("--no-dedupe", is_flag=True, help="Run again even where a result exists.")
@click.option("--poll", "poll_s", type=float, default=1.0, show_default=True,
              help="Seconds between status polls.")
@direct_option
def batch_cmd(source: Path, server: str, api_key: str | None, formats: str,
              out_dir: Path | None, wait: bool, chunk_files: int, chunk_mb: int,
              no_diarize: bool, no_align: bool, no_dedupe: bool, poll_s: float,
              direct_above_mb: float, **options: Any) -> None:
    """Upload a folder of recordings (or one .zip/.tar/.tar.gz) as batches; with --wait,
    write each result into --out, mirroring the input tree. Run it again after an
    interruption: files that already have a job are not uploaded again."""
    server = server.rstrip("/")
    fmts = [f.strip() for f in formats.split(",") if f.strip()]
    if not fmts or any(f not in FORMATS for f in fmts):
        raise click.BadParameter(f"use formats from: {', '.join(FORMATS)}",
                                 param_hint="--formats")
    options.update(diarize=False if no_diarize else None, align=False if no_align else None,
                   dedupe=False if no_dedupe else None,
                   multichannel=flag_or_none(options["multichannel"]))
    data = form_data(options)
    headers = {"Authorization": f"Bearer {api_key.strip()}"} if api_key else {}
    source = source.resolve()
    out_dir = out_dir or source.with_name(source.name + "-results")
    state = BatchState.load(out_dir, server)

    archive = source.is_file()
    if archive:
        sha = sha256_file(source)
        todo = [] if any(fs.sha256 == sha for fs in state.files.values()) else \
            [(source.name, source, sha)]
    else:
        todo = []
        for rel, path in scan(source, out_dir):
            sha = sha256_file(path)
            if state.known(rel, sha) is None:
                todo.append((rel, path, sha))
    known = len(state.files)
    click.echo(f"{len(todo)} to upload, {known} known from {out_dir / STATE_NAME}",
               err=True)
    for group in chunks(todo, chunk_files, chunk_mb * 1024 * 1024):
        batch = upload(server, group, data, headers, state, archive=archive,
                       direct_above_mb=direct_above_mb)
        for rej in batch["rejected"]:
            click.echo(f"rejected: {rej['name']}: {rej['reason']}", err=True)
        click.echo(f"batch {batch['id']}: {len(batch['jobs'])} jobs", err=True)
    if not wait:
        return
    ok, failed = wait_and_write(server, state, out_dir, fmts, headers, poll_s)
    rejected = sum(1 for fs in state.files.values() if fs.job_id is None)
    click.echo(f"{ok} succeeded, {failed} failed, {rejected} rejected; results in {out_dir}",
               err=True)
    if failed:
        # rejected files (not audio) are reported above but are no failure of the run
        raise ClientError(f"{failed} recordings failed (listed above; the state is in "
                          f"{out_dir / STATE_NAME})", code="batch_incomplete")


def register(group: click.Group) -> None:
    group.add_command(batch_cmd)
