"""Home Assistant's protocol, Wyoming, on its own TCP port, in front of the same engine as /v1.

A Wyoming request is a connection that says `transcribe`, then sends `audio-start`, `audio-chunk`s
and `audio-stop`; the answer is a `transcript` (after `transcript-start`, a `transcript-chunk` per
segment and `transcript-stop`, for clients that stream). `describe` is answered with `info`. The
framing and the events are the `wyoming` package's; this module only maps them onto a Job.

What holds for /v1 holds here, through the same objects: the request takes a place in the same
queue (a full queue is an `error` event, code queue_full), its audio is bounded (audio_too_long),
a bad format or language is an `error`, a client that disconnects stops its work, SIGTERM lets the
running ones finish and refuses new ones (shutting_down), and each request is logged and counted in
/metrics under the endpoint "wyoming".

Wyoming has no authentication. The port is off unless --wyoming-port is given, may listen on its own
address (--wyoming-host), and may admit only the addresses in --wyoming-allowed-clients: the Home
Assistant host. The firewall in front of it is the other half (docs/home-assistant.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import ipaddress
import logging
import threading
import time
import uuid
import wave
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from wyoming.asr import Transcribe, Transcript, TranscriptChunk, TranscriptStart, TranscriptStop
from wyoming.audio import AudioChunk, AudioChunkConverter, AudioStart, AudioStop, audioop
from wyoming.error import Error
from wyoming.event import Event, async_read_event
from wyoming.info import AsrModel, AsrProgram, Attribution, Describe, Info
from wyoming.server import AsyncEventHandler

from whisper_server import __version__, formats
from whisper_server.admission import QueueFull
from whisper_server.engine.types import Options
from whisper_server.errors import APIError
from whisper_server.jobs import ClientGone, Job
from whisper_server.state import State, model_name

log = logging.getLogger("whisper_server")
access_log = logging.getLogger("whisper_server.access")

ENDPOINT = "wyoming"
# What the audio is kept as while it arrives: 16 kHz, 16-bit, mono (32 kB a second), whatever the
# client sends; the job decodes it as a WAV, like an upload.
RATE, WIDTH, CHANNELS = 16000, 2, 1
BYTES_PER_SECOND = RATE * WIDTH * CHANNELS
# Formats a client may send (the converter's reach).
RATES = range(8000, 96001)
WIDTHS = (1, 2, 3, 4)
CHANNEL_COUNTS = (1, 2)
# Seconds a connection may stay silent (no event) before it is closed, as /v1's idle connections are.
IDLE_TIMEOUT_S = 30
# Open connections at once, past the queue's places (each may hold one utterance's audio while it
# arrives); past it, a new one is closed at once.
SPARE_CONNECTIONS = 8
# The longest utterance kept, in seconds (9.6 MB at 16 kHz): a voice command is a few seconds, and the
# connections together then hold at most (places + SPARE_CONNECTIONS) x 9.6 MB. Lower when
# --max-audio-seconds or --max-upload-mb is.
MAX_UTTERANCE_SECONDS = 300
# The largest data or payload one event may announce: an audio-chunk is a few kB (Home Assistant sends
# 2 kB). A bigger one closes the connection before any of it is read.
MAX_EVENT_BYTES = 1024 * 1024
# Seconds a describe that comes while the model loads waits for it (the languages come from the model).
DESCRIBE_WAIT_S = 10
# Seconds a transcription's thread waits for one event to be written before it takes the client for gone.
SEND_TIMEOUT_S = 10


class WyomingError(Exception):
    def __init__(self, code: str, text: str):
        super().__init__(text)
        self.code = code
        self.text = text


def served_name(state: State) -> str:
    """The model's name for Home Assistant: its first alias that is not one of OpenAI's (tiny.en, base),
    else its folder's or hub name."""
    from whisper_server.options import OPENAI_MODEL_NAMES

    own = [name for name in state.model_ids if name not in OPENAI_MODEL_NAMES]
    return own[0] if own else model_name(state.config.model)


