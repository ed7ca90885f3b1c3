"""whisperlab batch DIR|FILES...: a transcript beside each audio file (or under --out), resumably.

- A file whose transcript already exists is skipped, so a second run finishes what the first did not.
- A transcript is written to a hidden temporary file in its folder, then renamed: an interrupted run
  leaves whole transcripts or none, never half of one.
- Every server is used, in order, failing over as the skill does: an unreachable, timed-out or busy server
  hands the file to the next. 429 and 503 are first retried by the SDK, honouring Retry-After.
- A file that is not audio, or that a server refuses as such, is reported and skipped; the batch goes
  on. The inputs are only ever read.
"""

from __future__ import annotations

import dataclasses
import glob
import hashlib
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Optional

from whisperlab.calls import transcribe
from whisperlab.files import Audio, BadAudio, find, measure

# What each response_format is saved as (the skill's convention: the input's name, another suffix).
SUFFIXES = {"txt": ".txt", "srt": ".srt", "vtt": ".vtt", "json": ".json", "verbose_json": ".verbose.json"}
# How long a server that did not answer is tried after the others.
UNREACHABLE_SECONDS = 30.0
# The API's name for each (txt is what a person calls the text format).
API_FORMATS = {"txt": "text", "srt": "srt", "vtt": "vtt", "json": "json", "verbose_json": "verbose_json"}


@dataclasses.dataclass
class Settings:
    format: str = "txt"
    out: Optional[Path] = None  # None: beside each input
    concurrency: int = 2
    timeout: float = 600.0
    retries: int = 3
    language: Optional[str] = None
    prompt: Optional[str] = None
    progress: Optional[bool] = None  # None: when stderr is a terminal


@dataclasses.dataclass
class Outcome:
    path: str
    status: str  # done, skipped (done before), failed, left (not sent: the run was stopped)
    server: str = ""
    seconds: float = 0.0
    output: str = ""
    error: str = ""
    attempts: list = dataclasses.field(default_factory=list)


def output_path(audio_path: Path, root: Path, settings: Settings) -> Path:
    suffix = SUFFIXES[settings.format]
    if settings.out is None:
        return audio_path.with_suffix(suffix)
    return (settings.out / audio_path.relative_to(root)).with_suffix(suffix)


def request_id(path: Path) -> str:
    """The same for every attempt at one file, so the servers' logs show how often it was sent."""
    return "batch-" + hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:20]


