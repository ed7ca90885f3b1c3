"""Who may ask: the API key (a Bearer token) and the Host names the server answers to.

The same two checks run twice: in waitress, from a request's headers, to decide whether its body is
worth keeping (serving.py), and in the app, which answers with OpenAI's envelope. Both ask here."""

from __future__ import annotations

import hmac
from typing import Optional

from whisper_server.config import Config, host_name
from whisper_server.errors import APIError


def has_key(config: Config, authorization: Optional[str]) -> bool:
    """Whether an Authorization header carries the key (always, when the server has none)."""
    return key_error(config, authorization) is None


def key_error(config: Config, authorization: Optional[str]) -> Optional[APIError]:
    """OpenAI's 401 for a missing or wrong key, or None when the key is right or none is configured."""
    key = config.api_key
    if key is None:
        return None
    header = authorization or ""
    if not header:
        return APIError(
            401,
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.",
            code="missing_api_key",
        )
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), key.encode()):
        return APIError(401, "Incorrect API key provided.", code="invalid_api_key")
    return None


def require_key(config: Config, authorization: Optional[str]) -> None:
    error = key_error(config, authorization)
    if error is not None:
        raise error


def host_allowed(config: Config, host: Optional[str]) -> bool:
    """Whether a Host header names this server. A page that rebinds a name it owns to this server's
    address sends its own name here, so it is refused; an empty allowlist checks nothing."""
    if not config.allowed_hosts:
        return True
    return host_name(host or "") in config.allowed_hosts


def require_allowed_host(config: Config, host: Optional[str]) -> None:
    if not host_allowed(config, host):
        shown = (host or "").encode("ascii", "backslashreplace").decode()[:100]
        raise APIError(
            400,
            f"Host '{shown}' is not one this server answers to. Use its own name or address "
            "(the server's --allowed-hosts / WHISPER_ALLOWED_HOSTS lists them).",
            code="host_not_allowed",
        )
