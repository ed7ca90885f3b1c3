"""Shadowing: the skill override hands a copy of a note a local server answered to `whisperlab shadow send`,
in the background; this asks the second endpoint (usually OpenAI), appends the pair to a log (mode 0600:
texts, latencies, errors; never the audio) and removes the copy. `whisperlab compare --from-shadow-log`
reports on that log as on files.

Its settings are the skill's config (the whisper_skill role writes it):
  WHISPER_SHADOW_URL       the second endpoint's API base (default OpenAI's)
  WHISPER_SHADOW_KEY_FILE  its key, in a file (mode 0600)
  WHISPER_SHADOW_CA_FILE   a CA it is trusted through besides the system's (one of the servers: whisperlab's)
  WHISPER_SHADOW_MODEL     the model it is asked for (default: what the skill was asked for)
  WHISPER_SHADOW_DIR       the log (shadow.jsonl) and the copies waiting to be sent (spool/)
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Optional

from whisperlab.calls import Call, transcribe
from whisperlab.endpoints import OPENAI_URL, Endpoint, read_key_file
from whisperlab.files import Audio, BadAudio, measure

LOG_NAME = "shadow.jsonl"
# A copy older than this was left by a job that died (a reboot): removed by the next job, unsent.
STALE_SECONDS = 24 * 3600


def read_config(path: str) -> dict:
    """KEY=value lines, as the skill reads them (the last one wins; the file is never executed)."""
    values: dict = {}
    for line in Path(path).expanduser().read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value
    return values


def shadow_dir(config: dict) -> Path:
    return Path(config.get("WHISPER_SHADOW_DIR") or "~/.local/state/whisperlab/shadow").expanduser()


def _read(job: Path, name: str) -> str:
    try:
        return (job / name).read_text()
    except OSError:
        return ""


def _local_text(job: Path) -> str:
    text = _read(job, "local")
    try:
        parsed = json.loads(text)
        if isinstance(parsed, dict) and "text" in parsed:
            return str(parsed["text"]).strip()
    except ValueError:
        pass
    return text.strip()


def append(log: Path, record: dict) -> None:
    """One line, appended whole under a lock; the log is made 0600 and kept so."""
    log.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    descriptor = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        os.write(descriptor, (json.dumps(record, ensure_ascii=False) + "\n").encode())
    finally:
        os.close(descriptor)


def sweep(spool: Path, keep: Optional[Path] = None) -> None:
    now = datetime.datetime.now().timestamp()
    for job in spool.glob("job.*"):
        if job != keep and now - job.stat().st_mtime > STALE_SECONDS:
            shutil.rmtree(job, ignore_errors=True)


def _seconds(text: str) -> Optional[float]:
    try:
        return round(float(text), 4) if text.strip() else None
    except ValueError:
        return None


def send(config_path: str, job: Path, timeout: float = 300.0) -> Optional[dict]:
    """Asks the second endpoint about the copy in `job`, logs the pair, removes the copy; returns the
    record (None when there was nowhere to log it). The copy goes whatever happens."""
    try:
        os.setsid()  # its own session: whatever stops the skill's process group does not stop this
    except OSError:
        pass
    sweep(job.parent, keep=job)
    try:
        config = read_config(config_path)
        folder = shadow_dir(config)
        record = _record(config, job, timeout)
        append(folder / LOG_NAME, record)
        return record
    except OSError:
        return None
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _record(config: dict, job: Path, timeout: float) -> dict:
    audio_file = next(iter(sorted(job.glob("audio.*"))), None)
    local_error = _read(job, "error")
    record: dict = {
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "name": _read(job, "name"),
        "seconds": None,
        "local": {
            "url": _read(job, "url"),
            "model": _read(job, "model"),
            "text": "" if local_error else _local_text(job),
            "latency_s": _seconds(_read(job, "seconds")),
            "ok": not local_error,
            "error": local_error,
        },
    }
    model = config.get("WHISPER_SHADOW_MODEL") or _read(job, "model") or "whisper-1"
    url = (config.get("WHISPER_SHADOW_URL") or OPENAI_URL).rstrip("/")
    shadow: dict = {"url": url, "model": model, "ok": False, "text": "", "latency_s": None, "error": ""}
    record["shadow"] = shadow
    try:
        if audio_file is None:
            raise BadAudio("the copy is missing")
        audio: Audio = measure(audio_file)
        record["seconds"] = audio.seconds
        key = read_key_file(config["WHISPER_SHADOW_KEY_FILE"]) if config.get("WHISPER_SHADOW_KEY_FILE") else None
        ca = config.get("WHISPER_SHADOW_CA_FILE") or None
        endpoint = Endpoint("shadow", url, key, ca, model, is_openai=url == OPENAI_URL)
        call: Call = transcribe(
            endpoint.client(timeout=timeout, max_retries=2),
            endpoint,
            audio,
            language=_read(job, "language") or None,
            prompt=_read(job, "prompt") or None,
            upload_name=_read(job, "name") or None,  # as the user's own client would have named it
        )
        shadow.update(
            ok=call.ok, text=call.text, latency_s=round(call.latency_s, 4), error=call.error, status=call.status
        )
        shadow["request_id"] = call.request_id
    except Exception as error:  # a record that says why beats a job that dies silently
        shadow["error"] = f"{type(error).__name__}: {error}"
    return record


def results_from_log(path: Path) -> tuple:
    """The log as compare's results: A is the shadow endpoint (the reference), B the local server."""
    results = []
    endpoints: dict = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            local, shadow = record["local"], record["shadow"]
            if not isinstance(local, dict) or not isinstance(shadow, dict):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"{path}:{number}: not a shadow record") from None
        endpoints.setdefault("a", (shadow.get("url", ""), shadow.get("model", "")))
        endpoints.setdefault("b", (local.get("url", ""), local.get("model", "")))
        results.append(
            {
                "file": f"{record.get('time', '')} {record.get('name', '')}".strip(),
                "seconds": float(record.get("seconds") or 0.0),
                "a": _call("shadow", shadow),
                "b": _call("local", local),
            }
        )
    return results, endpoints


def _call(label: str, side: dict) -> Call:
    return Call(
        label,
        bool(side.get("ok")),
        float(side.get("latency_s") or 0.0),
        str(side.get("request_id", "")),
        text=str(side.get("text", "")),
        status=side.get("status"),
        error=str(side.get("error", "")),
    )
