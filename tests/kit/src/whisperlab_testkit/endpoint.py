"""A scripted OpenAI-shaped transcription endpoint on loopback: a stand-in "cloud" where OpenAI cannot be
reached, or an endpoint that answers 429, 503 or errors on cue. It records every request it gets."""

from __future__ import annotations

import dataclasses
import http.server
import json
import re
import threading
import time
from typing import Callable, Optional


@dataclasses.dataclass
class Seen:
    """One request the stand-in received."""

    path: str
    authorization: Optional[str]
    request_id: Optional[str]
    filename: str
    fields: dict


class StandIn:
    """An OpenAI-shaped /v1/audio/transcriptions on loopback. `answer(seen)` returns (status, headers,
    body); the default is a JSON transcript from `texts` by file name."""

    def __init__(
        self,
        answer: Optional[Callable] = None,
        texts: Optional[dict] = None,
        delay: float = 0.0,
        host: str = "127.0.0.1",
    ):
        self.texts = texts or {}
        self.answer = answer or self.transcript
        self.delay = delay
        self.seen: list = []
        self.lock = threading.Lock()
        standin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802  (the name http.server calls)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                seen = Seen(
                    self.path,
                    self.headers.get("Authorization"),
                    self.headers.get("X-Request-ID"),
                    _filename(body),
                    _fields(body),
                )
                with standin.lock:
                    standin.seen.append(seen)
                if standin.delay:
                    time.sleep(standin.delay)
                status, headers, payload = standin.answer(seen)
                data = payload.encode() if isinstance(payload, str) else payload
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        # host: loopback, or (in the lab) the bridge's address, which the lab's hosts reach.
        self.server = http.server.ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def transcript(self, seen: Seen):
        text = self.texts.get(seen.filename, "hello world")
        fmt = seen.fields.get("response_format", "json")
        if fmt in ("json", "verbose_json"):
            return 200, {"Content-Type": "application/json"}, json.dumps({"text": text})
        return 200, {"Content-Type": "text/plain"}, text + "\n"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _filename(body: bytes) -> str:
    found = re.search(rb'name="file"; filename="([^"]*)"', body)
    return found.group(1).decode() if found else ""


def _fields(body: bytes) -> dict:
    return {
        m.group(1).decode(): m.group(2).decode(errors="replace")
        for m in re.finditer(rb'name="([a-z_]+)"\r\n\r\n([^\r]*)\r\n', body)
    }


def envelope(status: int, message: str) -> tuple:
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}})
    return status, {"Content-Type": "application/json"}, body