def info(state: State) -> Info:
    """What `describe` is answered with: the model by its own name, its languages, our version."""
    loaded = state.loaded
    multilingual = bool(loaded and loaded.engine.multilingual)
    languages = sorted(formats.LANGUAGES) if multilingual else ["en"]
    attribution = Attribution(name="whisperlab (faster-whisper)", url="https://github.com/SYSTRAN/faster-whisper")
    model = AsrModel(
        name=served_name(state),
        description=f"Whisper {served_name(state)}",
        attribution=attribution,
        installed=True,
        version=__version__,
        languages=languages,
    )
    program = AsrProgram(
        name="whisperlab",
        description="whisperlab's faster-whisper server (the same queue as its OpenAI API)",
        attribution=attribution,
        installed=True,
        version=__version__,
        models=[model],
        supports_transcript_streaming=True,
    )
    return Info(asr=[program])


def language_of(given: Optional[str], multilingual: bool) -> Optional[str]:
    """Home Assistant's language (en, en-US, de_DE) as Whisper's code; WyomingError when Whisper has none."""
    if not given:
        return None
    code = given.replace("_", "-").split("-")[0].strip().lower()
    if code not in formats.LANGUAGES:
        raise WyomingError("invalid_language", f"Whisper cannot transcribe language {given!r}.")
    if code != "en" and not multilingual:
        raise WyomingError("invalid_language", f"The loaded model is English-only and cannot transcribe {given!r}.")
    return code


class _Request:
    """One utterance: the audio so far (16 kHz mono s16), its limit, and what was asked."""

    def __init__(self, limit_bytes: int, language: Optional[str]):
        self.audio = bytearray()
        self.limit_bytes = limit_bytes
        self.language = language
        self.converter = AudioChunkConverter(rate=RATE, width=WIDTH, channels=CHANNELS)
        self.request_id = uuid.uuid4().hex
        self.started = time.monotonic()

    def add(self, chunk: AudioChunk) -> None:
        _check_format(chunk.rate, chunk.width, chunk.channels)
        data = self.converter.convert(chunk).audio
        if len(self.audio) + len(data) > self.limit_bytes:
            seconds = self.limit_bytes / BYTES_PER_SECOND
            self.audio = bytearray()
            raise WyomingError("audio_too_long", f"Audio is longer than this server's limit of {seconds:g} seconds.")
        self.audio += data

    def wav(self) -> io.BytesIO:
        out = io.BytesIO()
        with wave.open(out, "wb") as writer:
            writer.setframerate(RATE)
            writer.setsampwidth(WIDTH)
            writer.setnchannels(CHANNELS)
            writer.writeframes(memoryview(self.audio))
        self.audio = bytearray()
        out.seek(0)
        return out


class _Bounded:
    """The connection's reader, as the wyoming package reads events from it, refusing to read an event
    part larger than MAX_EVENT_BYTES (its header line is bounded by the stream's own 64 KiB limit)."""

    def __init__(self, reader: asyncio.StreamReader):
        self._reader = reader

    async def readline(self) -> bytes:
        return await self._reader.readline()

    async def readexactly(self, n: int) -> bytes:
        if not 0 <= n <= MAX_EVENT_BYTES:
            raise ValueError(f"an event part of {n} bytes (at most {MAX_EVENT_BYTES})")
        return await self._reader.readexactly(n)

    def __getattr__(self, name):
        return getattr(self._reader, name)


def _check_format(rate, width, channels) -> None:
    if rate not in RATES or width not in WIDTHS or channels not in CHANNEL_COUNTS:
        raise WyomingError(
            "invalid_audio_format",
            f"Unsupported audio: rate={rate} width={width} channels={channels}. Send PCM at 8000-96000 Hz, "
            f"{'/'.join(map(str, WIDTHS))} bytes a sample, 1 or 2 channels.",
        )


