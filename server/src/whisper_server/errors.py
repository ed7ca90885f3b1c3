"""One exception type that carries OpenAI's error envelope, and the one place that renders it."""

from __future__ import annotations

import logging
from typing import Optional, Sequence

from flask import Flask, g, jsonify
from werkzeug.exceptions import HTTPException

from whisper_server.state import get_state

log = logging.getLogger("whisper_server")

# Retry-After, in seconds, for a server that is loading its model or restarting: it is back shortly.
RETRY_SOON = "5"

# OpenAI's error "type" for each status we answer with.
_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    404: "invalid_request_error",
    405: "invalid_request_error",
    409: "invalid_request_error",
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


def model_not_found(model: str, available: Optional[Sequence[str]] = None) -> APIError:
    listed = f". Available: {', '.join(available)}." if available is not None else ""
    return APIError(404, f"The model '{model}' does not exist{listed}", param="model", code="model_not_found")


def queue_full(retry_after: int) -> APIError:
    return APIError(
        429,
        "The server is busy: too many requests are waiting. Retry after the time in Retry-After.",
        code="queue_full",
        headers={"Retry-After": str(retry_after)},
    )


def model_loading() -> APIError:
    return APIError(
        503, "The model is still loading; try again shortly.", code="model_loading", headers={"Retry-After": RETRY_SOON}
    )


def shutting_down() -> APIError:
    return APIError(
        503,
        "The server is shutting down (a restart or deploy); retry in a few seconds.",
        code="shutting_down",
        headers={"Retry-After": RETRY_SOON},
    )


def model_busy(seconds: float) -> APIError:
    return APIError(
        409,
        f"The model is still transcribing after {seconds:g} s, so it was not unloaded; try again when it is idle.",
        code="model_busy",
    )


def model_load_failed(detail: object) -> APIError:
    return APIError(
        503,
        f"The model could not be loaded again: {detail}",
        code="model_load_failed",
        headers={"Retry-After": RETRY_SOON},
    )


def server_error(request_id: Optional[str] = None) -> APIError:
    """A fault of ours; the request id, where given, finds it in the log."""
    where = f" (request id {request_id})" if request_id is not None else ""
    return APIError(500, f"The server had an error while processing your request{where}.", code="server_error")


def invalid_audio(detail: object) -> APIError:
    return APIError(
        400,
        "Audio file could not be decoded or its format is not supported "
        f"(supported: anything ffmpeg reads, e.g. ogg/opus, m4a, mp3, wav, flac, webm): {detail}",
        param="file",
        code="invalid_audio",
    )


def audio_too_long(limit: float, found: Optional[float] = None) -> APIError:
    what = f"is {found / 60:.1f} minutes long" if found is not None else "runs past the limit"
    return APIError(
        413,
        f"The audio {what}; this server takes at most {limit / 60:g} minutes per request "
        "(--max-audio-seconds). Split it, or raise the limit.",
        param="file",
        code="audio_too_long",
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
            return render(upload_too_large(get_state(app).config.max_upload_mb))
        code = {404: "not_found", 405: "method_not_allowed"}.get(status)
        return render(APIError(status, error.description or error.name, code=code))

    @app.errorhandler(Exception)
    def _fault(error: Exception):
        request_id = getattr(g, "request_id", "-")
        log.exception("request_id=%s unhandled fault", request_id)
        return render(server_error(request_id))
