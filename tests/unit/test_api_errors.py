"""API behaviour that needs no services: JSON errors, limits, option checks, the spec.

Uses SQLite and the filesystem broker in a temporary directory (nothing is started).
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from diarq.shared.settings import load_settings


@pytest.fixture
def app(tmp_path: Path):  # noqa: ANN201
    from diarq.api import create_app
    from diarq.shared.db import upgrade

    settings = load_settings(
        database_url=f"sqlite:///{tmp_path / 'db.sqlite'}",
        broker_url=f"filesystem://{tmp_path / 'broker'}",
        storage_dir=tmp_path / "storage",
        max_upload_mb=1,
        auth="off",  # keys have their own tests
    )
    upgrade(settings)
    from flask.testing import FlaskClient

    from diarq.shared.keystore import create_key

    _, key = create_key(settings, "unit")

    class KeyedClient(FlaskClient):  # authentication is on by default: send a key
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            super().__init__(*args, **kwargs)
            self.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"

    app = create_app({"DIARQ_SETTINGS": settings, "TESTING": True})
    app.test_client_class = KeyedClient
    return app


def _error(resp) -> dict:  # noqa: ANN001
    assert resp.is_json, resp.data[:200]
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]


def test_404_405_are_json(app) -> None:  # noqa: ANN001
    c = app.test_client()
    assert _error(c.get("/nothing/here"))["code"] == "not_found"
    resp = c.put("/v1/jobs")
    assert resp.status_code == 405 and _error(resp)["code"] == "method_not_allowed"
    assert "POST" in resp.headers["Allow"]
    resp = c.get("/v1/jobs/does-not-exist")
    assert resp.status_code == 404 and _error(resp)["code"] == "job_not_found"


def test_upload_over_the_limit_is_413_and_leaves_no_file(app, tmp_path: Path) -> None:  # noqa: ANN001
    c = app.test_client()
    resp = c.post("/v1/jobs", data={"file": (io.BytesIO(b"\0" * (1024 * 1024 + 10)), "a.wav")})
    assert resp.status_code == 413
    assert _error(resp)["code"] == "upload_too_large"
    incoming = tmp_path / "storage" / "incoming"
    assert not incoming.exists() or not any(incoming.iterdir())


def test_unknown_option_is_422(app) -> None:  # noqa: ANN001
    resp = app.test_client().post(
        "/v1/jobs", data={"file": (io.BytesIO(b"RIFF...."), "a.wav"), "speakers": "2"})
    assert resp.status_code == 422
    err = _error(resp)
    assert err["code"] == "invalid_options" and "speakers" in err["message"]


def test_unexpected_exception_is_a_generic_json_500(app) -> None:  # noqa: ANN001
    @app.get("/boom")
    def boom():  # noqa: ANN202
        raise RuntimeError("secret detail hf_abcdefghijklmnopqrstuvwxyz123456")

    app.config["PROPAGATE_EXCEPTIONS"] = False
    resp = app.test_client().get("/boom")
    assert resp.status_code == 500
    err = _error(resp)
    assert err["code"] == "internal_error"
    assert "secret" not in err["message"] and "Traceback" not in resp.get_data(as_text=True)


def test_openapi_spec_is_served_and_documents_every_route(app) -> None:  # noqa: ANN001
    spec = app.test_client().get("/openapi.json").get_json()
    assert spec["openapi"] == "3.1.0"
    routes = {re.sub(r"<\w+>", "{id}", r.rule) for r in app.url_map.iter_rules()
              if r.endpoint.rsplit(".", 1)[-1] != "static"}
    assert routes <= set(spec["paths"])
    # every $ref points at something that exists
    text = json.dumps(spec)
    for ref in {p.split('"')[0] for p in text.split('"$ref": "#/')[1:]}:
        node = spec
        for part in ref.split("/"):
            node = node[part]