class Handler(AsyncEventHandler):
    """One connection. Events are read all the time, so a client that leaves mid-transcription is seen
    (its work stops within a segment); the transcription runs on the service's threads."""

    def __init__(self, service: WyomingService, reader, writer):
        super().__init__(reader, writer)
        self._service = service
        self._state = service.state
        self._language: Optional[str] = None
        self._request: Optional[_Request] = None
        self._task: Optional[asyncio.Task] = None
        self._entered = False
        self._refused = False
        self.gone = threading.Event()

    async def run(self) -> None:
        reading: Optional[asyncio.Task] = None
        try:
            while not self.gone.is_set():
                if reading is None:
                    reading = asyncio.ensure_future(async_read_event(_Bounded(self.reader)))
                # The read is waited on, never cancelled, while a transcription runs: a cancelled read
                # could leave half an event consumed.
                done, _ = await asyncio.wait({reading}, timeout=IDLE_TIMEOUT_S)
                if not done:
                    if self._task is not None and not self._task.done():
                        continue  # a transcription is running: the client waits for it
                    break
                task, reading = reading, None
                try:
                    event = task.result()
                except (ConnectionError, EOFError, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
                    log.info("wyoming: closing a connection that sent something other than an event: %r", exc)
                    break
                if event is None:
                    break
                if not await self.handle_event(event):
                    break
        finally:
            self.gone.set()
            if reading is not None:
                reading.cancel()
            if self._task is not None:
                await asyncio.wait({self._task})  # its own faults are logged and answered there
            self._leave()
            self.writer.close()

    async def handle_event(self, event: Event) -> bool:
        if Describe.is_type(event.type):
            # The languages are known once the model is: a describe during the start waits for it a while
            # (Home Assistant keeps the first info it gets).
            for _ in range(int(DESCRIBE_WAIT_S / 0.1)):
                if self._state.loaded is not None:
                    break
                await asyncio.sleep(0.1)
            await self.write_event(info(self._state).event())
            return True
        if self._task is not None and not self._task.done():
            await asyncio.wait({self._task})  # one request at a time: the next waits for the answer
        if self._refused:
            # The rest of a refused request is read and dropped; its audio-stop ends the connection,
            # so a client that waits for a transcript is not left waiting.
            return not AudioStop.is_type(event.type)
        try:
            try:
                return await self._handle(event)
            except (KeyError, TypeError, ValueError, AttributeError, audioop.error) as exc:
                raise WyomingError("invalid_event", f"The {event.type!r} event is malformed: {exc!r}.") from None
        except WyomingError as error:
            self._refused = True
            self._request = None
            self._leave()
            await self._refuse(error)
            return not AudioStop.is_type(event.type)

    async def _handle(self, event: Event) -> bool:
        state = self._state
        if Transcribe.is_type(event.type):
            asked = Transcribe.from_event(event)
            self._language = None
            if asked.name and asked.name not in (served_name(state), model_name(state.config.model), *state.model_ids):
                raise WyomingError("model_not_found", f"The model {asked.name!r} is not served here.")
            if state.loaded is None:
                raise WyomingError("model_loading", "The model is still loading; try again shortly.")
            self._language = language_of(asked.language, state.loaded.engine.multilingual)
            return True
        if AudioStart.is_type(event.type):
            start = AudioStart.from_event(event)
            self._begin()
            _check_format(start.rate, start.width, start.channels)
            return True
        if AudioChunk.is_type(event.type):
            if self._request is None:
                self._begin()  # a client that sends audio without audio-start
            self._request.add(AudioChunk.from_event(event))
            return True
        if AudioStop.is_type(event.type):
            request, self._request = self._request, None
            if request is None:  # audio-stop with no audio: nothing was said
                await self._write(Transcript(text="").event())
                return True
            self._task = asyncio.create_task(self._transcribe(request))
            return True
        return True  # events for other services are not ours to answer

    def _begin(self) -> None:
        state = self._state
        if state.draining.is_set():
            raise WyomingError("shutting_down", "The server is shutting down; try again shortly.")
        if state.loaded is None:
            raise WyomingError("model_loading", "The model is still loading; try again shortly.")
        config = state.config
        seconds = min(config.max_audio_seconds, MAX_UTTERANCE_SECONDS)
        limit = int(min(seconds * BYTES_PER_SECOND, config.max_upload_bytes))
        self._request = _Request(limit, self._language)
        if not self._entered:
            # Counted from audio-start: a command being spoken when SIGTERM comes is still answered.
            state.enter()
            self._entered = True

    def _leave(self) -> None:
        if self._entered:
            self._entered = False
            self._state.leave()

    async def _refuse(self, error: WyomingError, request: Optional[_Request] = None) -> None:
        self._log(request or _Request(0, None), _status(error.code), None)
        log.info("wyoming: refused (%s): %s", error.code, error.text)
        await self._write(Error(text=error.text, code=error.code).event())

    async def _write(self, event: Event) -> bool:
        if self.gone.is_set():
            return False
        try:
            await self.write_event(event)
            return True
        except (ConnectionError, RuntimeError):
            self.gone.set()
            return False

    async def _transcribe(self, request: _Request) -> None:
        loop = asyncio.get_running_loop()
        stats = {"audio_s": None, "proc_s": None, "language": None}
        try:
            job = self._job(request, stats)
        except WyomingError as error:
            await self._refuse(error, request)
            self._leave()
            return
        started = False
        text = []

        def send(event: Event) -> None:
            # Bounded: a loop that stopped (close() after the drain) never runs the write, and a worker
            # blocked here forever would keep the process from exiting.
            try:
                asyncio.run_coroutine_threadsafe(self._write(event), loop).result(timeout=SEND_TIMEOUT_S)
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError, RuntimeError):
                self.gone.set()

        def work() -> str:
            nonlocal started
            for segment in job.segments():
                if not started:
                    send(TranscriptStart(language=stats["language"]).event())
                    started = True
                piece = segment.text if text else segment.text.lstrip()
                text.append(piece)
                send(TranscriptChunk(text=piece).event())
            return "".join(text).strip()

        try:
            try:
                transcript = await loop.run_in_executor(self._service.pool, work)
            finally:
                job.close()
            if not started:
                await self._write(TranscriptStart(language=stats["language"]).event())
            await self._write(TranscriptStop().event())
            await self._write(Transcript(text=transcript, language=stats["language"]).event())
            self._log(request, 200, stats)
        except ClientGone:
            self._log(request, 499, stats)
        except APIError as error:
            self._log(request, error.status, stats)
            await self._write(Error(text=error.message, code=error.code).event())
        except Exception:
            log.exception("request_id=%s wyoming: fault while transcribing", request.request_id)
            self._log(request, 500, stats)
            await self._write(Error(text="The server had an error while transcribing.", code="server_error").event())
        finally:
            # Only now: a drain (SIGTERM) waits until the answer is written, not only computed.
            self._leave()

    def _job(self, request: _Request, stats: dict) -> Job:
        state = self._state
        if state.draining.is_set():
            raise WyomingError("shutting_down", "The server is shutting down; try again shortly.")
        config = state.config
        try:
            return Job(
                admission=state.admission,
                engine=state.loaded.engine,
                options=Options(language=request.language, timestamps=False),
                upload=request.wav(),
                max_audio_seconds=config.max_audio_seconds,
                piece_seconds=config.piece_seconds,
                metrics=state.metrics,
                stats=stats,
                client_gone=self.gone.is_set,
                residency=state.residency,
            )
        except QueueFull as full:
            raise WyomingError(
                "queue_full",
                f"The server is busy: every worker and queue place is taken. Try again in {full.retry_after} s.",
            ) from None

    def _log(self, request: _Request, status: int, stats: Optional[dict]) -> None:
        stats = stats or {}
        elapsed = time.monotonic() - request.started
        self._state.metrics.requests.labels(ENDPOINT, str(status)).inc()
        if status < 400 or status == 499:
            self._state.metrics.latency.labels(ENDPOINT).observe(elapsed)
        audio_s, proc_s = stats.get("audio_s"), stats.get("proc_s")
        rtf = f"{proc_s / audio_s:.3f}" if audio_s and proc_s is not None else "-"
        access_log.info(
            "request_id=%s method=WYOMING path=transcribe status=%s audio_s=%s proc_s=%s rtf=%s language=%s "
            "total_s=%.3f peer=%s",
            request.request_id,
            status,
            f"{audio_s:.2f}" if audio_s is not None else "-",
            f"{proc_s:.3f}" if proc_s is not None else "-",
            rtf,
            stats.get("language") or "-",
            elapsed,
            self._service.peer(self.writer),
        )


