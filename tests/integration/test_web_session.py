"""The web app's sign-in, session cookie, CSRF tokens, page security headers and
ownership, with the Flask test client against real PostgreSQL (auth on, as in
production). The browser itself is tests/browser."""

from __future__ import annotations

import io
import re
import subprocess
import uuid

import pytest
from flask.testing import FlaskClient

from tests.integration.keys import bearer, create_key_with_cli
from tests.integration.services import DIARQ, ROOT, check_spec
from tests.integration.test_jobs import submit, wait_done

pytestmark = pytest.mark.integration


class Browser(FlaskClient):
    """A client that, like a browser, sends cookies and no Authorization header."""

    base_url = "http://localhost"

    def open(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        if not (args and not isinstance(args[0], str)):  # not a prepared request
            kwargs.setdefault("base_url", self.base_url)
        return super().open(*args, **kwargs)


def browser(app, base_url: str = "http://localhost") -> FlaskClient:  # noqa: ANN001
    client = Browser(app, app.response_class, use_cookies=True)
    client.base_url = base_url
    return client


def _form_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client: FlaskClient, key: str, next_url: str = "/"):  # noqa: ANN201
    page = client.get("/login")
    assert page.status_code == 200
    return client.post("/login", data={"csrf_token": _form_token(page.get_data(as_text=True)),
                                       "api_key": key, "next": next_url})


def _set_cookie(resp, name: str) -> str:  # noqa: ANN001
    return next(h for h in resp.headers.getlist("Set-Cookie") if h.startswith(name + "="))


@pytest.fixture(scope="module")
def other_key(service_env: dict[str, str], settings) -> str:  # noqa: ANN001
    return create_key_with_cli(service_env, "web-someone-else")


def test_pages_need_a_session_and_sign_in_sets_a_safe_cookie(app, api_key):  # noqa: ANN001
    c = browser(app)
    first = c.get("/jobs/" + str(uuid.uuid4()))
    assert first.status_code == 302 and first.headers["Location"].startswith("/login?next=")
    assert c.get("/v1/jobs").status_code == 401  # no cookie, no key: the API says so

    resp = sign_in(c, api_key, next_url="/")
    assert resp.status_code == 302 and resp.headers["Location"] == "/"
    cookie = _set_cookie(resp, "diarq_session")
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert api_key not in cookie
    page = c.get("/")
    assert page.status_code == 200 and 'name="csrf-token" content="' in page.get_data(True)
    assert c.get("/v1/jobs").status_code == 200  # the cookie stands in for the key

    secure = browser(app, "https://localhost")
    resp = secure.get("/login")
    assert "Secure" in _set_cookie(resp, "diarq_login_csrf")
    resp = sign_in(secure, api_key)
    assert "Secure" in _set_cookie(resp, "diarq_session")


def test_sign_in_refusals(app, api_key):  # noqa: ANN001
    c = browser(app)
    no_token = c.post("/login", data={"api_key": api_key})
    assert no_token.status_code == 403 and "diarq_session" not in str(no_token.headers)
    # each form shown has a new token (the refusal above showed one)
    page = no_token.get_data(as_text=True)
    wrong = c.post("/login", data={"api_key": "dq_" + "x" * 43,
                                   "csrf_token": _form_token(page)})
    assert wrong.status_code == 401 and "unknown or revoked" in wrong.get_data(True)
    page = wrong.get_data(as_text=True)
    # the form of one browser does not sign in another (the token is bound to a cookie)
    other = browser(app)
    stolen = other.post("/login", data={"api_key": api_key, "csrf_token": _form_token(page)})
    assert stolen.status_code == 403
    # no open redirect after sign-in
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil"):
        resp = sign_in(browser(app), api_key, next_url=target)
        assert resp.status_code == 302 and resp.headers["Location"] == "/", target


