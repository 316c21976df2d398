"""The web app's pages without services (SQLite, auth off as in the embedded `diarq up`):
no sign-in, pages and scripts served with the CSP, and the helpers that keep redirects
and download names safe."""

from __future__ import annotations

import pytest

from diarq.api import create_app
from diarq.api.jobs import content_disposition
from diarq.api.web import _safe_next


@pytest.fixture
def client(settings):  # noqa: ANN001, ANN201
    app = create_app({"DIARQ_SETTINGS": settings.model_copy(update={"auth": "off"}),
                      "TESTING": True})
    return app.test_client()


def test_auth_off_has_no_sign_in(client) -> None:  # noqa: ANN001
    page = client.get("/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Upload recordings" in html
    assert "Sign out" not in html and 'name="csrf-token" content=""' in html
    assert client.get("/login").headers["Location"] == "/"
    assert client.get("/jobs/not-a-job").status_code == 404


@pytest.mark.parametrize("name", ["common.js", "jobs.js", "job.js", "batch.js", "app.css"])
def test_static_files_are_served_with_the_csp(client, name: str) -> None:  # noqa: ANN001
    resp = client.get(f"/static/{name}")
    assert resp.status_code == 200 and resp.data
    assert "script-src 'self'" in resp.headers["Content-Security-Policy"]


@pytest.mark.parametrize(("target", "expected"), [
    ("/jobs/1?x=2", "/jobs/1?x=2"), ("/", "/"), (None, "/"), ("", "/"), ("/?", "/"),
    ("//evil.example", "/"), ("https://evil.example/", "/"), ("/\\evil.example", "/"),
    ("javascript:alert(1)", "/"), ("evil", "/"),
])
def test_sign_in_returns_only_to_this_site(target: str | None, expected: str) -> None:
    assert _safe_next(target) == expected


def test_download_names() -> None:
    assert content_disposition("meeting.srt") == 'inline; filename="meeting.srt"'
    header = content_disposition('Réunion "Q3".srt')
    assert header.startswith('inline; filename="R_union _Q3_.srt"; filename*=UTF-8\'\'')
    assert "R%C3%A9union%20%22Q3%22.srt" in header
