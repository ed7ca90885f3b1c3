"""One transcription request through the official OpenAI SDK, timed, with its error kept as data."""

from __future__ import annotations

import dataclasses
import json
import time
import uuid
from typing import Optional

from whisperlab.endpoints import Endpoint
from whisperlab.files import Audio


@dataclasses.dataclass
class Call:
    endpoint: str
    ok: bool
    latency_s: float  # the whole call, the SDK's own retries included
    request_id: str  # sent as X-Request-ID: the server logs it, so a report line finds its log line
    body: str = ""  # the response as the endpoint sent it
    text: str = ""  # the transcript (from a json or verbose_json body; the body itself for text)
    status: Optional[int] = None
    error: str = ""
    retries: int = 0
    # True when another endpoint could do better: the endpoint was unreachable, timed out or busy. False
    # when the file itself was refused (400, 413, 415): every endpoint would refuse it.
    try_next: bool = False


def transcribe(
    client,
    endpoint: Endpoint,
    audio: Audio,
    *,
    response_format: str = "json",
    language: Optional[str] = None,
    prompt: Optional[str] = None,
    request_id: Optional[str] = None,
    upload_name: Optional[str] = None,
) -> Call:
    import openai

    request_id = request_id or f"whisperlab-{uuid.uuid4().hex[:16]}"
    extra = {}
    if language:
        extra["language"] = language
    if prompt:
        extra["prompt"] = prompt
    began = time.monotonic()
    try:
        with open(audio.path, "rb") as upload:  # read only; the file is never changed
            raw = client.audio.transcriptions.with_raw_response.create(
                model=endpoint.model,
                file=(upload_name or audio.path.name, upload),
                response_format=response_format,
                extra_headers={"X-Request-ID": request_id},
                **extra,
            )
        latency = time.monotonic() - began
        body = raw.text
        return Call(
            endpoint.label,
            True,
            latency,
            request_id,
            body=body,
            text=_text(body, response_format),
            status=raw.status_code,
            retries=raw.retries_taken,
        )
    except openai.APIStatusError as error:
        status = error.status_code
        return Call(
            endpoint.label,
            False,
            time.monotonic() - began,
            request_id,
            status=status,
            error=f"HTTP {status}: {_message(error)}",
            try_next=status in (401, 403, 404, 408, 429) or status >= 500,
        )
    except openai.APITimeoutError:
        return Call(endpoint.label, False, time.monotonic() - began, request_id, error="timed out", try_next=True)
    except openai.APIConnectionError as error:
        cause = error.__cause__ or error
        return Call(
            endpoint.label,
            False,
            time.monotonic() - began,
            request_id,
            error=f"cannot connect: {cause}",
            try_next=True,
        )
    except OSError as error:
        return Call(endpoint.label, False, time.monotonic() - began, request_id, error=f"cannot read the file: {error}")


def _text(body: str, response_format: str) -> str:
    if response_format in ("json", "verbose_json"):
        try:
            return str(json.loads(body).get("text", "")).strip()
        except (ValueError, AttributeError):
            return ""
    return body.strip()


def _message(error) -> str:
    body = getattr(error, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
    return str(getattr(error, "message", "") or error)
