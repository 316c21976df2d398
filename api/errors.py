"""Every error is JSON ``{"error": {"code", "message"}}``: 404, 405, 413, 500 included."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from sqlalchemy.exc import DBAPIError, OperationalError
from werkzeug.exceptions import HTTPException

from diarq.shared.errors import DiarqError
from diarq.shared.redact import redact
from diarq.shared.storage import StorageUnavailable, UploadTooLarge

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "upload_too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid_request",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(DiarqError):
    """An error answered as-is (status + code + message)."""


def error_response(status: int, code: str, message: str):  # noqa: ANN201 (flask response)
    resp = jsonify({"error": {"code": code, "message": redact(message)}})
    resp.status_code = status
    return resp


def register_error_handlers(app: Flask) -> None:
    max_mb = app.extensions["diarq"].settings.max_upload_mb

    @app.errorhandler(DiarqError)
    def _diarq(exc: DiarqError):  # noqa: ANN202
        return error_response(exc.http_status, exc.code, exc.message)

    @app.errorhandler(StorageUnavailable)
    def _storage_down(exc: StorageUnavailable):  # noqa: ANN202
        # the store is down or refuses us: retryable, and nothing was committed
        log.warning("storage unavailable: %s", redact(exc.message))
        resp = error_response(503, exc.code,
                              "the recording store is unavailable right now; retry in a few "
                              "seconds (operators: see the API log, check the object store "
                              "and DIARQ_STORAGE_URL / DIARQ_S3_ENDPOINT_URL)")
        resp.headers["Retry-After"] = "10"
        return resp

    @app.errorhandler(UploadTooLarge)
    def _too_large(_exc: UploadTooLarge):  # noqa: ANN202
        return error_response(413, "upload_too_large",
                              f"the upload is larger than {max_mb} MB; send a smaller file "
                              "(or raise DIARQ_MAX_UPLOAD_MB on the server)")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):  # noqa: ANN202
        status = exc.code or 500
        if status == 413:
            return _too_large(UploadTooLarge(0))
        message = exc.description or exc.name
        if status == 404:
            message = "no such resource; see /openapi.json for the API"
        resp = error_response(status, _HTTP_CODES.get(status, "http_error"), message)
        if status == 416:  # says how long the file is: "bytes */<length>"
            for name, value in exc.get_headers():
                if name == "Content-Range":
                    resp.headers[name] = value
        if status == 405 and exc.valid_methods:  # type: ignore[attr-defined]
            resp.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        return resp

    @app.errorhandler(OperationalError)
    def _database_down(exc: OperationalError):  # noqa: ANN202
        # PostgreSQL restarting or unreachable: a retryable 503, not a 500
        log.warning("database unavailable: %s", type(exc.orig).__name__)
        return _unavailable()

    @app.errorhandler(DBAPIError)
    def _database_error(exc: DBAPIError):  # noqa: ANN202
        if exc.connection_invalidated:  # the connection died under the request
            return _unavailable()
        return _unexpected(exc)

    def _unavailable():  # noqa: ANN202
        resp = error_response(503, "database_unavailable",
                              "the job database is unavailable right now; retry in a few "
                              "seconds (operators: check PostgreSQL and DIARQ_DATABASE_URL)")
        resp.headers["Retry-After"] = "5"
        return resp

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # noqa: ANN202
        log.exception("unhandled error in request")
        return error_response(500, "internal_error",
                              "the server hit an unexpected error; try again, and report it "
                              "to the operator if it persists")
