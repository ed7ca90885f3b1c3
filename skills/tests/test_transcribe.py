"""transcribe.sh against a real whisper-server (tiny.en), under dash and under bash.

Every case checks that the input audio is unchanged, byte for byte, and that no partial or temporary
file is left beside the output."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from whisperlab_testkit import support

REPO = Path(__file__).resolve().parents[2]

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


def run(shell, *args, env=None, timeout=120, umask=None):
    """The script, with only the environment each test gives (None unsets a variable) and, when given,
    that umask."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WHISPER_"))}
    base["WHISPER_SKILL_CONFIG"] = "/nonexistent"  # only what each test gives
    return subprocess.run(
        [shell, str(SCRIPT), *map(str, args)],
        capture_output=True,
        text=True,
        env={k: v for k, v in {**base, **(env or {})}.items() if v is not None},
        timeout=timeout,
        umask=-1 if umask is None else umask,
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


def test_installed_config_is_the_fallback(shell, server, audio, tmp_path_factory):
    config = tmp_path_factory.mktemp("cfg") / "client.env"
    config.write_text(f"# whisperlab\nWHISPER_API_URL={server.url}/v1\nWHISPER_API_KEY={server.key}\n")
    result = run(shell, audio.path, env={"WHISPER_SKILL_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        [""],
        ["-h"],
        ["--help"],
        ["{audio}", "--bogus"],
        ["{audio}", "-h"],
        ["{audio}", "--model", "gpt-4o-transcribe-diarize", "--prompt", "names"],
    ],
)
def test_usage_errors_exit_2(shell, audio, args):
    # The bundled script's exit codes: 2 for these, with no request made (no server is configured).
    result = run(shell, *[str(audio.path) if a == "{audio}" else a for a in args])
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert "Usage:" in result.stderr or "not supported with gpt-4o-transcribe-diarize" in result.stderr
    assert not (audio.folder / "note.txt").exists()


@pytest.mark.parametrize("flag", ["--out", "--model", "--language", "--prompt"])
def test_a_flag_without_its_value_exits_1_like_the_bundled_script(shell, audio, flag):
    result = run(shell, audio.path, flag)
    assert result.returncode == 1 and result.stdout == ""
    assert f"{flag} needs a value" in result.stderr


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
    # Nothing listens there: a 2 s grace, then the fallback, which has the whole timeout (a loaded machine
    # may take more than 2 s to answer it).
    down = {
        "WHISPER_API_URL": f"http://127.0.0.1:{support.free_port()}",
        "WHISPER_CONNECT_GRACE": "2",
        "WHISPER_TIMEOUT": "120",
    }
    # The "cloud" here is the local test server: nothing leaves this machine.
    cloud = {"WHISPER_FALLBACK_URL": server.url + "/v1", "OPENAI_API_KEY": server.key}
    off = run(shell, audio.path, env={**down, **cloud})
    assert off.returncode == 1 and "falling back" not in off.stderr
    on = run(shell, audio.path, env={**down, **cloud, "WHISPER_FALLBACK_OPENAI": "1"})
    assert on.returncode == 0, on.stderr
    assert "falling back to OpenAI's cloud" in on.stderr
    assert (audio.folder / "note.txt").read_text().strip()


class Recorder:
    """A stand-in server that records each request's form fields and Authorization header, and answers
    with `answer(fields)`: (status, content type, body[, headers]), after `delay` seconds."""

    def __init__(self, answer=None, delay=0.0, port=0, tls=None):
        self.requests = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                recorder.requests.append({"auth": self.headers.get("Authorization"), **_fields(body)})
                time.sleep(delay)
                status, kind, reply, *headers = (answer or _text_answer)(recorder.requests[-1])
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    for name, value in (headers[0] if headers else {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(reply)))
                    self.end_headers()
                    self.wfile.write(reply)
                except OSError:
                    pass  # the client gave up first

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        if tls:  # (certificate, key): HTTPS, as whisperlab's TLS front serves it
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
            self.url = "https" + self.url[4:]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def _fields(body: bytes) -> dict:
    """The text parts of a multipart body (the file part by its presence only)."""
    fields = {}
    for part in body.split(b"\r\n--"):
        head, _, value = part.partition(b"\r\n\r\n")
        if b'name="' not in head:
            continue
        name = head.split(b'name="', 1)[1].split(b'"', 1)[0].decode()
        fields[name] = "<file>" if name == "file" else value.rstrip(b"\r\n-").decode()
    return fields


def _text_answer(fields):
    if fields.get("response_format") in ("json", "diarized_json"):
        return 200, "application/json", json.dumps({"text": "Hello from the stub."}).encode()
    return 200, "text/plain", b"Hello from the stub.\n"


@pytest.fixture
def recorder():
    stub = Recorder()
    yield stub
    stub.close()


@pytest.mark.parametrize(
    "args, model, wire_format, written",
    [
        # The bundled default model is gpt-4o-transcribe; it keeps the JSON's text, with no final newline.
        ([], "gpt-4o-transcribe", "text", "Hello from the stub."),
        (["--model", "gpt-4o-mini-transcribe"], "gpt-4o-mini-transcribe", "text", "Hello from the stub."),
        (["--model", "whisper-1"], "whisper-1", "text", "Hello from the stub.\n"),
        (["--json"], "gpt-4o-transcribe", "json", '{"text": "Hello from the stub."}'),
    ],
)
def test_requests_and_outputs_follow_the_bundled_contract(shell, recorder, audio, args, model, wire_format, written):
    result = run(shell, audio.path, *args, env={"WHISPER_API_URL": recorder.url, "WHISPER_API_KEY": "k"})
    assert result.returncode == 0, result.stderr
    [sent] = recorder.requests
    assert (sent["model"], sent["response_format"], sent["file"]) == (model, wire_format, "<file>")
    assert sent["auth"] == "Bearer k"
    out = audio.folder / ("note.json" if "--json" in args else "note.txt")
    assert result.stdout == f"{out}\n"
    assert out.read_text() == written


def test_diarize_asks_for_diarized_json_and_the_local_refusal_is_a_failure(shell, server, recorder, audio):
    result = run(shell, audio.path, "--model", "gpt-4o-transcribe-diarize", env={"WHISPER_API_URL": recorder.url})
    assert result.returncode == 0, result.stderr
    assert recorder.requests[0]["response_format"] == "diarized_json"
    assert recorder.requests[0]["chunking_strategy"] == "auto"
    (audio.folder / "note.txt").unlink()
    refused = run(shell, audio.path, "--model", "gpt-4o-transcribe-diarize", env=local(server))
    assert refused.returncode == 1 and refused.stdout == ""
    assert "HTTP 400" in refused.stderr and "diarization" in refused.stderr
    assert not (audio.folder / "note.txt").exists()


def test_the_real_server_answers_the_default_model(shell, server, audio):
    result = run(shell, audio.path, env=local(server))
    assert result.returncode == 0, result.stderr
    text = (audio.folder / "note.txt").read_text()
    assert not text.endswith("\n")
    assert support.wer(support.SENTENCES["report"], text) <= MAX_WER


def test_installed_config_beats_openai_base_url_and_says_so(shell, recorder, audio, tmp_path_factory):
    config = tmp_path_factory.mktemp("cfg") / "client.env"
    config.write_text(f"WHISPER_API_URL={recorder.url}\nWHISPER_API_KEY=lan-key\n")
    cloud = Recorder()
    try:
        env = {"WHISPER_SKILL_CONFIG": str(config), "OPENAI_BASE_URL": cloud.url, "OPENAI_API_KEY": "sk-real"}
        result = run(shell, audio.path, env=env)
    finally:
        cloud.close()
    assert result.returncode == 0, result.stderr
    assert cloud.requests == [], "the audio went to OPENAI_BASE_URL"
    assert [r["auth"] for r in recorder.requests] == ["Bearer lan-key"], "the user's OpenAI key reached the LAN"
    assert "not OPENAI_BASE_URL" in result.stderr


@pytest.mark.parametrize(
    "url", ["wsl.home:8000/v1", "http://", "http://wsl home/v1", "ftp://wsl.home/v1", 'http://a/b"c']
)
def test_a_malformed_url_fails_fast(shell, audio, url):
    started = time.monotonic()
    result = run(shell, audio.path, env={"WHISPER_API_URL": url})
    assert result.returncode == 1 and "malformed server URL" in result.stderr
    assert time.monotonic() - started < 10
    assert not (audio.folder / "note.txt").exists()


def test_extensionless_input_in_a_dotted_folder_gets_a_sibling(shell, recorder, tmp_path, ogg):
    media = tmp_path / ".openclaw" / "media" / "inbound"
    media.mkdir(parents=True)
    note = Audio(media, ogg, name="file_42")
    result = run(shell, note.path, env={"WHISPER_API_URL": recorder.url})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{media / 'file_42.txt'}\n"
    assert (media / "file_42.txt").exists() and not (tmp_path / ".txt").exists()
    dotted = Audio(media, ogg, name=".note")
    result = run(shell, dotted.path, "--json", env={"WHISPER_API_URL": recorder.url})
    assert result.stdout == f"{media / '.note.json'}\n"
    note.assert_untouched()
    dotted.assert_untouched()


def test_out_naming_a_folder_is_refused(shell, recorder, audio):
    result = run(shell, audio.path, "--out", audio.folder, env={"WHISPER_API_URL": recorder.url})
    assert result.returncode == 1 and "names a folder" in result.stderr
    assert recorder.requests == []


@pytest.mark.parametrize("trouble", ["slow", "error"])
def test_no_cloud_fallback_when_the_local_server_answered(shell, audio, trouble):
    """The opt-in fallback is for a server that cannot be reached. A slow one (timed out) or one that
    answered with an error keeps the audio on the LAN."""
    if trouble == "slow":
        lan = Recorder(delay=6)
    else:
        lan = Recorder(answer=lambda _: (500, "application/json", b'{"error": {"message": "boom"}}'))
    cloud = Recorder()
    try:
        env = {
            "WHISPER_API_URL": lan.url,
            "WHISPER_TIMEOUT": "3",
            "WHISPER_FALLBACK_OPENAI": "1",
            "WHISPER_FALLBACK_URL": cloud.url,
            "OPENAI_API_KEY": "sk-real",
        }
        result = run(shell, audio.path, env=env)
    finally:
        lan.close()
        cloud.close()
    assert result.returncode == 1
    assert cloud.requests == [] and "falling back" not in result.stderr
    assert not (audio.folder / "note.txt").exists()


def _busy_answer(code):
    body = json.dumps({"error": {"message": "busy", "type": "server_error", "param": None, "code": None}}).encode()
    return lambda _: (code, "application/json", body)


@pytest.mark.parametrize("trouble", ["down", 429, 503])
def test_several_servers_the_next_one_takes_over(shell, audio, trouble):
    """whisperlab lists one URL per GPU box: a server that cannot be reached, or is busy or starting,
    hands the note to the next one at once, with no waiting."""
    first = None if trouble == "down" else Recorder(answer=_busy_answer(trouble))
    first_url = f"http://127.0.0.1:{support.free_port()}/v1" if first is None else first.url
    second = Recorder()
    try:
        started = time.monotonic()
        result = run(shell, audio.path, env={"WHISPER_API_URL": f"{first_url} {second.url}", "WHISPER_TIMEOUT": "60"})
        took = time.monotonic() - started
    finally:
        second.close()
        if first is not None:
            first.close()
    assert result.returncode == 0, result.stderr
    assert (audio.folder / "note.txt").read_text() == "Hello from the stub."
    assert len(second.requests) == 1
    assert "trying the next server" in result.stderr and "retrying in" not in result.stderr
    assert took < 10
    if first is not None:
        assert len(first.requests) == 1


def test_several_servers_are_tried_in_order_and_a_real_error_stops(shell, audio):
    """The first server that answers for good decides: an error (here 401) is not a reason to send the
    audio elsewhere, and a server after a working one is never asked."""
    refusing = Recorder(answer=lambda _: (401, "application/json", b'{"error": {"message": "Incorrect API key"}}'))
    spare = Recorder()
    try:
        failed = run(shell, audio.path, env={"WHISPER_API_URL": f"{refusing.url},{spare.url}"})
        worked = run(shell, audio.path, env={"WHISPER_API_URL": f"{spare.url} {refusing.url}"})
    finally:
        refusing.close()
        spare.close()
    assert failed.returncode == 1 and "HTTP 401" in failed.stderr
    assert worked.returncode == 0, worked.stderr
    assert len(refusing.requests) == 1 and len(spare.requests) == 1


def test_several_servers_all_refusing_back_off_then_one_recovers(shell, audio):
    """Only when every server has refused does the script wait, then it goes round again."""
    calls = {"n": 0}

    def starting_then_ready(fields):
        calls["n"] += 1
        return _busy_answer(503)(fields) if calls["n"] == 1 else _text_answer(fields)

    down = f"http://127.0.0.1:{support.free_port()}/v1"
    later = Recorder(answer=starting_then_ready)
    try:
        result = run(shell, audio.path, env={"WHISPER_API_URL": f"{down} {later.url}", "WHISPER_TIMEOUT": "60"})
    finally:
        later.close()
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("trying the next server") == 2
    assert result.stderr.count("retrying in 1s") == 1
    assert f"{later.url}: HTTP 503 (busy)" in result.stderr


def test_several_servers_the_cloud_only_when_none_could_be_reached(shell, audio):
    cloud = Recorder()
    busy = Recorder(answer=_busy_answer(503))
    downs = [f"http://127.0.0.1:{support.free_port()}/v1" for _ in range(2)]
    try:
        opted_in = {"WHISPER_FALLBACK_OPENAI": "1", "WHISPER_FALLBACK_URL": cloud.url, "OPENAI_API_KEY": "sk-c"}
        kept = run(
            shell, audio.path, env={"WHISPER_API_URL": f"{downs[0]} {busy.url}", "WHISPER_TIMEOUT": "2", **opted_in}
        )
        assert cloud.requests == [] and kept.returncode == 1
        sent = run(shell, audio.path, env={"WHISPER_API_URL": " ".join(downs), "WHISPER_TIMEOUT": "2", **opted_in})
    finally:
        cloud.close()
        busy.close()
    assert sent.returncode == 0, sent.stderr
    assert len(cloud.requests) == 1 and "no local server could be reached" in sent.stderr


def test_the_installed_config_lists_several_servers(shell, audio, tmp_path_factory):
    second = Recorder()
    config = tmp_path_factory.mktemp("cfg") / "client.env"
    config.write_text(f"WHISPER_API_URL=http://127.0.0.1:{support.free_port()}/v1 {second.url}\nWHISPER_API_KEY=k\n")
    try:
        result = run(shell, audio.path, env={"WHISPER_SKILL_CONFIG": str(config), "OPENAI_BASE_URL": second.url})
    finally:
        second.close()
    assert result.returncode == 0, result.stderr
    assert "not OPENAI_BASE_URL" not in result.stderr  # it is one of the listed servers
    assert second.requests[0]["auth"] == "Bearer k"


# --- a server that is down fails fast ------------------------------------------------------------
# Each run below is given far less time than WHISPER_TIMEOUT (300): a script that waited out the
# timeout for a server that is down fails here with TimeoutExpired.
GRACE = 2
BOUND = GRACE + 20


def _closed_url() -> str:
    return f"http://127.0.0.1:{support.free_port()}/v1"


@pytest.mark.parametrize("source", ["environment", "config"])
def test_every_server_refusing_gives_up_after_the_grace(shell, audio, tmp_path_factory, source):
    downs = [_closed_url(), _closed_url()]
    env = {"WHISPER_API_URL": " ".join(downs), "WHISPER_TIMEOUT": "300"}
    if source == "environment":
        env["WHISPER_CONNECT_GRACE"] = str(GRACE)
    else:  # as the whisper_skill role writes it
        config = tmp_path_factory.mktemp("cfg") / "client.env"
        config.write_text(f"WHISPER_TIMEOUT=300\nWHISPER_CONNECT_GRACE={GRACE}\n")
        env["WHISPER_SKILL_CONFIG"] = str(config)
    started = time.monotonic()
    result = run(shell, audio.path, env=env, timeout=BOUND + 30)
    took = time.monotonic() - started
    assert result.returncode == 1 and result.stdout == ""
    assert took < BOUND
    assert "retrying in 1s" in result.stderr, "it should look again during the grace"
    last = result.stderr.strip().splitlines()[-1]
    assert f"could not connect to any server within {GRACE}s" in last
    for url in downs:
        assert f"{url} (Failed to connect to 127.0.0.1 port" in last, "the diagnosis should name each server"
    assert "giving up after 300s" not in result.stderr
    assert list(audio.folder.iterdir()) == [audio.path], "no output (or any other file) on failure"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a full accept queue drops SYNs on Linux")
def test_a_connect_timeout_counts_as_no_connection(shell, audio):
    """A firewall that drops packets, or a host that is off: curl's connect timeout (exit 28) with no
    connection made. Stood in for by a listener whose accept queue is full, so new SYNs are dropped."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    for _ in range(3):
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    try:
        started = time.monotonic()
        env = {"WHISPER_API_URL": f"http://127.0.0.1:{port}/v1", "WHISPER_TIMEOUT": "300", "WHISPER_CONNECT_GRACE": "1"}
        result = run(shell, audio.path, env=env, timeout=60)
        took = time.monotonic() - started
    finally:
        for sock in (*fillers, listener):
            sock.close()
    assert result.returncode == 1
    assert took < 1 + 5 + 20  # the grace, one 5 s connect timeout, slack
    assert f"could not connect to any server within 1s (WHISPER_CONNECT_GRACE): http://127.0.0.1:{port}/v1" in (
        result.stderr
    )
    assert not (audio.folder / "note.txt").exists()


@pytest.mark.parametrize("trouble", ["busy", "busy beside a refusing one", "slow"])
def test_a_server_that_accepted_the_connection_keeps_the_whole_timeout(shell, audio, trouble):
    """Busy (429 with Retry-After), or slow to answer: reached, so WHISPER_TIMEOUT applies, not the
    grace, even when another server refuses."""
    if trouble == "slow":
        lan = Recorder(delay=10)
    else:
        body = b'{"error": {"message": "queue full"}}'
        lan = Recorder(answer=lambda _: (429, "application/json", body, {"Retry-After": "1"}))
    urls = f"{_closed_url()} {lan.url}" if trouble.endswith("refusing one") else lan.url
    try:
        started = time.monotonic()
        env = {"WHISPER_API_URL": urls, "WHISPER_TIMEOUT": "6", "WHISPER_CONNECT_GRACE": "1"}
        result = run(shell, audio.path, env=env, timeout=60)
        took = time.monotonic() - started
    finally:
        lan.close()
    assert result.returncode == 1
    assert took >= 3.5, "it gave up before WHISPER_TIMEOUT (whole seconds: up to 1 s early)"
    assert "giving up after 6s" in result.stderr and "could not connect" not in result.stderr
    if trouble == "slow":
        assert len(lan.requests) == 1 and f"no answer from {lan.url}" in result.stderr
    else:
        assert len(lan.requests) >= 4 and "HTTP 429 (queue full)" in result.stderr
    assert not (audio.folder / "note.txt").exists()


def test_a_server_that_comes_up_during_the_grace_is_used(shell, audio):
    port = support.free_port()
    late = []
    timer = threading.Timer(1.0, lambda: late.append(Recorder(port=port)))
    timer.start()
    try:
        started = time.monotonic()
        env = {"WHISPER_API_URL": f"http://127.0.0.1:{port}", "WHISPER_TIMEOUT": "300", "WHISPER_CONNECT_GRACE": "10"}
        result = run(shell, audio.path, env=env, timeout=60)
        took = time.monotonic() - started
    finally:
        timer.join()
        for stub in late:
            stub.close()
    assert result.returncode == 0, result.stderr
    assert "cannot reach" in result.stderr, "the server should have been down at first"
    assert took < 10
    assert len(late[0].requests) == 1
    assert (audio.folder / "note.txt").read_text() == "Hello from the stub."


def test_a_server_that_answered_then_went_away_gets_the_grace_from_its_last_answer(shell, audio):
    """Reached once (503, starting), then refusing: a restart fits in the grace counted from that answer;
    past it, exit 1. It was reached, so the opted-in cloud fallback does not apply."""

    def starting_then_gone(fields):
        going.close()  # before it answers: the retry must find the port closed, not half shut
        return _busy_answer(503)(fields)

    going = Recorder(answer=starting_then_gone)
    cloud = Recorder()
    try:
        started = time.monotonic()
        env = {
            "WHISPER_API_URL": going.url,
            "WHISPER_TIMEOUT": "300",
            "WHISPER_CONNECT_GRACE": str(GRACE),
            "WHISPER_FALLBACK_OPENAI": "1",
            "WHISPER_FALLBACK_URL": cloud.url,
            "OPENAI_API_KEY": "sk-c",
        }
        result = run(shell, audio.path, env=env, timeout=BOUND + 30)
        took = time.monotonic() - started
    finally:
        going.close()
        cloud.close()
    assert result.returncode == 1
    assert took < BOUND
    assert len(going.requests) == 1 and cloud.requests == [] and "falling back" not in result.stderr
    assert f"could not connect to any server for {GRACE}s since one last answered" in result.stderr
    assert not (audio.folder / "note.txt").exists()


def test_the_opted_in_cloud_fallback_follows_the_grace(shell, audio):
    cloud = Recorder()
    try:
        env = {
            "WHISPER_API_URL": f"{_closed_url()},{_closed_url()}",
            "WHISPER_TIMEOUT": "300",
            "WHISPER_CONNECT_GRACE": str(GRACE),
            "WHISPER_FALLBACK_OPENAI": "1",
            "WHISPER_FALLBACK_URL": cloud.url,
            "OPENAI_API_KEY": "sk-c",
        }
        started = time.monotonic()
        result = run(shell, audio.path, env=env, timeout=BOUND + 30)
        took = time.monotonic() - started
    finally:
        cloud.close()
    assert result.returncode == 0, result.stderr
    assert took < BOUND
    assert [r["auth"] for r in cloud.requests] == ["Bearer sk-c"]
    grace_line = result.stderr.index(f"could not connect to any server within {GRACE}s")
    assert grace_line < result.stderr.index("falling back to OpenAI's cloud")
    assert (audio.folder / "note.txt").read_text() == "Hello from the stub."


@pytest.mark.parametrize("name", ["WHISPER_CONNECT_GRACE", "WHISPER_TIMEOUT"])
@pytest.mark.parametrize("value", ["2s", "-1", "1.5", "ten"])
@pytest.mark.parametrize("source", ["environment", "config"])
def test_a_bad_number_of_seconds_is_refused_before_any_request(
    shell, recorder, audio, tmp_path_factory, name, value, source
):
    env = {"WHISPER_API_URL": recorder.url}
    if source == "environment":
        env[name] = value
    else:
        config = tmp_path_factory.mktemp("cfg") / "client.env"
        config.write_text(f"WHISPER_API_URL={recorder.url}\n{name}={value}\n")
        env = {"WHISPER_SKILL_CONFIG": str(config)}
    result = run(shell, audio.path, env=env)
    assert result.returncode == 1 and result.stdout == ""
    assert result.stderr == f"transcribe.sh: {name} must be a whole number of seconds, not '{value}'\n"
    assert recorder.requests == []
    assert not (audio.folder / "note.txt").exists()


def test_a_leading_zero_is_decimal(shell, recorder, audio):
    # Shell arithmetic would read these as octal, where 8 and 9 are not digits.
    env = {"WHISPER_API_URL": recorder.url, "WHISPER_TIMEOUT": "08", "WHISPER_CONNECT_GRACE": "09"}
    result = run(shell, audio.path, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "" and len(recorder.requests) == 1
    assert (audio.folder / "note.txt").read_text() == "Hello from the stub."


# --- the config, and what happens without it -----------------------------------------------------


@pytest.mark.parametrize("state", ["missing", "a folder", "unreadable", "under another HOME"])
def test_no_usable_config_is_an_error_and_nothing_is_sent(shell, audio, tmp_path_factory, state):
    """The skill run with another HOME, or before the playbook: an OPENAI_BASE_URL in the environment
    (OpenClaw's, the cloud's) must not quietly get the audio."""
    if state == "unreadable" and os.geteuid() == 0:
        pytest.skip("root reads any file")
    folder = tmp_path_factory.mktemp("cfg")
    config = folder / "client.env"
    env = {"WHISPER_SKILL_CONFIG": str(config)}
    if state == "a folder":
        config.mkdir()
    elif state == "unreadable":
        config.write_text("WHISPER_API_URL=http://127.0.0.1:9/v1\n")
        config.chmod(0)
    elif state == "under another HOME":
        config = folder / ".config" / "whisperlab" / "client.env"
        env = {"WHISPER_SKILL_CONFIG": None, "HOME": str(folder), "XDG_CONFIG_HOME": None}
    cloud = Recorder()
    try:
        result = run(shell, audio.path, env={**env, "OPENAI_BASE_URL": cloud.url, "OPENAI_API_KEY": "sk-real"})
    finally:
        cloud.close()
    assert result.returncode == 1 and result.stdout == ""
    assert cloud.requests == [], "the audio went to OPENAI_BASE_URL"
    [line] = result.stderr.splitlines()
    assert str(config) in line and "playbook" in line and "WHISPER_SKILL_CONFIG" in line, line
    assert list(audio.folder.iterdir()) == [audio.path]


def test_no_config_with_the_cloud_opted_in_goes_there_and_says_so(shell, audio):
    cloud = Recorder()
    try:
        env = {"WHISPER_FALLBACK_OPENAI": "1", "WHISPER_FALLBACK_URL": cloud.url, "OPENAI_API_KEY": "sk-c"}
        result = run(shell, audio.path, env=env)
    finally:
        cloud.close()
    assert result.returncode == 0, result.stderr
    assert [r["auth"] for r in cloud.requests] == ["Bearer sk-c"]
    assert "/nonexistent" in result.stderr and "falling back to OpenAI's cloud" in result.stderr
    assert (audio.folder / "note.txt").read_text() == "Hello from the stub."


def test_the_config_is_where_the_role_writes_it_whatever_xdg_config_home_says(shell, recorder, audio, tmp_path):
    home = tmp_path / "home"
    (home / ".config" / "whisperlab").mkdir(parents=True)
    (home / ".config" / "whisperlab" / "client.env").write_text(f"WHISPER_API_URL={recorder.url}\n")
    env = {"WHISPER_SKILL_CONFIG": None, "HOME": str(home), "XDG_CONFIG_HOME": str(tmp_path / "xdg")}
    result = run(shell, audio.path, env=env)
    assert result.returncode == 0, result.stderr
    assert len(recorder.requests) == 1


# --- temporary files and the transcript's mode ---------------------------------------------------


def _entries(*folders: Path) -> dict[Path, int]:
    return {p: p.lstat().st_mode for folder in folders for p in folder.rglob("*")}


def test_temporary_files_live_in_one_private_folder(shell, audio, tmp_path_factory):
    """Seen while the request is in flight, under a umask of 022: one folder of mode 0700 (in /tmp a
    predictable or readable name is anyone's to plant a link at, or to read), everything inside it
    private, and all of it gone afterwards."""
    scratch = tmp_path_factory.mktemp("scratch")  # TMPDIR
    before = _entries(audio.folder, scratch)
    seen = {}

    def look(fields):
        seen.update({p: m for p, m in _entries(audio.folder, scratch).items() if p not in before})
        return _text_answer(fields)

    stub = Recorder(answer=look)
    try:
        result = run(shell, audio.path, env={"WHISPER_API_URL": stub.url, "TMPDIR": str(scratch)}, umask=0o022)
    finally:
        stub.close()
    assert result.returncode == 0, result.stderr
    folders = [p for p, mode in seen.items() if stat.S_ISDIR(mode)]
    assert len(folders) == 1, f"not one private folder: {sorted(map(str, seen))}"
    [private] = folders
    assert stat.S_IMODE(seen[private]) == 0o700
    outside = [str(p) for p in seen if p != private and private not in p.parents]
    assert outside == [], "temporary files outside the private folder"
    assert {str(p): oct(stat.S_IMODE(m)) for p, m in seen.items() if stat.S_IMODE(m) & 0o077} == {}
    assert _entries(scratch) == {} and not private.exists()
    assert sorted(audio.folder.iterdir()) == [audio.path, audio.folder / "note.txt"]


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077])
def test_the_transcript_and_its_folders_follow_the_users_umask(shell, recorder, audio, umask):
    """As the bundled script's curl -o would write them: the transcript is the user's file, not a
    temporary one."""
    default = run(shell, audio.path, env={"WHISPER_API_URL": recorder.url}, umask=umask)
    target = audio.folder / "new" / "out.txt"
    chosen = run(shell, audio.path, "--out", target, env={"WHISPER_API_URL": recorder.url}, umask=umask)
    assert default.returncode == 0 and chosen.returncode == 0, default.stderr + chosen.stderr
    assert stat.S_IMODE((audio.folder / "note.txt").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o777 & ~umask


def test_a_run_stopped_midway_leaves_nothing_behind(shell, audio, tmp_path_factory):
    scratch = tmp_path_factory.mktemp("scratch")  # TMPDIR
    arrived = threading.Event()

    def slow(fields):
        arrived.set()
        time.sleep(2)
        return _text_answer(fields)

    stub = Recorder(answer=slow)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "WHISPER_"))}
    env = {**base, "WHISPER_SKILL_CONFIG": "/nonexistent", "WHISPER_API_URL": stub.url, "TMPDIR": str(scratch)}
    try:
        script = subprocess.Popen([shell, str(SCRIPT), str(audio.path)], env=env, stderr=subprocess.PIPE)
        assert arrived.wait(30), "no request arrived"
        script.send_signal(signal.SIGTERM)
        script.wait(30)
    finally:
        stub.close()
    assert script.returncode != 0
    assert _entries(scratch) == {}
    assert list(audio.folder.iterdir()) == [audio.path]


def _ca_and_server_cert(folder: Path, name: str) -> tuple[Path, Path, Path]:
    """A CA (its certificate in `folder/<name> ca.pem`, a space in the name) and a certificate it
    signed for 127.0.0.1 and localhost, as the whisper_server role makes them."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    paths = folder / f"{name} ca.pem", folder / f"{name}.crt", folder / f"{name}.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@pytest.fixture(scope="module")
def tls(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    ours, other = _ca_and_server_cert(folder, "whisperlab"), _ca_and_server_cert(folder, "stranger")
    stub = Recorder(tls=ours[1:])
    yield {"server": stub, "ca": ours[0], "other_ca": other[0]}
    stub.close()


def test_tls_with_the_installed_ca_transcribes(shell, tls, audio, tmp_path_factory):
    config = tmp_path_factory.mktemp("cfg") / "client.env"
    config.write_text(f"WHISPER_API_URL={tls['server'].url}\nWHISPER_API_KEY=lan-key\nWHISPER_CA_FILE={tls['ca']}\n")
    before = len(tls["server"].requests)
    result = run(shell, audio.path, env={"WHISPER_SKILL_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert (audio.folder / "note.txt").read_text() == "Hello from the stub."
    assert [r["auth"] for r in tls["server"].requests[before:]] == ["Bearer lan-key"]


@pytest.mark.parametrize("ca", [None, "other_ca"])
def test_tls_without_the_servers_ca_is_refused_before_anything_is_sent(shell, tls, audio, ca):
    """No CA (the system's store) or another CA: curl refuses the certificate, so neither the key nor
    the audio is sent; it stops at once (no retries, no cloud fallback) and says why."""
    before = len(tls["server"].requests)
    env = {
        "WHISPER_API_URL": tls["server"].url,
        "WHISPER_API_KEY": "lan-key",
        "WHISPER_CA_FILE": tls[ca] if ca else None,
        "WHISPER_FALLBACK_OPENAI": "1",
        "OPENAI_API_KEY": "sk-cloud",
        "WHISPER_FALLBACK_URL": "http://127.0.0.1:9/v1",
    }
    started = time.monotonic()
    result = run(shell, audio.path, env=env)
    assert result.returncode == 1
    assert "failed its TLS check, so nothing was sent" in result.stderr, result.stderr
    assert "falling back" not in result.stderr
    assert time.monotonic() - started < 30, "a TLS failure was retried"
    assert tls["server"].requests[before:] == []
    assert not (audio.folder / "note.txt").exists()


def test_an_unreadable_ca_file_is_an_error_and_nothing_is_sent(shell, tls, audio, tmp_path):
    before = len(tls["server"].requests)
    env = {
        "WHISPER_API_URL": tls["server"].url,
        "WHISPER_API_KEY": "lan-key",
        "WHISPER_CA_FILE": str(tmp_path / "gone.pem"),
    }
    result = run(shell, audio.path, env=env)
    assert result.returncode == 1
    assert "CA certificate" in result.stderr and "nothing was sent" in result.stderr, result.stderr
    assert tls["server"].requests[before:] == []


# --- shadowing (opt-in): the note a local server answered, also to a second endpoint, in the background --

WHISPERLAB = Path(sys.executable).parent / "whisperlab"  # make setup installs the command here
SHADOW_KEY = "sk-shadow-endpoint-0123456789"


def _shadow_config(folder: Path, server, cloud_url: str, **settings: str) -> Path:
    """A client.env as the whisper_skill role writes it, with shadowing as given."""
    key = folder / "shadow-key"
    key.write_text(SHADOW_KEY)
    key.chmod(0o600)
    values = {
        "WHISPER_API_URL": f"{server.url}/v1",
        "WHISPER_API_KEY": server.key,
        "WHISPER_SHADOW_URL": cloud_url,
        "WHISPER_SHADOW_KEY_FILE": str(key),
        "WHISPER_SHADOW_COMMAND": str(WHISPERLAB),
        "WHISPER_SHADOW_DIR": str(folder / "shadow"),
        **settings,
    }
    config = folder / "client.env"
    config.write_text("".join(f"{name}={value}\n" for name, value in values.items() if value is not None))
    return config


def _tomorrow() -> str:
    return time.strftime("%Y-%m-%d", time.localtime(time.time() + 86400))


@pytest.fixture
def cloud():
    from whisperlab_testkit.endpoint import StandIn

    standin = StandIn(texts={"note.ogg": support.SENTENCES["report"]})
    yield standin
    standin.close()


def _wait_for_log(log: Path, seconds: float = 60) -> list:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if log.exists() and log.read_text().endswith("\n"):
            return [json.loads(line) for line in log.read_text().splitlines()]
        time.sleep(0.1)
    raise AssertionError(f"nothing logged in {log} within {seconds} s")


def test_shadowing_off_is_the_same_run_and_sends_nothing_more(shell, server, audio, cloud, tmp_path_factory):
    """Off (the role's default writes WHISPER_SHADOW=0) and absent are the same run, byte for byte, and
    neither hands anything to the second endpoint, nor makes its folder."""
    runs = []
    for setting in (None, "0"):
        folder = tmp_path_factory.mktemp("off")
        config = _shadow_config(folder, server, cloud.url, WHISPER_SHADOW=setting, WHISPER_SHADOW_UNTIL=_tomorrow())
        out = audio.folder / "note.txt"
        result = run(shell, audio.path, env={"WHISPER_SKILL_CONFIG": str(config)})
        assert result.returncode == 0, result.stderr
        runs.append((result.stdout, result.stderr, out.read_bytes()))
        out.unlink()
        assert not (folder / "shadow").exists()
    assert runs[0] == runs[1]
    time.sleep(3)  # a background job, had one started, would have asked by now
    assert cloud.seen == []


def test_shadowing_on_logs_both_answers_and_never_the_audio(shell, server, audio, cloud, tmp_path):
    config = _shadow_config(tmp_path, server, cloud.url, WHISPER_SHADOW="1", WHISPER_SHADOW_UNTIL=_tomorrow())
    result = run(shell, audio.path, env={"WHISPER_SKILL_CONFIG": str(config)})
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{audio.folder / 'note.txt'}\n" and result.stderr == ""
    log = tmp_path / "shadow" / "shadow.jsonl"
    [record] = _wait_for_log(log)
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    assert record["local"]["url"] == f"{server.url}/v1" and record["local"]["latency_s"] > 0
    assert support.wer(support.SENTENCES["report"], record["local"]["text"]) <= MAX_WER
    assert record["shadow"]["ok"] and record["shadow"]["text"] == support.SENTENCES["report"]
    assert record["shadow"]["model"] == "gpt-4o-transcribe"  # what the skill was asked for
    assert record["seconds"] == pytest.approx(len(support.speak(support.SENTENCES["report"])) / 16000, abs=0.1)
    [asked] = cloud.seen
    assert asked.authorization == f"Bearer {SHADOW_KEY}" and asked.filename == "note.ogg"
    raw = log.read_bytes()
    assert b"OggS" not in raw and audio.path.read_bytes()[200:232] not in raw
    deadline = time.monotonic() + 10
    while list((tmp_path / "shadow" / "spool").iterdir()) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list((tmp_path / "shadow" / "spool").iterdir()) == []  # the copy is gone once sent


@pytest.mark.parametrize(
    "settings",
    [
        {"WHISPER_SHADOW_UNTIL": "2020-01-01"},  # past its end date
        {"WHISPER_SHADOW_UNTIL": "2999-12-31", "WHISPER_SHADOW_RATE": "0"},  # sampled out
    ],
    ids=["ended", "rate-0"],
)
def test_shadowing_ends_on_its_date_and_samples(server, audio, cloud, tmp_path, settings):
    config = _shadow_config(tmp_path, server, cloud.url, WHISPER_SHADOW="1", **settings)
    result = run("dash", audio.path, env={"WHISPER_SKILL_CONFIG": str(config)})
    assert result.returncode == 0 and result.stderr == ""
    time.sleep(3)
    assert cloud.seen == [] and not (tmp_path / "shadow").exists()


def test_shadowing_without_its_command_says_so_and_still_transcribes(server, audio, cloud, tmp_path):
    config = _shadow_config(
        tmp_path,
        server,
        cloud.url,
        WHISPER_SHADOW="1",
        WHISPER_SHADOW_UNTIL=_tomorrow(),
        WHISPER_SHADOW_COMMAND="/nowhere",
    )
    result = run("dash", audio.path, env={"WHISPER_SKILL_CONFIG": str(config)})
    assert result.returncode == 0 and result.stdout.strip().endswith("note.txt")
    assert "shadowing is on but its command (/nowhere) is not installed: not shadowed" in result.stderr


def test_a_note_the_local_servers_failed_is_shadowed_as_a_failure(audio, cloud, tmp_path):
    """Their error rate is evidence too: the record says the local side failed, and why."""

    class Down:
        url = f"http://127.0.0.1:{support.free_port()}"
        key = "k"

    config = _shadow_config(tmp_path, Down, cloud.url, WHISPER_SHADOW="1", WHISPER_SHADOW_UNTIL=_tomorrow())
    result = run("dash", audio.path, env={"WHISPER_SKILL_CONFIG": str(config), "WHISPER_CONNECT_GRACE": "1"})
    assert result.returncode == 1 and result.stdout == ""
    [record] = _wait_for_log(tmp_path / "shadow" / "shadow.jsonl")
    assert record["local"]["ok"] is False and record["local"]["error"] == "the local servers failed (no answer)"
    # A refused connection takes next to no time: the wait is logged (0.0 when the grace ran out at once).
    assert record["local"]["latency_s"] is not None and record["local"]["latency_s"] >= 0 and record["shadow"]["ok"]
    assert not (audio.folder / "note.txt").exists()


def test_a_note_the_opted_in_cloud_answered_is_not_shadowed(audio, cloud, tmp_path):
    """It already went to the cloud: shadowing would send it there twice, and compare nothing."""

    class Down:
        url = f"http://127.0.0.1:{support.free_port()}"
        key = "k"

    config = _shadow_config(tmp_path, Down, cloud.url, WHISPER_SHADOW="1", WHISPER_SHADOW_UNTIL=_tomorrow())
    fallback = Recorder()
    try:
        env = {
            "WHISPER_SKILL_CONFIG": str(config),
            "WHISPER_CONNECT_GRACE": "1",
            "WHISPER_FALLBACK_OPENAI": "1",
            "WHISPER_FALLBACK_URL": fallback.url,
            "OPENAI_API_KEY": "sk-cloud",
        }
        result = run("dash", audio.path, env=env)
    finally:
        fallback.close()
    assert result.returncode == 0, result.stderr
    assert len(fallback.requests) == 1
    assert not (tmp_path / "shadow").exists() and cloud.seen == []


# --- the order whisperlab canary sets (WHISPER_ORDER): the opted-in cloud first, or the local servers --


def _said(text: str):
    return lambda _fields: (200, "text/plain", text.encode())


def _order_env(lan, cloud, **extra):
    return {
        "WHISPER_API_URL": lan.url,
        "WHISPER_FALLBACK_URL": cloud.url,
        "OPENAI_API_KEY": "sk-cloud",
        "WHISPER_API_KEY": "lan-key",
        "WHISPER_TIMEOUT": "20",
        **extra,
    }


def test_local_last_asks_the_opted_in_cloud_first(shell, audio):
    lan, cloud = Recorder(answer=_said("from the lan")), Recorder(answer=_said("from the cloud"))
    try:
        env = _order_env(lan, cloud, WHISPER_ORDER="local_last", WHISPER_FALLBACK_OPENAI="1")
        result = run(shell, audio.path, env=env)
    finally:
        lan.close()
        cloud.close()
    assert result.returncode == 0, result.stderr
    assert (audio.folder / "note.txt").read_text().strip() == "from the cloud"
    assert [r["auth"] for r in cloud.requests] == ["Bearer sk-cloud"] and lan.requests == []


def test_local_last_falls_back_to_the_local_servers_when_the_cloud_fails(shell, audio):
    refused = lambda _fields: (401, "application/json", b'{"error": {"message": "bad key"}}')  # noqa: E731
    lan, cloud = Recorder(answer=_said("from the lan")), Recorder(answer=refused)
    try:
        env = _order_env(lan, cloud, WHISPER_ORDER="local_last", WHISPER_FALLBACK_OPENAI="1")
        result = run(shell, audio.path, env=env)
    finally:
        lan.close()
        cloud.close()
    assert result.returncode == 0, result.stderr
    assert "failed: trying the local servers" in result.stderr
    assert (audio.folder / "note.txt").read_text().strip() == "from the lan"
    assert [r["auth"] for r in lan.requests] == ["Bearer lan-key"] and len(cloud.requests) == 1


@pytest.mark.parametrize("order", ["local_last", "local_first", ""])
def test_without_the_cloud_opted_in_the_order_sends_nothing_there(audio, order):
    lan, cloud = Recorder(answer=_said("from the lan")), Recorder(answer=_said("from the cloud"))
    try:
        result = run("dash", audio.path, env=_order_env(lan, cloud, WHISPER_ORDER=order))
    finally:
        lan.close()
        cloud.close()
    assert result.returncode == 0 and result.stderr == ""
    assert cloud.requests == [] and len(lan.requests) == 1


def test_an_unknown_order_is_refused_before_anything_is_sent(audio):
    lan, cloud = Recorder(), Recorder()
    try:
        env = _order_env(lan, cloud, WHISPER_ORDER="cloud", WHISPER_FALLBACK_OPENAI="1")
        result = run("dash", audio.path, env=env)
    finally:
        lan.close()
        cloud.close()
    assert result.returncode == 1 and "WHISPER_ORDER must be local_first or local_last, not 'cloud'" in result.stderr
    assert lan.requests == [] and cloud.requests == []
