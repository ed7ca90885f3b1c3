"""Wyoming, as Home Assistant speaks it, for tests and benchmarks: the `wyoming` package's own async
client, and wyoming-faster-whisper (the peer Home Assistant users run) started on the same model.

Home Assistant's Wyoming STT entity connects per utterance, writes `transcribe` (with the pipeline's
language), `audio-start`, the microphone's 16 kHz 16-bit mono PCM as `audio-chunk`s, `audio-stop`,
then reads events until a `transcript`; `transcribe()` does the same.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info

from whisperlab_testkit.support import free_port, stop_process

RATE, WIDTH, CHANNELS = 16000, 2, 1
# Samples per chunk: Home Assistant forwards the microphone's chunks, 1024 samples (64 ms) from its
# own satellites.
CHUNK_SAMPLES = 1024


def pcm(samples: np.ndarray) -> bytes:
    """float32 in [-1, 1] at 16 kHz as 16-bit little-endian PCM."""
    return (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()


@dataclass
class Answer:
    text: Optional[str]  # None when an error (or nothing) came back
    events: list = field(default_factory=list)
    error: Optional[Error] = None
    seconds: float = 0.0  # from audio-stop to the transcript


async def transcribe_async(
    host: str, port: int, audio: bytes, language: Optional[str] = "en", timeout: float = 120, pace: float = 0.0
) -> Answer:
    """One utterance, as Home Assistant sends it. `pace` > 0 sends the chunks in (that fraction of) real
    time, as a microphone would; 0 sends them at once."""
    answer = Answer(text=None)
    async with AsyncTcpClient(host, port) as client:
        await client.write_event(Transcribe(language=language).event())
        await client.write_event(AudioStart(rate=RATE, width=WIDTH, channels=CHANNELS).event())
        step = CHUNK_SAMPLES * WIDTH
        for i in range(0, len(audio), step):
            chunk = AudioChunk(rate=RATE, width=WIDTH, channels=CHANNELS, audio=audio[i : i + step])
            await client.write_event(chunk.event())
            if pace:
                await asyncio.sleep(pace * CHUNK_SAMPLES / RATE)
        await client.write_event(AudioStop().event())
        began = time.monotonic()
        while True:
            event = await asyncio.wait_for(client.read_event(), timeout)
            if event is None:
                break
            answer.events.append(event)
            if Transcript.is_type(event.type):
                answer.text = Transcript.from_event(event).text
                break
            if Error.is_type(event.type):
                answer.error = Error.from_event(event)
                break
        answer.seconds = time.monotonic() - began
    return answer


def transcribe(host: str, port: int, audio: bytes, **kwargs) -> Answer:
    return asyncio.run(transcribe_async(host, port, audio, **kwargs))


def describe(host: str, port: int, timeout: float = 10) -> Info:
    async def ask() -> Info:
        async with AsyncTcpClient(host, port) as client:
            await client.write_event(Describe().event())
            while True:
                event = await asyncio.wait_for(client.read_event(), timeout)
                if event is not None and Info.is_type(event.type):
                    return Info.from_event(event)

    return asyncio.run(ask())


def wait_for_describe(host: str, port: int, process: Optional[subprocess.Popen] = None, seconds: float = 120) -> Info:
    deadline = time.monotonic() + seconds
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        try:
            return describe(host, port, timeout=5)
        except (OSError, asyncio.TimeoutError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


class Peer:
    """wyoming-faster-whisper on a free loopback port, with the given CTranslate2 model folder and the
    settings whisperlab's server uses on a CPU (int8, beam 5), so the two differ only in the server."""

    def __init__(self, tmp: Path, model: Path, *extra: str, cpu_threads: int = 2):
        self.port = free_port()
        data = tmp / "wyoming-faster-whisper"
        data.mkdir(parents=True, exist_ok=True)
        self.log = tmp / "wyoming-faster-whisper.log"
        args = [
            sys.executable,
            "-m",
            "wyoming_faster_whisper",
            "--uri",
            f"tcp://127.0.0.1:{self.port}",
            "--model",
            str(model),
            "--data-dir",
            str(data),
            "--stt-library",
            "faster-whisper",
            "--compute-type",
            "int8",
            "--beam-size",
            "5",
            "--cpu-threads",
            str(cpu_threads),
            "--language",
            "en",
            *extra,
        ]
        self.process = subprocess.Popen(args, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)
        try:
            wait_for_describe("127.0.0.1", self.port, self.process)
        except Exception:
            self.stop()
            raise RuntimeError(f"wyoming-faster-whisper did not start:\n{self.log.read_text()}") from None

    def transcribe(self, audio: bytes, **kwargs) -> Answer:
        return transcribe("127.0.0.1", self.port, audio, **kwargs)

    def stop(self) -> None:
        stop_process(self.process)
