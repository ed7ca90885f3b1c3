"""/v1: OpenAI's audio and models endpoints."""

from __future__ import annotations

import io
import json
import logging
from dataclasses import dataclass

from flask import Blueprint, Response, g, jsonify, request

from whisper_server import audio, auth, formats
from whisper_server.admission import QueueFull
from whisper_server.engine.types import Options
from whisper_server.errors import (
    APIError,
    bad_request,
    model_loading,
    model_not_found,
    queue_full,
    server_error,
    upload_too_large,
)
from whisper_server.jobs import ClientGone, Job
from whisper_server.state import get_state, model_name

log = logging.getLogger("whisper_server")
api = Blueprint("v1", __name__, url_prefix="/v1")

CREATED = 1677610602  # whisper-1's own "created" stamp; clients only check it is an int.
GRANULARITIES = ("segment", "word")


@api.before_request
def _authenticate():
    auth.require_key(get_state().config, request.headers.get("Authorization"))


@dataclass(frozen=True)
class Params:
    model: str
    response_format: str
    options: Options
    granularities: tuple[str, ...]
    stream: bool


def parse_params(form, task: str, multilingual: bool, model_ids) -> Params:
    """All request validation, in one place. Raises APIError (400/404).

    Fields newer OpenAI clients send that change nothing here (chunking_strategy, include[]) are
    accepted and ignored, as is any other field this server does not read."""
    response_format = form.get("response_format") or "json"
    if response_format == "diarized_json":  # before the model: gpt-4o-transcribe-diarize asks for it
        raise bad_request(
            "response_format 'diarized_json' needs speaker diarization, which this server does not do. "
            f"Use one of {sorted(formats.FORMATTERS)}.",
            "response_format",
            "unsupported_value",
        )
    model = (form.get("model") or "").strip()
    if not model:
        raise bad_request("you must provide a model parameter", "model", "missing_required_parameter")
    if model not in model_ids:
        raise model_not_found(model, model_ids)
    if response_format not in formats.FORMATTERS:
        raise bad_request(
            f"'{response_format}' is not one of {sorted(formats.FORMATTERS)} - 'response_format'",
            "response_format",
        )
    language = None
    if task == "transcribe":
        language = (form.get("language") or "").strip().lower() or None
        if language is not None and language not in formats.LANGUAGES:
            raise bad_request(
                f"Invalid language '{language}'. Language parameter must be specified in ISO-639-1 format.",
                "language",
            )
        if language not in (None, "en") and not multilingual:
            raise bad_request(
                f"The loaded model is English-only and cannot transcribe language '{language}'.",
                "language",
            )
    raw_temperature = form.get("temperature") or "0"
    try:
        temperature = float(raw_temperature)
    except ValueError:
        temperature = -1.0
    if not 0.0 <= temperature <= 1.0:
        raise bad_request(f"temperature must be a number from 0 to 1, not '{raw_temperature}'", "temperature")
    granularities = tuple(form.getlist("timestamp_granularities[]") + form.getlist("timestamp_granularities"))
    for value in granularities:
        if value not in GRANULARITIES:
            raise bad_request(
                f"'{value}' is not one of {list(GRANULARITIES)} - 'timestamp_granularities'",
                "timestamp_granularities",
            )
    if granularities and response_format != "verbose_json":
        raise bad_request(
            "response_format must be set to verbose_json to use timestamp granularities.",
            "timestamp_granularities",
        )
    raw_stream = (form.get("stream") or "false").strip().lower()
    if raw_stream not in ("true", "false", "1", "0"):
        raise bad_request(f"stream must be true or false, not '{raw_stream}'", "stream")
    stream = raw_stream in ("true", "1")
    if stream and response_format not in ("json", "text"):
        raise bad_request("stream=true works with response_format json or text.", "stream")
    options = Options(
        task=task,
        language=language,
        prompt=form.get("prompt") or None,
        temperature=temperature,
        word_timestamps="word" in granularities,
        # json and text show no times: decoding without timestamp tokens gives the same text with
        # fewer tokens (an 11 s note decodes ~13% faster). A stream keeps them, for its deltas.
        timestamps=stream or response_format in ("verbose_json", "srt", "vtt"),
    )
    return Params(model, response_format, options, granularities, stream)


def _require_multipart() -> None:
    if request.mimetype != "multipart/form-data":
        raise APIError(
            400,
            "The request must be multipart/form-data with the audio in a 'file' field.",
            param="file",
            code="invalid_content_type",
        )