def test_changes_from_a_browser_need_the_csrf_token(app, api_key, client, speech_wav):  # noqa: ANN001
    c = browser(app)
    sign_in(c, api_key)
    token = re.search(r'name="csrf-token" content="([^"]+)"', c.get("/").get_data(True)).group(1)
    job = check_spec(submit(client, speech_wav), "/v1/jobs", "POST")
    wait_done(client, job["id"])

    for method, url, kwargs in (
            ("patch", f"/v1/jobs/{job['id']}/speakers", lambda: {"json": {"SPEAKER_00": "A"}}),
            ("delete", f"/v1/jobs/{job['id']}", dict),
            ("post", "/v1/jobs", lambda: {"data": {"file": (io.BytesIO(b"x"), "a")}})):
        resp = getattr(c, method)(url, **kwargs())
        assert resp.status_code == 403, (method, url)
        assert resp.get_json()["error"]["code"] == "csrf_failed"
        bad = getattr(c, method)(url, headers={"X-CSRF-Token": "0" * 64}, **kwargs())
        assert bad.status_code == 403
    check_spec(c.patch(f"/v1/jobs/{job['id']}/speakers", json={"SPEAKER_00": "A"}),
               "/v1/jobs/{id}/speakers", "PATCH")  # the spec documents the 403 too
    # with the token: an upload goes through, under the same limits as the API's
    too_big = c.post("/v1/jobs", headers={"X-CSRF-Token": token},
                     data={"file": (io.BytesIO(b"\0" * (3 << 20)), "big.wav")})
    assert too_big.status_code == 413
    assert too_big.get_json()["error"]["code"] == "upload_too_large"
    with open(speech_wav, "rb") as fh:
        made = c.post("/v1/jobs", headers={"X-CSRF-Token": token},
                      data={"file": (fh, "s.wav")})
    assert made.status_code == 202
    assert c.delete(f"/v1/jobs/{made.get_json()['id']}",
                    headers={"X-CSRF-Token": token}).status_code == 204
    # sign-out is a form with the token; afterwards the cookie is worth nothing
    assert c.post("/logout").status_code == 403
    old = c.get_cookie("diarq_session").value
    assert c.post("/logout", data={"csrf_token": token}).status_code == 302
    c.set_cookie("diarq_session", old)
    assert c.get("/v1/jobs").status_code == 401
    assert c.get("/").status_code == 302


def test_another_keys_job_is_a_404_page(app, api_key, other_key, client, speech_wav):  # noqa: ANN001
    job = check_spec(submit(client, speech_wav), "/v1/jobs", "POST")
    mine, theirs = browser(app), browser(app)
    sign_in(mine, api_key)
    sign_in(theirs, other_key)
    assert mine.get(f"/jobs/{job['id']}").status_code == 200
    for url in (f"/jobs/{job['id']}", f"/jobs/{uuid.uuid4()}", "/jobs/not-a-uuid",
                f"/batches/{uuid.uuid4()}"):
        page = theirs.get(url)
        assert page.status_code == 404 and page.content_type.startswith("text/html"), url
        assert "Not found" in page.get_data(True)
    assert theirs.get(f"/v1/jobs/{job['id']}/audio").status_code == 404
    assert theirs.get(f"/v1/jobs/{job['id']}", headers=bearer(other_key)).status_code == 404


def test_revoking_the_key_ends_its_sessions(app, service_env):  # noqa: ANN001
    key = create_key_with_cli(service_env, "web-revoked")
    c = browser(app)
    sign_in(c, key)
    assert c.get("/v1/jobs").status_code == 200
    subprocess.run(DIARQ + ["keys", "revoke", key[:9]], env=service_env, cwd=ROOT,
                   check=True, capture_output=True, timeout=60)
    assert c.get("/v1/jobs").status_code == 401
    assert c.get("/").status_code == 302


def test_pages_allow_no_inline_script(app, api_key):  # noqa: ANN001
    c = browser(app)
    sign_in(c, api_key)
    job_page = c.get(f"/jobs/{uuid.uuid4()}")  # the 404 page has the same layout
    for resp in (c.get("/"), c.get("/login"), job_page):
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        html = resp.get_data(as_text=True)
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
        assert all("src=" in attrs and not body.strip() for attrs, body in scripts)
        assert not re.search(r"<[^>]+\son[a-z]+=", html), "inline event handler"
        assert not re.search(r"<[^>]+\sstyle=", html), "inline style"
