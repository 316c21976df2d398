"""An S3 server on 127.0.0.1 for the object-storage tests: moto in server mode, as a
subprocess on a free port (the S3 protocol over real HTTP, signed by boto3)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.integration.services import free_port, wait_until

# recognisable test credentials: tests search logs, rows and answers for them. The key
# id has the shape of a real one (AKIA + 16), so the shape-based redaction is tested too.
ACCESS_KEY_ID = "AKIADIARQCANARY00001"
SECRET_ACCESS_KEY = "diarqS3SecretCanary/0123456789abcdefghijklmn"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def use_test_credentials() -> None:
    """The test process's own boto3 clients (in-process API apps) read the AWS chain."""
    os.environ.update(CREDENTIALS)
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN"):
        os.environ.pop(name, None)


class MotoServer:
    """`python -m moto.server` on a free loopback port; kill() and start() again for an
    outage (moto keeps its objects in memory: a restart comes back empty)."""

    def __init__(self, log_dir: Path, port: int | None = None):
        self.port = port or free_port()
        self.log_path = log_dir / f"moto-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        log = open(self.log_path, "a")  # noqa: SIM115 (inherited by the child)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, **CREDENTIALS})
        log.close()

        def up() -> bool:
            try:
                return requests.get(f"{self.url}/moto-api/", timeout=1).status_code < 500
            except requests.RequestException:
                return False

        wait_until(up, timeout=60, interval=0.2, what="moto server")
        return self

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def client(self):  # noqa: ANN201 (boto3 client)
        import boto3
        from botocore.config import Config

        return boto3.client("s3", endpoint_url=self.url, region_name="us-east-1",
                            aws_access_key_id=ACCESS_KEY_ID,
                            aws_secret_access_key=SECRET_ACCESS_KEY,
                            config=Config(s3={"addressing_style": "path"}))

    def new_bucket(self) -> str:
        name = f"diarq-test-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name

    def keys(self, bucket: str, prefix: str = "") -> list[str]:
        pages = self.client().get_paginator("list_objects_v2").paginate(Bucket=bucket,
                                                                         Prefix=prefix)
        return sorted(o["Key"] for page in pages for o in page.get("Contents", []))

    def storage_env(self, bucket: str, prefix: str = "diarq", *,
                    endpoint: str | None = None) -> dict[str, str]:
        """DIARQ_* and AWS_* variables of a diarq process using this bucket."""
        return {"DIARQ_STORAGE_URL": f"s3://{bucket}/{prefix}",
                "DIARQ_S3_ENDPOINT_URL": endpoint or self.url, **CREDENTIALS}


@pytest.fixture(scope="module")
def moto(tmp_path_factory) -> Iterator[MotoServer]:  # noqa: ANN001
    """A moto server of the test module's own, with the test credentials set for the
    test process too (import this fixture into the module)."""
    use_test_credentials()
    server = MotoServer(tmp_path_factory.mktemp("moto")).start()
    yield server
    server.kill()
