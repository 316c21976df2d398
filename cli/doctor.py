"""``diarq doctor``: check that this machine can run jobs; one line per check.

Network checks (hub profile only) use short timeouts and never hang without
network. The token is never printed: only whether it is set and what the hub
says about it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import click

HUB_TIMEOUT = (3.05, 5.0)  # connect, read (seconds)


@dataclass
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str = ""

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def line(self) -> str:
        text = f"[{self.status:^4}] {self.name}: {self.detail}"
        if self.fix and self.status in ("fail", "warn"):
            text += f" -> {self.fix}"
        return text


def check_tools() -> list[Check]:
    out = []
    for tool in ("ffmpeg", "ffprobe"):
        path = shutil.which(tool)
        if path is None:
            out.append(Check(tool, "fail", "not found on PATH",
                             "install ffmpeg (Debian/Ubuntu: apt-get install ffmpeg)"))
            continue
        try:
            first = subprocess.run([path, "-version"], capture_output=True, text=True,
                                   timeout=10, check=False).stdout.splitlines()[0]
        except (OSError, subprocess.TimeoutExpired, IndexError):
            first = "present"
        out.append(Check(tool, "ok", " ".join(first.split()[:3])))
    return out


def check_packages() -> list[Check]:
    out = []
    for dist in ("torch", "pyannote.audio", "faster-whisper", "ctranslate2", "whisperx"):
        try:
            out.append(Check(dist, "ok", version(dist)))
        except PackageNotFoundError:
            out.append(Check(dist, "fail", "not installed",
                             "run `make install` (CPU) or install the gpu extra"))
    return out


def check_device(settings) -> list[Check]:  # type: ignore[no-untyped-def]
    try:
        import torch
    except ImportError:
        return [Check("device", "fail", "torch cannot be imported", "run `make install`")]
    cuda = torch.cuda.is_available()
    if cuda:
        detail = f"GPU {torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    else:
        detail = f"CPU, {os.cpu_count()} cores (torch {torch.__version__})"
    if settings.device == "cuda" and not cuda:
        return [Check("device", "fail", detail + "; DIARQ_DEVICE=cuda but no GPU is visible",
                      "set DIARQ_DEVICE=auto or cpu, or check the CUDA driver")]
    return [Check("device", "ok", f"{detail}; DIARQ_DEVICE={settings.device}")]


def check_offline(settings) -> list[Check]:  # type: ignore[no-untyped-def]
    try:
        from diarq.worker.offline_models import check_offline_models
    except ImportError as exc:
        return [Check("offline models", "fail", f"checker unavailable ({exc.name})",
                      "run `make install`")]
    out = []
    for c in check_offline_models(settings.model_dir):
        ok = bool(getattr(c, "ok", getattr(c, "status", "") == "ok"))
        name = str(getattr(c, "name", "model"))
        detail = str(getattr(c, "detail", getattr(c, "message", "")))
        fix = str(getattr(c, "fix", "") or "run `diarq models prepare`")
        # offline files are required only by the offline profile (and the offline ASR names)
        needed = settings.profile == "offline"
        status = "ok" if ok else ("fail" if needed else "warn")
        out.append(Check(f"model {name}", status, detail or ("present" if ok else "missing"), fix))
    return out


def check_token(settings) -> list[Check]:  # type: ignore[no-untyped-def]
    from diarq.shared.settings import hf_token_from_env

    token = hf_token_from_env()
    hub = settings.profile == "hub"
    local_model = os.path.isdir(os.path.expanduser(settings.hub_diarization_model))
    if token:
        return [Check("hf token", "ok", "set (HUGGINGFACE_HUB_TOKEN or HF_TOKEN; not shown)")]
    if hub and not local_model:
        from diarq.worker.diarization.hub_config import GATED, required_repos

        gated = [r for r in required_repos(settings.hub_diarization_model, None) if r in GATED]
        return [Check("hf token", "fail", "not set; the hub profile downloads gated models",
                      "export HUGGINGFACE_HUB_TOKEN=... (a read token whose account accepted "
                      f"the conditions of {', '.join(gated or [settings.hub_diarization_model])})")]
    return [Check("hf token", "skip", "not set (not needed by the offline profile)")]


def _repo_probe_file(repo: str, pipeline: str) -> str:
    """A file whose download the hub refuses without access: the pipeline's config, a
    model's weights (streamed and closed, never read)."""
    return "config.yaml" if repo == pipeline else "pytorch_model.bin"


