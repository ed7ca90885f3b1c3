"""The Wyoming port on a fake engine: the `wyoming` package's own client, over a real socket, driven as
Home Assistant drives it (transcribe, audio-start, audio-chunks, audio-stop, then read until a transcript).
The real model's turn is in integration/test_wyoming_real.py."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest
from test_residency import Unloadable, wait_for
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info

from conftest import FakeEngine, make_app
from whisper_server.state import get_state
from whisper_server.wyoming_service import WyomingService

SECOND = np.zeros(16000, dtype="<i2").tobytes()


@pytest.fixture
def serve():
    started = []

    def start(engine=None, allowed=(), **config):
        app = make_app(engine or FakeEngine(), **config)
        service = WyomingService(get_state(app), "127.0.0.1", 0, allowed)
        service.start()
        started.append(service)
        return service

    yield start
    for service in started:
        service.close()
        if service.state.residency is not None:
            service.state.residency.close()


async def _ask(port, audio=SECOND, rate=16000, width=2, channels=1, language="en", name=None, chunk=2048, leave=False):
    events = []
    async with AsyncTcpClient("127.0.0.1", port) as client:
        try:
            await client.write_event(Transcribe(name=name, language=language).event())
            await client.write_event(AudioStart(rate=rate, width=width, channels=channels).event())
            for i in range(0, len(audio), chunk):
                piece = audio[i : i + chunk]
                await client.write_event(AudioChunk(rate=rate, width=width, channels=channels, audio=piece).event())
            await client.write_event(AudioStop().event())
        except ConnectionError:
            pass
        if leave:
            return events
        while True:
            try:
                event = await asyncio.wait_for(client.read_event(), 20)
            except ConnectionError:
                event = None
            if event is None:
                events.append(None)
                return events
            events.append(event)
            if Transcript.is_type(event.type) or Error.is_type(event.type):
                return events


def ask(port, **kwargs):
    try:
        return asyncio.run(_ask(port, **kwargs))
    except ConnectionError:  # closed on us, as a refused client is
        return [None]


def test_describe_names_the_model_its_languages_and_streaming(serve):
    service = serve(FakeEngine(multilingual=False), model_aliases=("whisper-1", "tiny.en"))

    async def describe():
        async with AsyncTcpClient("127.0.0.1", service.port) as client:
            await client.write_event(Describe().event())
            return Info.from_event(await client.read_event())

    info = asyncio.run(describe())
    program = info.asr[0]
    assert program.name == "whisperlab" and program.installed and program.supports_transcript_streaming
    assert program.version and program.models[0].name == "tiny.en"
    assert program.models[0].languages == ["en"]


def test_a_transcript_streams_then_arrives_whole(serve):
    service = serve()
    events = ask(service.port)
    assert [e.type for e in events] == [
        "transcript-start",
        "transcript-chunk",
        "transcript-chunk",
        "transcript-stop",
        "transcript",
    ]
    assert Transcript.from_event(events[-1]).text == "Hello there. General Kenobi."
    assert "".join(e.data["text"] for e in events if e.type == "transcript-chunk") == "Hello there. General Kenobi."
    metrics = service.state.metrics.registry.get_sample_value
    # Counted once the answer is written, which the client may read first.
    assert wait_for(lambda: metrics("whisper_requests_total", {"endpoint": "wyoming", "status": "200"}) == 1)


def test_the_language_reaches_the_engine_in_whispers_form(serve):
    engine = FakeEngine()
    service = serve(engine)
    ask(service.port, language="de-DE")
    assert engine.calls[-1].language == "de" and engine.calls[-1].timestamps is False
    ask(service.port, language=None)
    assert engine.calls[-1].language is None


def test_other_formats_are_converted(serve):
    engine = FakeEngine()
    service = serve(engine)
    stereo_48k = np.zeros(48000 * 2, dtype="<i2").tobytes()
    events = ask(service.port, audio=stereo_48k, rate=48000, channels=2)
    assert events[-1].type == "transcript"


@pytest.mark.parametrize(
    "kwargs, code",
    [
        ({"rate": 100}, "invalid_audio_format"),
        ({"width": 8}, "invalid_audio_format"),
        ({"channels": 6}, "invalid_audio_format"),
        ({"language": "xx"}, "invalid_language"),
        ({"name": "large-v3"}, "model_not_found"),
    ],
)
def test_bad_requests_get_an_error_event_and_nothing_runs(serve, kwargs, code):
    engine = FakeEngine()
    service = serve(engine)
    events = ask(service.port, **kwargs)
    assert events[0].type == "error" and Error.from_event(events[0]).code == code
    assert Error.from_event(events[0]).text
    assert engine.calls == []
    assert service.state.inflight == 0


def test_an_english_model_refuses_other_languages(serve):
    service = serve(FakeEngine(multilingual=False))
    assert Error.from_event(ask(service.port, language="fr")[0]).code == "invalid_language"


def test_audio_over_the_limit_is_refused_while_it_arrives(serve):
    engine = FakeEngine()
    service = serve(engine, max_audio_seconds=2)
    events = ask(service.port, audio=SECOND * 3)
    assert Error.from_event(events[0]).code == "audio_too_long" and "2 seconds" in events[0].data["text"]
    assert engine.calls == []
    assert ask(service.port, audio=SECOND)[-1].type == "transcript"  # the next one is fine


def test_a_full_queue_is_an_error_event(serve):
    gate = threading.Event()
    service = serve(FakeEngine(gate=gate), workers=1, max_queue=0)
    try:
        first = threading.Thread(target=ask, args=(service.port,))
        first.start()
        assert wait_for(lambda: service.state.admission.running == 1)
        events = ask(service.port)
        assert Error.from_event(events[0]).code == "queue_full" and "Try again" in events[0].data["text"]
    finally:
        gate.set()
    first.join(10)
    metrics = service.state.metrics.registry.get_sample_value
    assert metrics("whisper_requests_total", {"endpoint": "wyoming", "status": "429"}) == 1


def test_a_client_that_leaves_stops_its_work(serve):
    gate = threading.Event()
    engine = FakeEngine(gate=gate, segments=FakeEngine().segments * 50)
    service = serve(engine)

    async def leave_once_it_runs():
        async with AsyncTcpClient("127.0.0.1", service.port) as client:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=SECOND).event())
            await client.write_event(AudioStop().event())
            while service.state.admission.running != 1:
                await asyncio.sleep(0.02)

    asyncio.run(asyncio.wait_for(leave_once_it_runs(), 10))
    gate.set()
    assert wait_for(lambda: service.state.admission.running == 0 and service.state.inflight == 0)
    metrics = service.state.metrics.registry.get_sample_value
    assert metrics("whisper_cancelled_total", {"stage": "running"}) == 1
    assert metrics("whisper_requests_total", {"endpoint": "wyoming", "status": "499"}) == 1
    assert len(engine.calls) <= 1  # stopped before the model, or within its segments


def test_draining_refuses_new_requests_and_waits_for_running_ones(serve):
    gate = threading.Event()
    service = serve(FakeEngine(gate=gate))
    results = []
    running = threading.Thread(target=lambda: results.append(ask(service.port)))
    running.start()
    assert wait_for(lambda: service.state.admission.running == 1)
    drained = []
    drain = threading.Thread(target=lambda: drained.append(service.state.drain(10)))
    drain.start()
    assert wait_for(service.state.draining.is_set)
    assert Error.from_event(ask(service.port)[0]).code == "shutting_down"
    assert drained == []
    gate.set()
    drain.join(10)
    running.join(10)
    assert drained == [True] and results[0][-1].type == "transcript"


def test_only_allowed_clients_may_connect(serve):
    engine = FakeEngine()
    service = serve(engine, allowed=("192.0.2.0/24",))
    events = ask(service.port)
    assert events == [None] and engine.calls == []
    allowed = serve(engine, allowed=("127.0.0.1",))
    assert ask(allowed.port)[-1].type == "transcript"


def test_audio_stop_without_audio_is_an_empty_transcript(serve):
    service = serve()

    async def nothing():
        async with AsyncTcpClient("127.0.0.1", service.port) as client:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStop().event())
            return await client.read_event()

    assert Transcript.from_event(asyncio.run(nothing())).text == ""


def test_an_unloaded_model_loads_again_for_a_wyoming_request(serve):
    engine = Unloadable()
    service = serve(engine)
    service.state.residency.unload()
    assert ask(service.port)[-1].type == "transcript"
    assert engine.loads == 1 and service.state.model_state == "ready"


def test_one_connection_may_ask_twice_and_the_idle_one_is_closed(serve, monkeypatch):
    from whisper_server import wyoming_service

    monkeypatch.setattr(wyoming_service, "IDLE_TIMEOUT_S", 0.5)
    service = serve()

    async def twice():
        async with AsyncTcpClient("127.0.0.1", service.port) as client:
            texts = []
            for _ in range(2):
                await client.write_event(Transcribe(language="en").event())
                await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
                await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=SECOND).event())
                await client.write_event(AudioStop().event())
                while True:
                    event = await client.read_event()
                    if Transcript.is_type(event.type):
                        texts.append(event.data["text"])
                        break
            began = time.monotonic()
            closed = await asyncio.wait_for(client.read_event(), 10)
            return texts, closed, time.monotonic() - began

    texts, closed, waited = asyncio.run(twice())
    assert texts == ["Hello there. General Kenobi."] * 2
    assert closed is None and waited < 5


ZEROCONF_CHECK = """
import sys
sys.path.insert(0, sys.argv[1])
from conftest import make_app
from whisper_server.state import get_state
from whisper_server.wyoming_service import WyomingService
from zeroconf import Zeroconf

