"""The options a server is configured with: one table of each option's name, type, default and help,
and the argument parser built from it. Every flag can also be set with its WHISPER_* variable.

A flag beats its environment variable, which beats the default. config.py turns the values into
the Config.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Mapping, Optional, Sequence

# OpenAI's transcription model names. Clients default to one of them (OpenClaw and its bundled skill
# send gpt-4o-transcribe), so by default each one answers for the loaded model.
OPENAI_MODEL_NAMES = (
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-4o-mini-transcribe-2025-12-15",
    "gpt-transcribe",
)


class ConfigError(ValueError):
    """A setting is invalid; the message names the flag and its variable."""


# name, type, default, help. The environment variable is WHISPER_<NAME upper-cased>.
_OPTIONS: tuple[tuple[str, type, object, str], ...] = (
    (
        "model",
        str,
        None,
        "a local CTranslate2 model folder, or a faster-whisper model name (tiny.en, small, large-v3, a Hugging Face "
        "repo id)",
    ),
    (
        "host",
        str,
        "127.0.0.1",
        "address to bind; any other than loopback needs a key (--api-key-file), or the server refuses to start",
    ),
    ("port", int, 8000, "port to bind"),
    ("device", str, "auto", "auto (CUDA when CTranslate2 sees a GPU and its libraries load, else CPU), cpu or cuda"),
    (
        "compute_type",
        str,
        "auto",
        "CTranslate2 compute type; auto = the best of what CTranslate2 reports for the device: float16 on GPUs "
        "with fast FP16, int8 on older ones (Pascal) and on CPUs; a type the device lacks is refused at start",
    ),
    (
        "workers",
        int,
        "auto",
        "transcriptions run at once, their windows batched together; auto = one per usable core, 2 to 16; on "
        "CUDA (--device cuda, or auto where CTranslate2 sees a GPU) twice the cores, 4 to 16",
    ),
    ("max_queue", int, 8, "requests allowed to wait for a worker; past that, 429 with Retry-After"),
    ("max_upload_mb", float, 25.0, "largest accepted upload, in MiB (OpenAI's limit is 25 MB)"),
    (
        "api_key_file",
        Path,
        None,
        "file holding the API key; when set, /v1 and /metrics need 'Authorization: Bearer <key>', and /health "
        "without it tells only its status. Without a key the server listens only on loopback",
    ),
    (
        "allowed_hosts",
        str,
        "",
        "comma-separated names and addresses the Host header may carry (port ignored, any case), against DNS "
        "rebinding; others get 400 host_not_allowed; empty = any",
    ),
    ("log_dir", Path, None, "folder for whisper-server.log (rotated at 10 MiB, 5 kept); stdout always gets the log"),
    (
        "model_names",
        str,
        ",".join(OPENAI_MODEL_NAMES),
        "comma-separated OpenAI model names that map to the loaded model (narrow it to refuse the others)",
    ),
    ("model_alias", str, "", "comma-separated extra model names that map to the loaded model"),
    ("beam_size", int, 5, "beam size for decoding"),
    (
        "batch_size",
        int,
        0,
        "most 30 s windows decoded in one model call, across concurrent requests and within long audio; "
        "0 = auto (4 on CPU, 16 on CUDA); 1 = no batching",
    ),
    (
        "sequential_seconds",
        float,
        0.0,
        "audio up to this long is decoded window after window with the text so far as each window's prompt, "
        "as one note is; longer audio is cut at pauses into chunks decoded side by side; 0 = auto (120 on CPU, "
        "30 on CUDA); 30 or less = side by side past one window",
    ),
    (
        "streams",
        int,
        0,
        "model calls run at once, each over a batch; 0 = auto (on a CPU: 2, one more per 4 cores past 8; on CUDA: 1)",
    ),
    (
        "cpu_threads",
        int,
        "auto",
        "threads each model call computes with on CPU; auto = the usable cores, at most 8",
    ),
    ("download_root", Path, None, "where model names are downloaded (default: the Hugging Face cache)"),
    (
        "max_audio_seconds",
        float,
        14400.0,
        "longest audio accepted per request, in seconds; longer gets 413 audio_too_long, from the container's "
        "duration before decoding where it states one, else while decoding",
    ),
    (
        "piece_seconds",
        float,
        180.0,
        "audio is decoded and transcribed this many seconds at a time, cut at a pause (Silero VAD), so a "
        "request's memory is bounded by the piece, not the file",
    ),
    (
        "shutdown_grace",
        float,
        15.0,
        "on SIGTERM, new requests get 503 shutting_down while running ones get this many seconds to finish; "
        "then it exits 0 (keep it below systemd's TimeoutStopSec)",
    ),
    (
        "idle_unload_seconds",
        float,
        0.0,
        "unload the model after this many seconds without a request, giving its RAM or VRAM back (a game can use "
        "it); the next request loads it again, waiting in the queue meanwhile; 0 = never",
    ),
    (
        "wyoming_port",
        int,
        0,
        "also speak Wyoming, Home Assistant's speech protocol, on this TCP port, with the same model, queue and "
        "limits; 0 = off. Wyoming has no authentication: limit it with --wyoming-allowed-clients and a firewall",
    ),
    ("wyoming_host", str, "", "address the Wyoming port listens on; empty = the --host address"),
    (
        "wyoming_allowed_clients",
        str,
        "",
        "comma-separated addresses or networks (CIDR) that may connect to the Wyoming port, such as the Home "
        "Assistant host; other connections are closed at once; empty = any",
    ),
    (
        "wyoming_zeroconf",
        str,
        "",
        "announce the Wyoming port over mDNS (_wyoming._tcp) under this name, so Home Assistant discovers it; "
        "empty = off",
    ),
)

_VAD_HELP = "voice activity detection (Silero), which stops hallucinations on silence"

# Options whose default depends on the machine: "auto" leaves it to Config.
_AUTO = ("workers", "cpu_threads")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _env_name(name: str) -> str:
    return "WHISPER_" + name.upper()


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="whisper-server",
        description="OpenAI-compatible speech-to-text server (faster-whisper). "
        "Every flag can also be set with the WHISPER_* variable named in its help.",
    )
    for name, _kind, default, text in _OPTIONS:
        env = _env_name(name)
        raw = environ.get(env)
        value = default if raw is None or raw == "" else raw
        parser.add_argument(_flag(name), dest=name, default=value, help=f"{text} [{env}; default: {default}]")
    vad_raw = environ.get("WHISPER_VAD", "true").strip().lower()
    if vad_raw not in _TRUE | _FALSE:
        raise ConfigError(f"WHISPER_VAD must be true or false, not {vad_raw!r}")
    parser.add_argument(
        "--vad",
        action=argparse.BooleanOptionalAction,
        default=vad_raw in _TRUE,
        help=f"{_VAD_HELP} [WHISPER_VAD; default: on]",
    )
    return parser


def _shown(name: str, default: object) -> str:
    if name == "model":
        return "(required)"
    if default is None or default == "":
        return "none"
    if isinstance(default, float) and default.is_integer():
        return str(int(default))
    return str(default)


def markdown_table() -> str:
    """The flags table of server/README.md, from _OPTIONS (server/tools/flags_table.py writes it there)."""
    rows = ["| flag | variable | default | meaning |", "|---|---|---|---|"]
    for name, _kind, default, text in _OPTIONS:
        shown = text.replace("<", "&lt;").replace(">", "&gt;")  # Markdown would take <key> for a tag
        rows.append(f"| `{_flag(name)}` | `{_env_name(name)}` | `{_shown(name, default)}` | {shown} |")
    rows.append(f"| `--vad` / `--no-vad` | `WHISPER_VAD` | `on` | {_VAD_HELP} |")
    return "\n".join(rows) + "\n"


def _parse_option(name: str, kind: type, value: object) -> object:
    """A flag's or variable's text as the option's type; None for `auto` where the machine decides."""
    if value == "auto" and name in _AUTO:
        return None  # the Config's own default, worked out from this machine
    if value is None or kind is str:
        return value
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{_flag(name)} / {_env_name(name)}: {value!r} is not a valid {kind.__name__}") from None


def parse_options(argv: Optional[Sequence[str]], environ: Mapping[str, str]) -> dict[str, object]:
    """Every option's value, typed, and vad; an `auto` one is left out, for the Config's own default.
    Raises ConfigError for a value that is not of its type (argparse exits with 2 on an unknown flag)."""
    args = vars(build_parser(environ).parse_args(argv))
    values = {name: _parse_option(name, kind, args[name]) for name, kind, _, _ in _OPTIONS}
    values = {name: value for name, value in values.items() if not (value is None and name in _AUTO)}
    values["vad"] = args["vad"]
    return values