def _status(code: str) -> int:
    """The HTTP status /v1 would have answered with, for the log and /metrics."""
    return {
        "queue_full": 429,
        "shutting_down": 503,
        "model_loading": 503,
        "audio_too_long": 413,
        "model_not_found": 404,
    }.get(code, 400)


def _allowed(peer: str, allowed: tuple) -> bool:
    if not allowed:
        return True
    try:
        address = ipaddress.ip_address(peer.split("%")[0])
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in allowed)


class WyomingService:
    """The Wyoming listener: an asyncio loop on its own thread, transcriptions on a thread pool as large
    as the queue (each admitted request may wait in it for a worker)."""

    def __init__(self, state: State, host: str, port: int, allowed_clients=(), zeroconf_name: str = ""):
        self.state = state
        self.host = host
        self.port = port
        self.allowed = tuple(ipaddress.ip_network(c, strict=False) for c in allowed_clients)
        self.zeroconf_name = zeroconf_name
        self.pool = ThreadPoolExecutor(state.admission.capacity, thread_name_prefix="wyoming")
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._server: Optional[asyncio.AbstractServer] = None
        self._handlers: set = set()
        self._zeroconf = None
        self._thread: Optional[threading.Thread] = None

    @staticmethod
    def peer(writer) -> str:
        name = writer.get_extra_info("peername")
        return str(name[0]) if name else "-"

    def start(self) -> None:
        """Binds and serves on a thread of its own; OSError when the address cannot be bound."""
        ready = threading.Event()
        failure: list[BaseException] = []

        def serve() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self._server = loop.run_until_complete(asyncio.start_server(self._connected, self.host, self.port))
                if self.port == 0:
                    self.port = self._server.sockets[0].getsockname()[1]
                if self.zeroconf_name:
                    loop.run_until_complete(self._announce())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self._unannounce())
            loop.close()

        self._thread = threading.Thread(target=serve, name="wyoming", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            raise failure[0]

    async def _connected(self, reader, writer) -> None:
        peer = self.peer(writer)
        if not _allowed(peer, self.allowed):
            log.warning("wyoming: refused a connection from %s (not in --wyoming-allowed-clients)", peer)
            writer.close()
            return
        most = self.state.admission.capacity + SPARE_CONNECTIONS
        if len(self._handlers) >= most:
            log.warning("wyoming: refused a connection from %s: %d are open", peer, most)
            writer.close()
            return
        handler = Handler(self, reader, writer)
        self._handlers.add(handler)
        try:
            await handler.run()
        finally:
            self._handlers.discard(handler)

    async def _announce(self) -> None:
        from wyoming.zeroconf import HomeAssistantZeroconf

        host = None if self.host in ("0.0.0.0", "::", "") else self.host
        self._zeroconf = HomeAssistantZeroconf(port=self.port, name=self.zeroconf_name, host=host)
        await self._zeroconf.register_server()
        log.info("wyoming: announced as %s._wyoming._tcp on %s:%d", self.zeroconf_name, self._zeroconf.host, self.port)

    async def _unannounce(self) -> None:
        if self._zeroconf is not None:
            await self._zeroconf._aiozc.async_close()

    def close(self) -> None:
        """Stops listening and closes the connections (call after the drain)."""
        loop = self._loop
        if loop is None or self._thread is None:
            return

        async def stop() -> None:
            if self._server is not None:
                self._server.close()
            for handler in list(self._handlers):
                handler.gone.set()
                handler.writer.close()
            others = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            loop.stop()

        asyncio.run_coroutine_threadsafe(stop(), loop)
        self._thread.join(timeout=5)
        self.pool.shutdown(wait=False, cancel_futures=True)