def check_local_pipeline(path: str) -> list[Check]:
    """A local pipeline directory: its config and every repo it names, found locally."""
    from pathlib import Path

    from diarq.shared.errors import DiarqError
    from diarq.worker.diarization import hub_config
    from diarq.worker.diarization.backends import read_config

    local = Path(path).expanduser()
    name = local.name
    if not (local / hub_config.CONFIG_FILE).is_file():
        return [Check("diarization model", "fail", f"local directory {name}: no config.yaml",
                      "the directory needs the pipeline's config.yaml")]
    try:
        config = read_config(local / hub_config.CONFIG_FILE)
        refs = hub_config.hub_references(config)
    except DiarqError as exc:
        return [Check("diarization model", "fail", f"local directory {name}: {exc.message}")]
    out = [Check("diarization model", "ok", f"local directory {name} "
                 f"({hub_config.clustering_of(config)})")]
    for repo in refs:
        try:
            found = hub_config.resolve_local(repo, local)
        except DiarqError as exc:
            out.append(Check(f"repo {repo}", "fail", "not on this machine", exc.message))
        else:
            out.append(Check(f"repo {repo}", "ok", f"local copy ({found.parent.name}/)"))
    return out


def check_hub(settings, get: Callable | None = None) -> list[Check]:  # type: ignore[type-arg, no-untyped-def]
    """Token validity, then access to every repo the pipeline needs (its own config says
    which; names each refused one), over HTTP with short timeouts."""
    from diarq.shared.errors import DiarqError
    from diarq.shared.settings import hf_token_from_env
    from diarq.worker.diarization import hub_config

    model = settings.hub_diarization_model
    if settings.profile != "hub":
        return [Check("hub access", "skip", "offline profile")]
    if os.path.isdir(os.path.expanduser(model)):
        return check_local_pipeline(model)
    token = hf_token_from_env()
    if not token:
        return [Check("hub access", "skip", "no token")]
    import requests
    import yaml

    get = get or requests.get
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    headers = {"Authorization": f"Bearer {token}"}
    out = []
    try:
        who = get(f"{endpoint}/api/whoami-v2", headers=headers, timeout=HUB_TIMEOUT)
    except requests.RequestException as exc:
        return [Check("hub access", "fail", f"hub unreachable ({type(exc).__name__})",
                      "check network/proxy (HTTPS_PROXY), or use a local model directory "
                      "(DIARQ_HUB_DIARIZATION_MODEL=/path) or DIARQ_PROFILE=offline")]
    if who.status_code == 401:
        return [Check("hf token", "fail", "rejected by the hub (401: invalid or revoked)",
                      "create a new read token at huggingface.co/settings/tokens")]
    if who.status_code != 200:
        return [Check("hf token", "warn", f"whoami answered HTTP {who.status_code}")]
    name = (who.json() or {}).get("name", "?")
    out.append(Check("hf token", "ok", f"valid (account {name})"))
    repos = hub_config.required_repos(model, None)
    refused: list[str] = []
    i = 0
    while i < len(repos):
        repo = repos[i]
        try:
            probe = get(f"{endpoint}/{repo}/resolve/main/{_repo_probe_file(repo, model)}",
                        headers=headers, timeout=HUB_TIMEOUT, stream=repo != model,
                        allow_redirects=True)
            config = None
            if repo == model and probe.status_code == 200:
                # the pipeline's own config says which other repos it loads
                with contextlib.suppress(yaml.YAMLError, ValueError, TypeError):
                    config = yaml.safe_load(probe.text)
            probe.close()
        except requests.RequestException as exc:
            out.append(Check(f"repo {repo}", "fail", f"hub unreachable ({type(exc).__name__})",
                             "check network/proxy"))
            return out
        if isinstance(config, dict):
            with contextlib.suppress(DiarqError):
                repos = hub_config.required_repos(model, config)
        gated = " (gated)" if repo in hub_config.GATED else ""
        if probe.status_code == 200:
            out.append(Check(f"repo {repo}", "ok", f"access granted{gated}"))
        elif probe.status_code in (401, 403):
            refused.append(repo)
            out.append(Check(f"repo {repo}", "fail", f"access denied{gated}",
                             f"accept the conditions at {endpoint}/{repo} with account {name}"))
        elif probe.status_code == 404:
            out.append(Check(f"repo {repo}", "fail", "not found",
                             "check DIARQ_HUB_DIARIZATION_MODEL"))
        else:
            out.append(Check(f"repo {repo}", "warn", f"HTTP {probe.status_code}"))
        i += 1
    if refused:
        out.append(Check("diarization model", "fail",
                         f"{model} needs {len(repos)} repos; refused: {', '.join(refused)}",
                         "request access to each refused repo on its page"))
    return out


