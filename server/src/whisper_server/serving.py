"""waitress, set up for this app: its limits, its idle timeout, and no room for a stranger's body.

waitress reads a request's whole body before it calls the app, so the app's key and Host checks come
too late to spare it: a keyless 25 MB upload would wait in a temporary file until the app refused it,
and 100 connections would hold 2.5 GB. waitress has no public hook between the headers and the body,
but its parser and channel classes are meant to be subclassed; the parser here judges each request
from its headers, with the app's own checks (auth.py), and reads the body of a request that fails them
into nothing. The app then refuses it from the same headers, with OpenAI's envelope, its request id and
its log line, as it would have anyway. A body over the limit is refused from its Content-Length before
any of it is read, also with the envelope.
"""

from __future__ import annotations

import io
import json

from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer
from waitress.server import create_server as waitress_server
from waitress.utilities import RequestEntityTooLarge

from whisper_server import auth, errors
from whisper_server.app import MAX_HEADER_BYTES
from whisper_server.config import Config

# Seconds an idle connection (no request running, nothing received) is kept; waitress's default is
# 120. waitress never closes a channel for this while a request on it runs, however long it takes.
IDLE_TIMEOUT_S = 30


class _Nowhere:
    """Takes the place of waitress's body buffer for a body nobody will read: it keeps nothing."""

    def append(self, data: bytes) -> None:
        pass

    def __len__(self) -> int:
        return 0

    def getfile(self) -> io.BytesIO:
        return io.BytesIO()

    def prune(self) -> None:
        pass

    def close(self) -> None:
        pass


def _too_large(limit_mb: float) -> type[RequestEntityTooLarge]:
    body = json.dumps(errors.upload_too_large(limit_mb).envelope).encode()

    class TooLarge(RequestEntityTooLarge):
        """waitress's 413, in OpenAI's envelope rather than plain text."""

        def to_response(self, ident=None):
            return f"{self.code} {self.reason}", [("Content-Type", "application/json")], body

    return TooLarge


def _channel_class(config: Config) -> type[HTTPChannel]:
    too_large = _too_large(config.max_upload_mb)

    class Parser(HTTPRequestParser):
        def received(self, data):
            judged = self.headers_finished
            consumed = super().received(data)
            if self.headers_finished and not judged:
                self._judge()
            if isinstance(self.error, RequestEntityTooLarge) and not isinstance(self.error, too_large):
                self.error = too_large(self.error.body)
            return consumed

        def _judge(self) -> None:
            if self.error is not None:
                # Refused from the headers (a Content-Length over the limit): answer now. waitress
                # would first send "100 Continue" to a client that asked, then read the body anyway.
                self.expect_continue = False
                return
            if self.body_rcv is None:
                return
            headers = self.headers
            if auth.host_allowed(config, headers.get("HOST")) and auth.has_key(config, headers.get("AUTHORIZATION")):
                return
            self.body_rcv.buf = _Nowhere()
            headers["CONTENT_LENGTH"] = "0"

    class Channel(HTTPChannel):
        parser_class = Parser

    return Channel


def create_server(app, config: Config, idle_timeout: int = IDLE_TIMEOUT_S):
    """The waitress server for `app`, bound and not yet running (call .run()). OSError if it cannot bind."""
    server = waitress_server(
        app,
        host=config.host,
        port=config.port,
        # One thread for every request that may run or wait, plus room for health checks
        # and for answering 429s while the queue is full.
        threads=config.workers + config.max_queue + 4,
        # Open connections, idle keep-alives included; past it, new ones wait in the listen
        # backlog. With the 512 KiB in-memory buffer below, they cost at most ~50 MiB together.
        connection_limit=100,
        # Keeps the channel readable while a request runs, which is how waitress notices a
        # client that left (environ["waitress.client_disconnected"]).
        channel_request_lookahead=1,
        # The app's own limit (waitress refuses at this size, the app above it). A bigger
        # Content-Length is refused before any of the body is read.
        max_request_body_size=config.max_body_bytes + 1,
        # A body over 512 KiB waits in waitress's anonymous (already unlinked) temporary file,
        # not in memory, so the one in-memory copy of an upload is the one the job holds, and
        # an idle or slow connection costs at most this much memory. Only a request with the key
        # and an allowed Host gets one (Parser above).
        inbuf_overflow=512 * 1024,
        max_request_header_size=16 * MAX_HEADER_BYTES,
        channel_timeout=idle_timeout,
        # How often idle connections are looked for: a few times per timeout.
        cleanup_interval=max(1, idle_timeout // 6),
        ident="whisper-server",
    )
    channel = _channel_class(config)
    # create_server returns the one listening server, or a MultiSocketServer (a name that resolves
    # to several addresses) whose map holds one per address.
    listeners = [server] if isinstance(server, BaseWSGIServer) else list(server.map.values())
    for listener in listeners:
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = channel
    return server
