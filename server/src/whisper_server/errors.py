"""One exception type that carries OpenAI's error envelope, and the one place that renders it."""

from __future__ import annotations

import logging
from typing import Optional

from flask import Flask, g, jsonify
from werkzeug.exceptions import HTTPException

log = logging.getLogger("whisper_server")

# OpenAI's error "type" for each status we answer with.
_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    429: "rate_limit_error",
    431: "invalid_request_error",
    500: "server_error",
    503: "server_error",
}


class APIError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: Optional[str] = None,
        code: Optional[str] = None,
        headers: Optional[dict] = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.headers = headers or {}

    @property
    def envelope(self) -> dict:
        return {
            "error": {
                "message": self.message,
                "type": _TYPES.get(self.status, "invalid_request_error"),
                "param": self.param,
                "code": self.code,
            }
        }


def bad_request(message: str, param: Optional[str] = None, code: str = "invalid_value") -> APIError:
    return APIError(400, message, param=param, code=code)


def upload_too_large(limit_mb: float) -> APIError:
    return APIError(
        413, f"Maximum content size limit ({limit_mb:g} MiB) exceeded.", param="file", code="file_too_large"
    )


def render(error: APIError):
    response = jsonify(error.envelope)
    response.status_code = error.status
    for name, value in error.headers.items():
        response.headers[name] = value
    return response


def register(app: Flask) -> None:
    """Every error leaves the app as an envelope: ours, Werkzeug's, and real faults alike."""

    @app.errorhandler(APIError)
    def _api_error(error: APIError):
        return render(error)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        status = error.code or 500
        if status == 413:
            return render(upload_too_large(app.config["WHISPER"].max_upload_mb))
        code = {404: "not_found", 405: "method_not_allowed"}.get(status)
        return render(APIError(status, error.description or error.name, code=code))

    @app.errorhandler(Exception)
    def _fault(error: Exception):
        request_id = getattr(g, "request_id", "-")
        log.exception("request_id=%s unhandled fault", request_id)
        return render(
            APIError(
                500,
                f"The server had an error while processing your request (request id {request_id}).",
                code="server_error",
            )
        )