def check_storage(settings) -> list[Check]:  # type: ignore[no-untyped-def]
    """The storage backend this process would use: reachable, bucket there, credentials
    accepted (S3: a HEAD of the bucket; credentials are never printed)."""
    from diarq.shared.storage import StorageUnavailable
    from diarq.shared.storage_backend import open_storage

    try:
        storage = open_storage(settings)
        storage.check()
    except StorageUnavailable as exc:
        return [Check("storage", "fail", exc.message,
                      "fix DIARQ_STORAGE_URL / DIARQ_S3_ENDPOINT_URL or the AWS credentials")]
    where = (f"s3 {storage.where()}" if storage.kind == "s3"  # type: ignore[attr-defined]
             else f"local directory {storage.root}")  # type: ignore[attr-defined]
    return [Check("storage", "ok", where)]


def check_load(settings) -> list[Check]:  # type: ignore[no-untyped-def]
    """Load the configured models as a worker would (slow; --load)."""
    from diarq.shared.errors import DiarqError
    from diarq.worker.registry import ModelRegistry

    try:
        reg = ModelRegistry(settings)
        reg.warm_up()
    except DiarqError as exc:
        return [Check("load models", "fail", f"[{exc.code}] {exc.message}")]
    return [Check("load models", "ok",
                  f"diarization + ASR {settings.asr_model} loaded ({reg.compute_type}, "
                  f"{reg.threads} threads)")]


@click.command("doctor")
@click.option("--load", is_flag=True, help="Also load the models (as a worker would).")
def doctor(load: bool) -> None:
    """Check ffmpeg, torch/device, model files, token and hub access."""
    from diarq.shared.errors import ConfigError
    from diarq.shared.settings import load_settings

    try:
        settings = load_settings()
    except ConfigError as exc:
        click.echo(Check("settings", "fail", exc.message, "fix the DIARQ_* variable").line())
        raise SystemExit(1) from None
    checks = [Check("settings", "ok", f"profile={settings.profile} asr_model="
                    f"{settings.asr_model}")]
    click.echo(checks[0].line())
    for group in (check_tools, check_packages, lambda: check_device(settings),
                  lambda: check_offline(settings), lambda: check_token(settings),
                  lambda: check_hub(settings), lambda: check_storage(settings)):
        for c in group():
            checks.append(c)
            click.echo(c.line())
    if load:
        for c in check_load(settings):
            checks.append(c)
            click.echo(c.line())
    failed = [c for c in checks if c.failed]
    click.echo(f"{len(failed)} problem(s)" if failed else "all checks passed")
    if failed:
        raise SystemExit(1)


def register(group: click.Group) -> None:
    group.add_command(doctor)
