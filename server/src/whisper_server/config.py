"""Server configuration: one frozen dataclass, built once from CLI flags and WHISPER_* variables.

A flag beats its environment variable, which beats the default (the options and their parser are in
options.py). Nothing here is global: the result is handed to create_app() and to the engine loader.
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Mapping, Optional, Sequence

from whisper_server.options import OPENAI_MODEL_NAMES, ConfigError, parse_options

DEVICES = ("auto", "cpu", "cuda")


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity, which containers and systemd narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def _cuda_present() -> bool:
    """Whether CTranslate2 sees a GPU (for --device auto's worker count; the loader decides the device)."""
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # no CTranslate2, a broken driver: a CPU start
        return False


def default_workers(device: str = "auto") -> int:
    """Requests transcribed at once. Waiting requests hold only their compressed upload; a running one
    holds its decoded audio, features and buffers.

    On CUDA (cuda, or auto where CTranslate2 sees a GPU), enough for their windows to fill batches while
    the model runs: twice the cores, 4 to 16. On a CPU one per core, 2 to 16: there the
    streams, not batches, make the throughput, and each running request costs memory. Measured on the
    2-core machine, 4 clients x 11 s clips, three rounds: 2 workers peaked at 407 MiB and served 1.81
    requests/s; 4 workers 477 MiB and 1.86 (the seed's server: 436 MiB, 1.33)."""
    cores = usable_cores()
    if device == "cuda" or (device == "auto" and _cuda_present()):
        return min(16, max(4, 2 * cores))
    return min(16, max(2, cores))


# Room for the multipart envelope and the form fields around a file of the full allowed size.
FORM_OVERHEAD_BYTES = 256 * 1024
_HOST_NAME = re.compile(r"^[a-z0-9_.:-]+$")


def host_name(value: str) -> str:
    """A Host header or an allowlist entry as the names are compared: lower case, without the port or
    IPv6's brackets, without a trailing dot, an IPv6 address in its short form. '' when there is none."""
    name = value.strip().lower()
    if name.startswith("["):
        name = name[1:].partition("]")[0] if "]" in name else ""
    elif name.count(":") == 1:
        name = name.partition(":")[0]
    name = name.rstrip(".")
    try:
        return ipaddress.ip_address(name).compressed
    except ValueError:
        return name if _HOST_NAME.fullmatch(name) else ""


def is_loopback(host: str) -> bool:
    """Whether an address to bind reaches only this machine (127.0.0.0/8, ::1, localhost)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Config:
    model: str
    host: str = "127.0.0.1"
    port: int = 8000
    device: str = "auto"
    compute_type: str = "auto"
    workers: Optional[int] = None  # None: worked out from the device and the cores in __post_init__
    max_queue: int = 8
    max_upload_mb: float = 25.0
    api_key_file: Optional[Path] = None
    log_dir: Optional[Path] = None
    model_aliases: tuple[str, ...] = OPENAI_MODEL_NAMES
    vad: bool = True
    beam_size: int = 5
    batch_size: int = 0
    sequential_seconds: float = 0.0
    streams: int = 0
    cpu_threads: int = field(default_factory=lambda: min(8, usable_cores()))
    download_root: Optional[Path] = None
    shutdown_grace: float = 15.0
    max_audio_seconds: float = 14400.0
    piece_seconds: float = 180.0
    # Host header names answered (host_name() form); empty: any.
    allowed_hosts: tuple[str, ...] = ()
    idle_unload_seconds: float = 0.0
    wyoming_port: int = 0
    wyoming_host: str = ""
    # Addresses or networks (ip_network() text) that may connect to the Wyoming port; empty: any.
    wyoming_allowed_clients: tuple[str, ...] = ()
    wyoming_zeroconf: str = ""
    # Read from api_key_file by load_api_key(); never part of repr, so never logged by accident.
    api_key: Optional[str] = field(default=None, repr=False)

    def __post_init__(self):
        if self.workers is None:
            object.__setattr__(self, "workers", default_workers(self.device))

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_body_bytes(self) -> int:
        """The largest request body: a file of the full allowed size in its multipart form. Flask and
        waitress both hold to it, so nothing bigger is ever read."""
        return self.max_upload_bytes + FORM_OVERHEAD_BYTES


def load_config(argv: Optional[Sequence[str]] = None, environ: Optional[Mapping[str, str]] = None) -> Config:
    """Build the Config from flags and environment. Raises ConfigError with a clear message.

    Reading the process's own environment takes WHISPER_API_KEY out of it, so that no child process
    (nvidia-smi, a library's helper) inherits the key."""
    own = environ is None
    environ = dict(os.environ) if own else environ
    if own:
        os.environ.pop("WHISPER_API_KEY", None)
    values = parse_options(argv, environ)
    names = _names(values.pop("model_names")) + _names(values.pop("model_alias"))
    values["model_aliases"] = tuple(dict.fromkeys(names))
    values["allowed_hosts"] = _allowed_hosts(values.pop("allowed_hosts"))
    values["wyoming_allowed_clients"] = _networks(values.pop("wyoming_allowed_clients"))
    config = Config(**values)
    validate(config)
    if config.api_key_file is not None:
        config = _with_api_key(config)
    elif environ.get("WHISPER_API_KEY", "").strip():
        # For a 0600 EnvironmentFile; deliberately no flag, so the key never shows in `ps`.
        config = replace(config, api_key=environ["WHISPER_API_KEY"].strip())
    if config.api_key is None and not is_loopback(config.host):
        empty = " (WHISPER_API_KEY is set but empty)" if "WHISPER_API_KEY" in environ else ""
        raise ConfigError(
            f"--host {config.host!r} listens beyond this machine and no API key is set{empty}: anyone who "
            "reaches the port could use the server. Give a key (--api-key-file / WHISPER_API_KEY_FILE, or "
            "WHISPER_API_KEY in a 0600 environment file), or listen on loopback only (--host 127.0.0.1)."
        )
    return config


def _allowed_hosts(value: object) -> tuple[str, ...]:
    names = []
    for given in _names(value):
        name = host_name(given)
        if not name:
            raise ConfigError(f"--allowed-hosts / WHISPER_ALLOWED_HOSTS: {given!r} is not a host name or an address")
        names.append(name)
    return tuple(dict.fromkeys(names))


def _networks(value: object) -> tuple[str, ...]:
    networks = []
    for given in _names(value):
        try:
            networks.append(str(ipaddress.ip_network(given, strict=False)))
        except ValueError:
            raise ConfigError(
                f"--wyoming-allowed-clients / WHISPER_WYOMING_ALLOWED_CLIENTS: {given!r} is not an address or a network"
            ) from None
    return tuple(dict.fromkeys(networks))


def _names(value: object) -> list[str]:
    return [name.strip() for name in str(value).split(",") if name.strip()]


def validate(config: Config) -> None:
    problems = []
    if not config.model:
        problems.append("--model / WHISPER_MODEL is required")
    if not config.model_aliases:
        problems.append("--model-names / WHISPER_MODEL_NAMES: give at least one name, such as whisper-1")
    if config.device not in DEVICES:
        problems.append(f"--device must be one of {', '.join(DEVICES)}, not {config.device!r}")
    if not 0 < config.port < 65536:
        problems.append(f"--port must be 1-65535, not {config.port}")
    if config.workers < 1:
        problems.append("--workers must be at least 1")
    if config.max_queue < 0:
        problems.append("--max-queue must be 0 or more")
    if config.max_upload_mb <= 0:
        problems.append("--max-upload-mb must be positive")
    if config.beam_size < 1:
        problems.append("--beam-size must be at least 1")
    if config.batch_size < 0:
        problems.append("--batch-size must be 0 or more")
    if config.sequential_seconds < 0:
        problems.append("--sequential-seconds must be 0 or more")
    if config.streams < 0:
        problems.append("--streams must be 0 or more")
    if config.cpu_threads < 0:
        problems.append("--cpu-threads must be 0 or more")
    if config.max_audio_seconds <= 0:
        problems.append("--max-audio-seconds must be positive")
    if config.piece_seconds < 30:
        problems.append("--piece-seconds must be at least 30 (one Whisper window)")
    if config.shutdown_grace < 0:
        problems.append("--shutdown-grace must be 0 or more")
    if config.idle_unload_seconds < 0:
        problems.append("--idle-unload-seconds must be 0 (never) or more")
    if not 0 <= config.wyoming_port < 65536:
        problems.append(f"--wyoming-port must be 0 (off) or 1-65535, not {config.wyoming_port}")
    elif config.wyoming_port and config.wyoming_port == config.port and config.wyoming_host in ("", config.host):
        problems.append(f"--wyoming-port {config.wyoming_port} is the HTTP port too; give it a port of its own")
    if problems:
        raise ConfigError("; ".join(problems))


def _with_api_key(config: Config) -> Config:
    path = config.api_key_file
    try:
        key = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"--api-key-file {path}: cannot read it ({exc.strerror})") from None
    if not key:
        raise ConfigError(f"--api-key-file {path} is empty")
    return replace(config, api_key=key)
