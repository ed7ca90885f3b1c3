"""transcribe.sh against a real whisper-server (tiny.en), under dash and under bash.

Every case checks that the input audio is unchanged, byte for byte, and that no partial or temporary
file is left beside the output."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "server" / "tests"))
import support  # noqa: E402

SCRIPT = REPO / "skills" / "openai-whisper-api" / "scripts" / "transcribe.sh"
SHELLS = ["dash", "bash"]
MAX_WER = 0.3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = support.start_server(
        tmp_path_factory.mktemp("skill-server"), support.tiny_en(), "--model-alias", "tiny.en"
    )
    yield running
    running.stop()


@pytest.fixture(scope="module")
def ogg() -> bytes:
    return support.speech("report", "ogg")


@pytest.fixture(params=SHELLS)
def shell(request):
    return request.param


class Audio:
    """A voice note in its own folder; after the test it must be exactly as it was."""

    def __init__(self, folder: Path, data: bytes, name: str = "note.ogg"):
        self.folder = folder
        self.path = folder / name
        self.path.write_bytes(data)
        self.digest = hashlib.sha256(data).hexdigest()

    def assert_untouched(self):
        assert self.path.exists(), "the input audio was deleted"
        assert hashlib.sha256(self.path.read_bytes()).hexdigest() == self.digest, "the input audio changed"
        leftovers = [p.name for p in self.folder.rglob(".transcribe.*")]
        assert leftovers == [], f"temporary files left behind: {leftovers}"


@pytest.fixture
def audio(tmp_path, ogg):
    note = Audio(tmp_path, ogg)
    yield note
    note.assert_untouched()


def run(shell, *args, env=None, timeout=120):
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WHISPER_"))}
    base["WHISPER_SKILL_CONFIG"] = "/nonexistent"  # only what each test gives
    return subprocess.run(
        [shell, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        timeout=timeout,
    )


def local(server, **extra):
    return {"WHISPER_API_URL": server.url, "WHISPER_API_KEY": server.key, **extra}


def test_default_output_is_txt_beside_the_input(shell, server, audio):
    result = run(shell, audio.path, env=local(server))
    assert result.returncode == 0, result.stderr
    out = audio.folder / "note.txt"
    assert result.stdout == f"{out}\n"
    assert support.wer(support.SENTENCES["report"], out.read_text()) <= MAX_WER
    assert result.stderr == ""


def test_json_and_out(shell, server, audio):
    result = run(shell, audio.path, "--json", env=local(server))
    assert result.returncode == 0, result.stderr
    body = json.loads((audio.folder / "note.json").read_text())
    assert support.wer(support.SENTENCES["report"], body["text"]) <= MAX_WER
    target = audio.folder / "deep" / "er" / "t.json"
    result = run(shell, audio.path, "--json", "--out", target, env=local(server))
    assert result.returncode == 0 and result.stdout.strip() == str(target)
    assert "text" in json.loads(target.read_text())


def test_every_flag(shell, server, audio):
    out = audio.folder / "flags.txt"
    result = run(
        shell,
        audio.path,
        "--model",
        "tiny.en",
        "--language",
        "en",
        "--prompt",
        "@quarterly report; finance, Friday",  # '@' and ';' must reach the server as text
        "--out",
        out,
        env=local(server),
    )
    assert result.returncode == 0, result.stderr
    assert support.wer(support.SENTENCES["report"], out.read_text()) <= MAX_WER


def test_awkward_file_names(shell, server, tmp_path, ogg):
    note = Audio(tmp_path, ogg, name='voice note; "1", 2.ogg')
    result = run(shell, note.path, env=local(server))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / 'voice note; "1", 2.txt').read_text().strip()
    note.assert_untouched()


def test_openai_base_url_and_key(shell, server, audio):
    env = {"OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": server.key}
    result = run(shell, audio.path, env=env)
    assert result.returncode == 0, result.stderr


def test_installed_config_is_the_fallback(shell, server, audio, tmp_path_factory):
    config = tmp_path_factory.mktemp("cfg") / "client.env"
    config.write_text(f"# whisperlab\nWHISPER_API_URL={server.url}/v1\nWHISPER_API_KEY={server.key}\n")
    result = run(shell, audio.path, env={"WHISPER_SKILL_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "args",
    [[], ["-h"], ["--help"], ["{audio}", "--bogus"], ["{audio}", "--out"], ["{audio}", "--model"]],
)
def test_usage_errors_exit_2(shell, audio, args):
    result = run(shell, *[str(audio.path) if a == "{audio}" else a for a in args])
    assert result.returncode == 2
    assert "Usage:" in result.stderr
    assert not (audio.folder / "note.txt").exists()


def test_missing_file_exits_1(shell, tmp_path):
    result = run(shell, tmp_path / "absent.ogg", env={"WHISPER_API_URL": "http://127.0.0.1:9"})
    assert result.returncode == 1
    assert result.stderr.strip() == f"transcribe.sh: File not found: {tmp_path / 'absent.ogg'}"


def test_server_down_fails_cleanly(shell, audio):
    started = time.monotonic()
    result = run(
        shell, audio.path, env={"WHISPER_API_URL": f"http://127.0.0.1:{support.free_port()}", "WHISPER_TIMEOUT": "4"}
    )
    assert result.returncode == 1
    assert time.monotonic() - started < 30
    assert "cannot reach" in result.stderr and "giving up after 4s" in result.stderr
    assert not (audio.folder / "note.txt").exists()


def test_wrong_key_is_one_clear_line_and_no_transcript(shell, server, audio):
    result = run(shell, audio.path, env={"WHISPER_API_URL": server.url, "WHISPER_API_KEY": "wrong"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "HTTP 401" in lines[0] and "Incorrect API key" in lines[0]
    assert not (audio.folder / "note.txt").exists()


def test_existing_output_survives_an_error(shell, server, audio):
    previous = audio.folder / "note.txt"
    previous.write_text("an earlier transcript\n")
    result = run(shell, audio.path, env={"WHISPER_API_URL": server.url, "WHISPER_API_KEY": "wrong"})
    assert result.returncode == 1
    assert previous.read_text() == "an earlier transcript\n"


def test_unknown_model_is_reported(shell, server, audio):
    result = run(shell, audio.path, "--model", "whisper-9", env=local(server))
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr and "whisper-9" in result.stderr


def test_413(shell, tmp_path_factory, audio):
    small = support.start_server(
        tmp_path_factory.mktemp("small"), support.tiny_en(), "--max-upload-mb", "0.01", key=None
    )
    try:
        result = run(shell, audio.path, env={"WHISPER_API_URL": small.url})
    finally:
        small.stop()
    assert result.returncode == 1
    assert "HTTP 413" in result.stderr and "0.01 MiB" in result.stderr
    assert not (audio.folder / "note.txt").exists()


def test_429_is_retried_after_retry_after(shell, tmp_path_factory, audio):
    busy = support.start_server(
        tmp_path_factory.mktemp("busy"), support.tiny_en(), "--workers", "1", "--max-queue", "0", key=None
    )
    long_note = support.encode(support.speak(" ".join(support.SENTENCES.values()) * 2), "ogg")
    try:
        holder = threading.Thread(target=busy.post, kwargs={"audio": long_note, "filename": "l.ogg"})
        holder.start()
        deadline = time.monotonic() + 30
        while busy.post(audio=support.speech("fox", "ogg"), filename="f.ogg").status_code != 429:
            assert time.monotonic() < deadline, "could not fill the queue"
        result = run(shell, audio.path, env={"WHISPER_API_URL": busy.url, "WHISPER_TIMEOUT": "120"})
        holder.join()
    finally:
        busy.stop()
    assert result.returncode == 0, result.stderr
    assert "HTTP 429" in result.stderr and "retrying in" in result.stderr
    assert support.wer(support.SENTENCES["report"], (audio.folder / "note.txt").read_text()) <= MAX_WER


@pytest.mark.parametrize("code", [429, 503])
def test_busy_or_starting_until_the_deadline_gives_up(shell, audio, code):
    """A stub that always answers 429 or 503 (Retry-After: 1): the script retries, then gives up at its
    timeout."""

    class Busy(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b'{"error": {"message": "busy \\"now\\"", "type": "rate_limit_error", "param": null, "code": "q"}}'
            self.send_response(code)
            self.send_header("Retry-After", "1")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    stub = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=stub.serve_forever, daemon=True).start()
    try:
        result = run(
            shell, audio.path, env={"WHISPER_API_URL": f"http://127.0.0.1:{stub.server_port}", "WHISPER_TIMEOUT": "3"}
        )
    finally:
        stub.shutdown()
    assert result.returncode == 1
    assert result.stderr.count("retrying in 1s") >= 1
    assert f'giving up after 3s: HTTP {code} (busy "now")' in result.stderr
    assert not (audio.folder / "note.txt").exists()


def test_cloud_fallback_is_off_by_default_and_reported_when_on(shell, server, audio):
    down = {"WHISPER_API_URL": f"http://127.0.0.1:{support.free_port()}", "WHISPER_TIMEOUT": "2"}
    # The "cloud" here is the local test server: nothing leaves this machine.
    cloud = {"WHISPER_FALLBACK_URL": server.url + "/v1", "OPENAI_API_KEY": server.key}
    off = run(shell, audio.path, env={**down, **cloud})
    assert off.returncode == 1 and "falling back" not in off.stderr
    on = run(shell, audio.path, env={**down, **cloud, "WHISPER_FALLBACK_OPENAI": "1"})
    assert on.returncode == 0, on.stderr
    assert "falling back to OpenAI's cloud" in on.stderr
    assert (audio.folder / "note.txt").read_text().strip()
