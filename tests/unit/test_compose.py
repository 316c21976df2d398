"""docker-compose.yml and the Dockerfile cannot run here (no images, no Docker): this
checks that they agree with the code. Every service command is a real `diarq` command with
valid options, every DIARQ_* variable is a real setting with a valid value, the GPU worker
requests a GPU and runs on the GPU queue the API sends to, and API and workers share the
storage volume at the path DIARQ_STORAGE_DIR names."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
import yaml

from diarq.cli import cli
from diarq.shared.settings import Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # `<<` merges included
SERVICES = COMPOSE["services"]
DIARQ_SERVICES = [name for name, s in SERVICES.items() if (s.get("command") or [""])[0] == "diarq"]


def _resolve(args: list[str]) -> click.Command:
    """The click command ``diarq <args>`` runs, its options parsed (UsageError if not)."""
    command: click.Command = cli
    ctx = click.Context(cli, info_name="diarq")
    rest = list(args)
    while isinstance(command, click.Group):
        if not rest or command.get_command(ctx, rest[0]) is None:
            raise click.UsageError(f"no command {rest[:1]}")
        command, name, rest = command.get_command(ctx, rest[0]), rest[0], rest[1:]
        ctx = command.make_context(name, list(rest), parent=ctx) if not isinstance(
            command, click.Group) else click.Context(command, info_name=name, parent=ctx)
    return command


def _env(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def _default(value: str) -> str:
    """${VAR:-default} -> default (what compose uses when VAR is unset)."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_the_api_and_workers_run_diarq_commands() -> None:
    assert {"migrate", "api", "worker"} <= set(DIARQ_SERVICES)


@pytest.mark.parametrize("name", DIARQ_SERVICES)
def test_service_command_exists_with_valid_options(name: str) -> None:
    _resolve(SERVICES[name]["command"][1:])


def test_a_wrong_command_would_be_caught() -> None:
    with pytest.raises(click.UsageError):
        _resolve(["worker", "--no-such-option"])
    with pytest.raises(click.UsageError):
        _resolve(["no-such-command"])


@pytest.mark.parametrize("name", DIARQ_SERVICES)
def test_every_diarq_variable_is_a_setting_with_a_valid_value(name: str) -> None:
    env = {k: _default(v) for k, v in _env(SERVICES[name]).items() if k.startswith("DIARQ_")}
    unknown = [k for k in env if k[len("DIARQ_"):].lower() not in Settings.model_fields]
    assert not unknown, f"{name}: not settings: {unknown}"
    load_settings(**{k[len("DIARQ_"):].lower(): v for k, v in env.items()})  # ConfigError if bad


def test_dockerfile_variables_are_settings() -> None:
    text = (ROOT / "Dockerfile").read_text()
    names = re.findall(r"\b(DIARQ_[A-Z_]+)=", text)
    assert names and all(n[len("DIARQ_"):].lower() in Settings.model_fields for n in names)


def test_dockerfile_copies_every_package_folder() -> None:
    import tomllib

    dirs = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"].values())
    copied = set(re.findall(r"^COPY (\S+) \1$", (ROOT / "Dockerfile").read_text(), re.M))
    assert dirs <= copied, dirs - copied


def test_gpu_worker_requests_a_gpu_and_serves_the_api_queue() -> None:
    worker = SERVICES["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d.get("capabilities", []) and d.get("driver") == "nvidia"
               for d in devices)
    env = _env(worker)
    assert env["DIARQ_DEVICE"] == "cuda"
    command = worker["command"]
    queues = command[command.index("--queues") + 1].split(",")
    assert _env(SERVICES["api"])["DIARQ_JOB_QUEUE"] in queues
    assert "HUGGINGFACE_HUB_TOKEN" in env or "HF_TOKEN" in env
    assert "HUGGINGFACE_HUB_TOKEN" not in _env(SERVICES["api"])  # the API needs no token


def _mounts(service: dict) -> dict[str, str]:
    out = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        out[target] = source
    return out


def test_api_and_workers_share_the_storage() -> None:
    """The same store: one S3 bucket and endpoint (the compose file's MinIO), or one
    named volume mounted where DIARQ_STORAGE_DIR points."""
    env = {name: _env(SERVICES[name]) for name in ("api", "worker")}
    if "DIARQ_STORAGE_URL" in env["api"]:
        for key in ("DIARQ_STORAGE_URL", "DIARQ_S3_ENDPOINT_URL"):
            assert env["api"].get(key) == env["worker"].get(key), key
        assert env["api"]["DIARQ_STORAGE_URL"].startswith("s3://")
        host = env["api"]["DIARQ_S3_ENDPOINT_URL"].split("//")[1].split(":")[0]
        assert host in SERVICES, f"the S3 endpoint {host} is not a compose service"
        return
    mounts = {name: _mounts(SERVICES[name]) for name in ("api", "worker")}
    for name in ("api", "worker"):
        storage = Path(env[name]["DIARQ_STORAGE_DIR"])
        target = next((t for t in mounts[name] if storage.is_relative_to(t)), None)
        assert target is not None, f"{name}: {storage} is on no volume"
        source = mounts[name][target]
        assert source in COMPOSE["volumes"], f"{name}: {source} is not a named volume"
    assert env["api"]["DIARQ_STORAGE_DIR"] == env["worker"]["DIARQ_STORAGE_DIR"]
    assert mounts["api"] == mounts["worker"]
