"""What strangers cost the server: N connections at once, each a POST with no key and a big body.

    python server/bench/strangers.py [--connections 100] [--body-mb 25] [--src DIR]

Starts the real whisper-server (tiny.en, an API key, loopback) with TMPDIR pointed at a fresh folder,
then opens the connections together; each sends its headers (Content-Length --body-mb MB, no
Authorization) and streams its body, then reads the answer. While they run it samples the server's
RSS and the bytes it holds in temporary files: waitress spools a body past 512 KiB into an anonymous
(unlinked) file, which `du` cannot see, so they are summed from /proc/<pid>/fd. --src runs another
copy of the server's source (e.g. `git archive HEAD server/src | tar -x -C /tmp/old`, then
--src /tmp/old/server/src) for a before/after comparison. Bounded: --deadline seconds in all.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from whisperlab_testkit import support

CHUNK = b"\0" * (256 * 1024)


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spooled(pid: int, folder: Path) -> tuple[int, int]:
    """(files, bytes on disk) the process holds open under `folder`, deleted or not."""
    files = used = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith(str(folder)):
                files += 1
                used += os.stat(f"/proc/{pid}/fd/{fd}").st_blocks * 512
        except OSError:
            pass
    return files, used


def stranger(port: int, length: int, stop: float, results: Counter, lock: threading.Lock) -> None:
    outcome = "unfinished"
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=max(1.0, stop - time.monotonic())) as sock:
            sock.sendall(
                (
                    "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                    "Content-Type: multipart/form-data; boundary=x\r\n"
                    f"Content-Length: {length}\r\n\r\n"
                ).encode()
            )
            sent = 0
            sock.setblocking(False)
            answer = b""
            while sent < length and time.monotonic() < stop:
                try:
                    answer += sock.recv(65536)  # an answer before the body is all sent
                    if answer:
                        break
                except BlockingIOError:
                    pass
                try:
                    sent += sock.send(CHUNK[: min(len(CHUNK), length - sent)])
                except BlockingIOError:
                    time.sleep(0.005)
            sock.setblocking(True)
            sock.settimeout(max(1.0, stop - time.monotonic()))
            while b"\r\n" not in answer:
                more = sock.recv(65536)
                if not more:
                    break
                answer += more
            status = answer.split(b"\r\n", 1)[0].decode(errors="replace")
            outcome = f"{status} after {'all' if sent >= length else f'{sent // 1_000_000} MB'} of the body"
    except OSError as exc:
        outcome = type(exc).__name__
    with lock:
        results[outcome] += 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=100)
    parser.add_argument("--body-mb", type=float, default=25.0, help="each body's Content-Length, in MB (10^6 bytes)")
    parser.add_argument("--src", type=Path, help="the server source folder to run (default: this checkout's)")
    parser.add_argument("--deadline", type=float, default=90.0, help="seconds the connections get, in all")
    args = parser.parse_args()

    env = {"MALLOC_ARENA_MAX": "2"}
    if args.src:
        env["PYTHONPATH"] = str(args.src.resolve())
    with tempfile.TemporaryDirectory(prefix="whisperlab-strangers-") as work:
        key = "sk-whisperlab-strangers-0123456789abcdef"
        server = support.start_server(Path(work), support.tiny_en(), key=key, env=env)
        try:
            measure(server, args)
        finally:
            server.stop()
    return 0


def measure(server: support.RunningServer, args: argparse.Namespace) -> None:
    pid, folder = server.process.pid, server.tmp_dir
    port = int(server.url.rsplit(":", 1)[1])
    length = int(args.body_mb * 1_000_000)
    source = args.src or "this checkout"
    print(f"server: {source}, pid {pid}, TMPDIR {folder}")
    print(f"{args.connections} connections x Content-Length {length} ({args.body_mb:g} MB), no Authorization")
    idle = rss_mib(pid)
    samples: list[tuple[float, int, int]] = []
    results: Counter = Counter()
    lock = threading.Lock()
    started = time.monotonic()
    stop = started + args.deadline
    clients = [
        threading.Thread(target=stranger, args=(port, length, stop, results, lock), daemon=True)
        for _ in range(args.connections)
    ]
    for client in clients:
        client.start()
    while any(client.is_alive() for client in clients) and time.monotonic() < stop + 5:
        samples.append((rss_mib(pid), *spooled(pid, folder)))
        time.sleep(0.1)
    elapsed = time.monotonic() - started
    after = rss_mib(pid)
    peak_rss = max(s[0] for s in samples)
    peak_files = max(s[1] for s in samples)
    peak_disk = max(s[2] for s in samples)
    print(f"server RSS: idle {idle:.0f} MiB, peak {peak_rss:.0f} MiB, after {after:.0f} MiB")
    print(f"spooled temporary files: at most {peak_files} at once, {peak_disk / 2**20:.0f} MiB on disk at the peak")
    print(f"took {elapsed:.1f} s; answers: " + "; ".join(f"{n} x {what}" for what, n in results.most_common()))


if __name__ == "__main__":
    sys.exit(main())