def _upload() -> io.BytesIO:
    """The uploaded file, held once: the in-memory stream the multipart parser wrote, not a copy."""
    upload = request.files.get("file")
    if upload is None:
        raise bad_request("you must provide a file parameter", "file", "missing_required_parameter")
    # The job takes the stream over: the request closes its files when the view returns, which
    # for a stream is before the audio is read.
    stream, upload.stream = upload.stream, io.BytesIO()
    # The parser has copied the body into that stream; waitress's own copy of it can go now rather
    # than when the response ends (a queued request would hold both).
    body = request.environ.get("wsgi.input")
    if "waitress.client_disconnected" in request.environ and hasattr(body, "close"):
        body.close()
    size = stream.seek(0, io.SEEK_END)
    stream.seek(0)
    config = get_state().config
    if size > config.max_upload_bytes:
        raise upload_too_large(config.max_upload_mb)
    if size == 0:
        raise APIError(400, "The uploaded file is empty.", param="file", code="empty_file")
    return stream


def _engine():
    state = get_state()
    if state.loaded is None:
        raise model_loading()
    return state.loaded.engine


def _client_gone_check():
    """Whether this request's client has left. waitress tells, with channel_request_lookahead > 0
    (cli.py sets it); elsewhere (the test client) it never has. Bound now: a stream runs after the
    request context is gone."""
    check = request.environ.get("waitress.client_disconnected")
    return (lambda: bool(check())) if check else (lambda: False)


def _transcription(task: str):
    state = get_state()
    config = state.config
    engine = _engine()
    _require_multipart()
    params = parse_params(request.form, task, engine.multilingual, state.model_ids)
    upload = _upload()
    audio.probe(upload, config.max_audio_seconds)
    try:
        job = Job(
            admission=state.admission,
            engine=engine,
            options=params.options,
            upload=upload,
            max_audio_seconds=config.max_audio_seconds,
            piece_seconds=config.piece_seconds,
            metrics=state.metrics,
            stats=g.stats,
            client_gone=_client_gone_check(),
            residency=state.residency,
        )
    except QueueFull as full:
        raise queue_full(full.retry_after) from None
    if params.stream:
        response = Response(_sse(job, g.request_id), mimetype="text/event-stream")
        response.headers["Cache-Control"] = "no-cache"
        response.call_on_close(job.close)  # a stream never read still gives its place back
        return response
    try:
        segments = list(job.segments())
    except ClientGone:
        return Response(status=499)  # nobody reads it; the log and /metrics do
    body, mimetype = formats.FORMATTERS[params.response_format](segments, job.info, params.granularities, task)
    return Response(body, mimetype=mimetype)


def _event(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


def _sse(job: Job, request_id: str):
    """OpenAI's transcription stream: a transcript.text.delta per segment, then transcript.text.done.
    An SSE comment goes first, at once, so the client knows it was accepted while it waits."""
    yield ": accepted\n\n"
    sent = []
    try:
        for segment in job.segments():
            # The first delta loses Whisper's leading space, so the deltas join up to the done text.
            yield _event({"type": "transcript.text.delta", "delta": segment.text if sent else segment.text.lstrip()})
            sent.append(segment)
        # usage is left out: OpenAI's stream types it in tokens, which Whisper's duration is not.
        yield _event({"type": "transcript.text.done", "text": formats.full_text(sent)})
    except ClientGone:
        return
    except APIError as error:
        # The headers are sent already, so bad audio found while decoding travels as an error event.
        yield _event({"type": "error", **error.envelope})
    except Exception:
        log.exception("request_id=%s fault while streaming", request_id)
        yield _event({"type": "error", **server_error().envelope})


@api.post("/audio/transcriptions")
def transcriptions():
    return _transcription("transcribe")


@api.post("/audio/translations")
def translations():
    return _transcription("translate")


def _model_card(model_id: str) -> dict:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "whisperlab"}


@api.get("/models")
def models():
    return jsonify({"object": "list", "data": [_model_card(m) for m in get_state().model_ids]})


@api.get("/models/<path:model_id>")
def model(model_id: str):
    if model_id not in get_state().model_ids:
        raise model_not_found(model_id)
    return jsonify(_model_card(model_id))


def _residency(model_id: str):
    state = get_state()
    if model_id not in (*state.model_ids, model_name(state.config.model)):
        raise model_not_found(model_id, state.model_ids)
    if state.residency is None:
        raise model_loading()
    return state.residency


@api.post("/models/<path:model_id>/unload")
def unload_model(model_id: str):
    """Frees the model's memory now (a game is starting); the next request loads it again. Waits for
    running transcriptions to end (409 model_busy after UNLOAD_WAIT_S)."""
    residency = _residency(model_id)
    status = residency.unload("request")
    log.info("request_id=%s model unload asked for: %s", g.request_id, status)
    return jsonify({**_model_card(model_id), "status": status})


@api.post("/models/<path:model_id>/load")
def load_model(model_id: str):
    """Loads the model now, if it was unloaded, so the next request does not wait for it."""
    residency = _residency(model_id)
    status = residency.load()
    return jsonify({**_model_card(model_id), "status": status})
