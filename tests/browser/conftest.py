"""Browser tests: Debian's Chromium driven by Playwright (``executable_path``: Playwright's
own browser download is unreachable here), against the real stack: `diarq api`
(gunicorn) on PostgreSQL and Redis, and a real worker with the offline models.

Jobs go to a queue of their own, so no other test's worker takes them. Screenshots are
kept in the run's temporary folder and, when DIARQ_SCREENSHOTS names a folder (e.g.
bench/out/screenshots), there too.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.integration import conftest as integration
from tests.integration.keys import create_key_with_cli
from tests.integration.services import WorkerProcess, real_pipeline_worker, running_api

CHROMIUM = os.environ.get("DIARQ_TEST_CHROMIUM", "/usr/bin/chromium")
# flags that work on these machines (no GPU, no sandbox as root, nothing phoning home)
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--autoplay-policy=no-user-gesture-required"]
QUEUE = "browser"

# the deployment of the integration tests: a fresh database and Redis prefix, a key
pg_database = integration.pg_database
redis_prefix = integration.redis_prefix
service_env = integration.service_env
settings = integration.settings
api_key = integration.api_key
log_dir = integration.log_dir


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.slow)


def launch_chromium(playwright):  # noqa: ANN001, ANN201
    """Debian's Chromium with a fresh profile (Playwright makes one per launch)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium "
                    "(scripts/install-browser.sh)")
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def web_env(service_env: dict[str, str]) -> dict[str, str]:
    return {**service_env, "DIARQ_JOB_QUEUE": QUEUE}


@pytest.fixture(scope="module")
def real_worker(settings, web_env: dict[str, str], log_dir: Path) -> Iterator[WorkerProcess]:  # noqa: ANN001
    with real_pipeline_worker("browser-real", web_env, log_dir, QUEUE) as worker:
        yield worker


@pytest.fixture(scope="module")
def server(settings, web_env: dict[str, str], real_worker, log_dir: Path) -> Iterator[str]:  # noqa: ANN001
    with running_api(web_env, log_dir / "browser-api.log") as url:
        yield url


@contextmanager
def chromium_browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright, closed after the block."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = launch_chromium(p)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def browser(server: str):  # noqa: ANN201
    with chromium_browser() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def other_key(service_env: dict[str, str], settings) -> str:  # noqa: ANN001
    return create_key_with_cli(service_env, "browser-someone-else")


class Shots:
    """Screenshots: the run's temporary folder, and DIARQ_SCREENSHOTS when set."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        extra = os.environ.get("DIARQ_SCREENSHOTS")
        self.extra = Path(extra) if extra else None

    def take(self, page, name: str, *, full_page: bool = True) -> Path:  # noqa: ANN001
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        if self.extra is not None:
            self.extra.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, self.extra / path.name)
        return path


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Shots:  # noqa: ANN001
    return Shots(tmp_path_factory.mktemp("screenshots"))
