"""whisperlab soak: the real whisper-server (tiny.en, CPU) under a bounded mix of clients, and the
memory one long recording costs. Bounded in count and time; prints figures for docs/benchmarks.md.

1. long uploads: peak RSS (VmHWM) of a fresh server for one 1-hour and one 3-hour 12 kbps Opus upload,
   against its RSS when idle and ready. Sparse speech (a sentence a minute), so decoding and VAD over
   the whole length dominate, not transcription time.
2. mixed clients for --seconds: good notes, garbage, oversized uploads, clients that give up after a
   second, and 2-minute recordings; a client told 429 waits its Retry-After (at most 5 s). Counts by
   status, the 5xx count (must be 0), RSS at start and end (growth within 15%), and queue depth and
   CPU once the clients stop (both back to idle).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import psutil
import requests

from whisperlab_testkit import support

RATE = 16000


def opus(samples: np.ndarray, kbps: int = 12) -> bytes:
    return support.encode(samples, "ogg", bit_rate=kbps * 1000)


def sparse_speech(seconds: int) -> np.ndarray:
    """`seconds` of quiet room noise with one spoken sentence at the start of every minute."""
    sentences = [support.speak(s) for s in support.SENTENCES.values()]
    audio = (np.random.default_rng(1).standard_normal(seconds * RATE) * 0.002).astype(np.float32)
    for minute in range(seconds // 60):
        sentence = sentences[minute % len(sentences)]
        start = minute * 60 * RATE
        audio[start : start + sentence.size] += sentence
    return audio


def peak_rss_mib(process: psutil.Process) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def long_uploads(work: Path) -> None:
    print("== long uploads: peak RSS of a fresh server (VmHWM), 12 kbps Opus")
    for hours in (1, 3):
        data = opus(sparse_speech(hours * 3600))
        server = support.start_server(work / f"long{hours}", support.tiny_en(), key=None)
        process = psutil.Process(server.process.pid)
        idle = process.memory_info().rss / 2**20
        began = time.monotonic()
        try:
            response = server.post(audio=data, filename="long.ogg", timeout=3600)
        finally:
            peak = peak_rss_mib(process)
            server.stop()
        took = time.monotonic() - began
        words = len(response.json().get("text", "").split()) if response.status_code == 200 else 0
        print(
            f"  {hours} h ({len(data) / 2**20:.1f} MiB upload): status {response.status_code}, {words} words, "
            f"{took:.0f} s; RSS idle {idle:.0f} MiB, peak {peak:.0f} MiB (+{peak - idle:.0f} MiB)"
        )


def mixed_clients(work: Path, seconds: float, clients: int, warm_up: float) -> int:
    print(
        f"== mixed clients: {clients} clients for {seconds:.0f} s after a {warm_up:.0f} s warm-up"
        " (workers 1, max-queue 4)"
    )
    server = support.start_server(
        work / "soak", support.tiny_en(), "--workers", "1", "--max-queue", "4", "--max-upload-mb", "5", key=None
    )
    process = psutil.Process(server.process.pid)
    note = support.speech("weather", "ogg")
    long_note = opus(sparse_speech(120))
    garbage = bytes(random.Random(2).randrange(256) for _ in range(20000))
    oversized = b"\0" * (6 * 2**20)
    kinds = {
        "good": lambda: server.post(audio=note, filename="n.ogg", timeout=120),
        "garbage": lambda: server.post(audio=garbage, filename="g.ogg", timeout=120),
        "oversized": lambda: server.post(audio=oversized, filename="big.ogg", timeout=120),
        "long": lambda: server.post(audio=long_note, filename="l.ogg", timeout=300),
        "abandoned": lambda: server.post(audio=long_note, filename="a.ogg", timeout=1),
    }
    counts: Counter = Counter()
    lock = threading.Lock()

    def client(seed: int, stop: float, counts: Counter) -> None:
        rng = random.Random(seed)
        while time.monotonic() < stop:
            kind = rng.choices(list(kinds), weights=[6, 2, 1, 1, 2])[0]
            try:
                response = kinds[kind]()
                outcome = response.status_code
                if outcome == 429:  # as a well-behaved client does, and the skill does
                    time.sleep(min(float(response.headers.get("Retry-After", 1)), 5.0))
            except requests.exceptions.Timeout:
                outcome = "gave up"
            except requests.exceptions.ConnectionError:
                outcome = "connection error"
            with lock:
                counts[(kind, outcome)] += 1

    def run(seconds: float, counts: Counter) -> None:
        stop = time.monotonic() + seconds
        threads = [threading.Thread(target=client, args=(n, stop, counts)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    # The same mix for a warm-up first, not counted: first-use allocations (each audio length's
    # buffers, allocator caches) are not growth. Growth is measured over the run after it.
    run(warm_up, Counter())
    start_rss = process.memory_info().rss / 2**20
    run(seconds, counts)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        health = requests.get(server.url + "/health", timeout=5).json()
        if health["running"] == 0 and health["queue_depth"] == 0:
            break
        time.sleep(0.5)
    cpu = process.cpu_percent(interval=2.0)
    end_rss = process.memory_info().rss / 2**20
    metrics = requests.get(server.url + "/metrics", timeout=5).text
    server.stop()
    for (kind, outcome), n in sorted(counts.items(), key=str):
        print(f"  {kind:10s} -> {outcome}: {n}")
    errors = sum(n for (_, outcome), n in counts.items() if isinstance(outcome, int) and outcome >= 500)
    cancelled = [line for line in metrics.splitlines() if line.startswith("whisper_cancelled_total")]
    growth = (end_rss - start_rss) / start_rss * 100
    print(f"  5xx: {errors}")
    print(f"  cancelled (server side): {', '.join(cancelled) or 'none'}")
    print(f"  RSS after the warm-up {start_rss:.0f} MiB, at the end {end_rss:.0f} MiB ({growth:+.1f}%)")
    print(f"  after the clients stopped: running {health['running']}, queue {health['queue_depth']}, CPU {cpu:.0f}%")
    return 1 if errors or growth > 15 or health["running"] or health["queue_depth"] else 0


def main() -> int:
    # As the systemd unit runs it: glibc otherwise keeps an arena per thread that ran a request.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120, help="how long the mixed clients run")
    parser.add_argument("--clients", type=int, default=6)
    parser.add_argument("--warm-up", type=float, default=30, help="seconds of the same mix before RSS is taken")
    parser.add_argument("--skip-long", action="store_true", help="skip the 1 h and 3 h uploads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if not args.skip_long:
            long_uploads(work)
        return mixed_clients(work, args.seconds, args.clients, args.warm_up)


if __name__ == "__main__":
    sys.exit(main())