def write_whole(target: Path, body: str) -> None:
    """The transcript appears whole or not at all: a temporary file in the same folder, then a rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        with open(temporary, "w", encoding="utf-8") as handle:
            handle.write(body if body.endswith("\n") else body + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        if temporary.exists():
            temporary.unlink()


def remove_stale_partials(target: Path) -> None:
    """A run killed outright (SIGKILL, power) may leave a temporary behind; it is never a transcript."""
    if target.parent.is_dir():
        for stale in target.parent.glob(f".{glob.escape(target.name)}.*.partial"):
            stale.unlink(missing_ok=True)


class Batch:
    def __init__(self, servers: list, settings: Settings):
        self.servers = servers
        self.settings = settings
        self.clients = [s.client(timeout=settings.timeout, max_retries=settings.retries) for s in servers]
        self.stopping = threading.Event()
        # A server that could not be reached is tried last for a while, so each file does not wait out
        # the SDK's connection retries again.
        self.unreachable_until: dict = {}
        self.lock = threading.Lock()

    def _order(self) -> list:
        now = time.monotonic()
        with self.lock:
            up = [i for i, s in enumerate(self.servers) if self.unreachable_until.get(s.label, 0) <= now]
        return up + [i for i in range(len(self.servers)) if i not in up]

    def one(self, audio: Audio, target: Path) -> Outcome:
        outcome = Outcome(str(audio.path), "failed", seconds=audio.seconds, output=str(target))
        remove_stale_partials(target)
        for index in self._order():
            server, client = self.servers[index], self.clients[index]
            call = transcribe(
                client,
                server,
                audio,
                response_format=API_FORMATS[self.settings.format],
                language=self.settings.language,
                prompt=self.settings.prompt,
                request_id=request_id(audio.path),
            )
            outcome.attempts.append(
                {"server": server.label, "ok": call.ok, "error": call.error, "retries": call.retries}
            )
            if call.ok:
                if not call.body.strip():
                    outcome.error = f"{server.label} answered with an empty body"
                    continue
                try:
                    write_whole(target, call.body)
                except OSError as error:  # a full disk, a folder that cannot be written: this file fails
                    outcome.error = f"cannot write {target}: {error.strerror or error}"
                    return outcome
                outcome.status, outcome.server = "done", server.label
                return outcome
            outcome.error = f"{server.label}: {call.error}"
            if call.status is None and call.try_next:  # no answer at all: unreachable or timed out
                with self.lock:
                    self.unreachable_until[server.label] = time.monotonic() + UNREACHABLE_SECONDS
            if not call.try_next or self.stopping.is_set():
                break
        return outcome

    def run(self, inputs: list, report=print) -> list:
        """Transcribes what is not done yet; returns an Outcome per file, in the files' order."""
        outcomes: list = []
        todo: list = []
        claimed: dict = {}
        found = find(inputs)
        for path, root in found:
            target = output_path(path, root, self.settings)
            if str(target) in claimed:
                outcomes.append(
                    Outcome(str(path), "failed", error=f"its transcript {target} is {claimed[str(target)]}'s too")
                )
                continue
            claimed[str(target)] = str(path)
            if target.exists():
                outcomes.append(Outcome(str(path), "skipped", output=str(target)))
                continue
            try:
                todo.append((measure(path, root), target))
            except BadAudio as error:
                outcomes.append(Outcome(str(path), "failed", error=f"not sent: {error}"))
        for bad in outcomes:
            if bad.status == "failed":
                report(f"failed {bad.path}: {bad.error}")
        outcomes += self._transcribe(todo, report)
        order = {path: i for i, (path, _root) in enumerate(found)}
        return sorted(outcomes, key=lambda o: order.get(Path(o.path), len(order)))

    def _transcribe(self, todo: list, report) -> list:
        from tqdm import tqdm

        total = sum(audio.seconds for audio, _target in todo) / 60
        bar = tqdm(
            total=total,
            unit="min",
            desc="audio",
            disable=(not self.settings.progress) if self.settings.progress is not None else None,
            file=sys.stderr,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.1f}/{total:.1f} min [{elapsed}<{remaining}] {postfix}",
        )
        done: list = []
        queue = list(todo)
        running: dict = {}
        # Ctrl-C sets a flag wherever the main thread is (a KeyboardInterrupt could land between two
        # steps of saving a result); a second one abandons what is in flight.
        previous = signal.signal(signal.SIGINT, lambda _sig, _frame: self._stop(len(running), report))
        try:
            with ThreadPoolExecutor(max_workers=max(1, self.settings.concurrency)) as pool:
                while queue or running:
                    while queue and len(running) < max(1, self.settings.concurrency) and not self.stopping.is_set():
                        audio, target = queue.pop(0)
                        running[pool.submit(self.one, audio, target)] = audio
                    if not running:
                        break
                    finished, _ = wait(list(running), return_when=FIRST_COMPLETED, timeout=0.5)
                    for future in finished:
                        audio = running.pop(future)
                        outcome = future.result()
                        done.append(outcome)
                        bar.update(min(audio.seconds / 60, max(0.0, bar.total - bar.n)))
                        bar.set_postfix_str(f"{len(done)}/{len(todo)} files")
                        if outcome.status == "failed":
                            bar.write(f"failed {outcome.path}: {outcome.error}", file=sys.stderr)
        finally:
            signal.signal(signal.SIGINT, previous)
            bar.close()
        # Stopped early: what was never sent waits for the next run.
        done += [Outcome(str(audio.path), "left", seconds=audio.seconds, output=str(t)) for audio, t in queue]
        return done

    def _stop(self, in_flight: int, report) -> None:
        if self.stopping.is_set():
            report("stopped; the files in flight are abandoned (nothing half-written is left)")
            os._exit(130)
        self.stopping.set()
        report(
            f"stopping: {in_flight} file(s) in flight are finished and saved; the rest wait for the next run "
            "(Ctrl-C again to abandon them)"
        )


def summary(outcomes: list, elapsed: float) -> dict:
    done = [o for o in outcomes if o.status == "done"]
    seconds = sum(o.seconds for o in done)
    servers: dict = {}
    for o in done:
        servers[o.server] = servers.get(o.server, 0) + 1
    return {
        "files": len(outcomes),
        "transcribed": len(done),
        "skipped": sum(o.status == "skipped" for o in outcomes),
        "left": sum(o.status == "left" for o in outcomes),
        "failed": [{"file": o.path, "error": o.error} for o in outcomes if o.status == "failed"],
        "audio_minutes": seconds / 60,
        "elapsed_s": elapsed,
        # Wall-clock seconds per second of audio, for the whole batch (below 1: faster than real time).
        "real_time_factor": (elapsed / seconds) if seconds else None,
        "by_server": servers,
    }


def describe(result: dict, interrupted: bool) -> str:
    lines = [
        f"files: {result['files']} ({result['transcribed']} transcribed, {result['skipped']} already done, "
        f"{len(result['failed'])} failed" + (f", {result['left']} left for the next run)" if result["left"] else ")"),
        f"audio: {result['audio_minutes']:.2f} minutes transcribed in {result['elapsed_s']:.1f} s"
        + (f", real-time factor {result['real_time_factor']:.3f}" if result["real_time_factor"] is not None else ""),
    ]
    if result["by_server"]:
        lines.append("servers: " + ", ".join(f"{name} {count}" for name, count in result["by_server"].items()))
    for failure in result["failed"]:
        lines.append(f"failed: {failure['file']}: {failure['error']}")
    if interrupted:
        lines.append("interrupted: run the same command again to finish the rest")
    return "\n".join(lines)