service = WyomingService(get_state(make_app()), "127.0.0.1", 0, (), zeroconf_name="whisperlab-test")
service.start()
browser = Zeroconf(interfaces=["127.0.0.1"])
found = browser.get_service_info("_wyoming._tcp.local.", "whisperlab-test._wyoming._tcp.local.", timeout=5000)
print(found.port == service.port, found.parsed_addresses())
browser.close()
service.close()
"""


def test_zeroconf_announces_the_port_for_home_assistant(tmp_path):
    """In a network namespace of its own, where loopback carries multicast: mDNS never leaves the test."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    unshare = shutil.which("unshare")
    if unshare is None or subprocess.run([unshare, "--net", "true"], capture_output=True).returncode != 0:
        pytest.skip("needs unshare --net (root): mDNS is checked only in a namespace of its own")
    script = tmp_path / "check.py"
    script.write_text(ZEROCONF_CHECK)
    setup = "ip link set lo up && ip link set lo multicast on && ip route add 224.0.0.0/4 dev lo && "
    tests = Path(__file__).resolve().parents[1]
    result = subprocess.run(
        [unshare, "--net", "sh", "-c", f"{setup}exec {sys.executable} {script} {tests}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == "True ['127.0.0.1']", result.stdout


def test_an_event_that_announces_a_huge_payload_is_not_read(serve):
    """The wyoming package reads what a header announces; the server refuses more than MAX_EVENT_BYTES
    before reading any of it, and closes the connection."""
    import socket

    service = serve()
    with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
        sock.sendall(b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, ')
        sock.sendall(b'"payload_length": 4000000000}\n')
        sock.sendall(b"x" * 1000)
        assert sock.recv(100) == b""  # closed, with nothing buffered beyond the first bytes
    assert wait_for(lambda: service.state.inflight == 0)


def test_a_malformed_event_gets_an_error_event(serve):
    engine = FakeEngine()
    service = serve(engine)

    async def malformed():
        from wyoming.event import Event

        async with AsyncTcpClient("127.0.0.1", service.port) as client:
            await client.write_event(Transcribe(language="en").event())
            await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
            await client.write_event(Event(type="audio-chunk", data={"width": 2}, payload=b"\0\0"))
            return await asyncio.wait_for(client.read_event(), 10)

    event = asyncio.run(malformed())
    assert Error.from_event(event).code == "invalid_event" and "audio-chunk" in event.data["text"]
    assert engine.calls == [] and wait_for(lambda: service.state.inflight == 0)
