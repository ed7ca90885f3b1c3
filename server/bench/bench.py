"""whisperlab benchmarks: every figure is a ratio of two things measured side by side in this run.

1. latency: median HTTP round trip of an 11 s clip / median direct in-process faster-whisper call
2. throughput: 4 concurrent clients with 10 s clips, whisper-server configs / the naive Flask baseline
3. real-time factor on a 60 s clip, tiny.en and base, int8 on CPU
4. memory: server RSS after 200 requests / after the first 10

Same machine, model, audio and decoding settings (beam 5, VAD on, int8, CPU) on both sides.
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
import requests

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
import support  # noqa: E402

SENTENCES = list(support.SENTENCES.values()) + [
    "Remember to water the plants and feed the cat before you leave the house.",
    "The meeting has been moved to Thursday at three o'clock in the small conference room.",
]


def clip(seconds: float) -> np.ndarray:
    """Distinct espeak-ng sentences, with short pauses, cut to exactly `seconds`."""
    pause = np.zeros(8000, dtype=np.float32)
    parts, total, i = [], 0, 0
    while total < seconds * 16000:
        speech = support.speak(SENTENCES[i % len(SENTENCES)])
        parts += [speech, pause]
        total += len(speech) + len(pause)
        i += 1
    return np.concatenate(parts)[: int(seconds * 16000)]


def log(message: str) -> None:
    print(message, flush=True)


def bench_latency(model: Path, runs: int) -> dict:
    from faster_whisper import WhisperModel, decode_audio

    audio = support.encode(clip(11), "ogg")
    direct = WhisperModel(str(model), device="cpu", compute_type="int8")
    with tempfile.TemporaryDirectory() as tmp:
        server = support.start_server(Path(tmp), model, "--workers", "1", key=None)
        try:
            http, inproc = [], []
            for _ in range(runs):  # interleaved, so drift on a noisy machine hits both sides
                started = time.perf_counter()
                assert server.post(audio=audio, filename="c.ogg").status_code == 200
                http.append(time.perf_counter() - started)
                started = time.perf_counter()
                samples = decode_audio(io.BytesIO(audio))
                list(direct.transcribe(samples, beam_size=5, vad_filter=True)[0])
                inproc.append(time.perf_counter() - started)
        finally:
            server.stop()
    result = {"http_median_s": statistics.median(http), "direct_median_s": statistics.median(inproc)}
    result["ratio"] = result["http_median_s"] / result["direct_median_s"]
    return result


def _load(url: str, audio: bytes, clients: int, per_client: int) -> dict:
    statuses: list[int] = []
    lock = threading.Lock()

    def client() -> None:
        for _ in range(per_client):
            response = requests.post(
                url + "/v1/audio/transcriptions",
                data={"model": "whisper-1"},
                files={"file": ("c.ogg", audio)},
                timeout=600,
            )
            with lock:
                statuses.append(response.status_code)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ok = statuses.count(200)
    return {"requests": len(statuses), "ok": ok, "seconds": elapsed, "rps": ok / elapsed}


def _naive(model: Path, tmp: Path):
    port = support.free_port()
    process = subprocess.Popen(
        [sys.executable, str(HERE / "naive_server.py"), "--model", str(model), "--port", str(port)],
        stdout=(tmp / "naive.out").open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            requests.get(url + "/health", timeout=1)
            return url, process
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("naive server did not start")


def bench_throughput(model: Path, per_client: int) -> dict:
    audio = support.encode(clip(10), "ogg")
    clients = 4
    configs = {
        "workers=1": ["--workers", "1"],
        "workers=2": ["--workers", "2"],
        "workers=1 batch-size=8": ["--workers", "1", "--batch-size", "8"],
        "workers=2 cpu-threads=1": ["--workers", "2", "--cpu-threads", "1"],
    }
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        url, process = _naive(model, Path(tmp))
        try:
            _load(url, audio, 1, 1)  # warm-up
            results["naive"] = _load(url, audio, clients, per_client)
        finally:
            process.terminate()
            process.wait()
        log(f"  naive: {results['naive']['rps']:.3f} req/s")
        for name, flags in configs.items():
            server = support.start_server(
                Path(tmp) / name.replace(" ", "_"), model, *flags, "--max-queue", "16", key=None
            )
            try:
                results[name] = _load(server.url, audio, clients, per_client)
            finally:
                server.stop()
            log(f"  {name}: {results[name]['rps']:.3f} req/s")
    for name in configs:
        results[name]["ratio_vs_naive"] = results[name]["rps"] / results["naive"]["rps"]
    return results


def bench_rtf(models: dict[str, Path], runs: int) -> dict:
    from faster_whisper import WhisperModel

    audio = clip(60)
    results = {}
    for name, path in models.items():
        model = WhisperModel(str(path), device="cpu", compute_type="int8")
        list(model.transcribe(audio[: 16000 * 5], beam_size=5, language="en")[0])  # warm-up
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            list(model.transcribe(audio, beam_size=5, vad_filter=True, language="en")[0])
            times.append(time.perf_counter() - started)
        results[name] = {"median_s": statistics.median(times), "rtf": statistics.median(times) / 60.0}
        log(f"  {name}: RTF {results[name]['rtf']:.3f}")
    return results


def bench_memory(model: Path, total: int) -> dict:
    audio = support.encode(clip(3), "ogg")
    with tempfile.TemporaryDirectory() as tmp:
        server = support.start_server(Path(tmp), model, key=None)
        try:
            process = psutil.Process(server.process.pid)
            checkpoints = {}
            for n in range(1, total + 1):
                assert server.post(audio=audio, filename="c.ogg").status_code == 200
                if n == 10 or n % 50 == 0:
                    checkpoints[n] = process.memory_info().rss / 2**20
            after_10, after_all = checkpoints[10] * 2**20, process.memory_info().rss
        finally:
            server.stop()
    return {
        "rss_after_10_mib": after_10 / 2**20,
        "rss_after_all_mib": after_all / 2**20,
        "requests": total,
        "growth": after_all / after_10 - 1,
        "rss_mib_by_request": checkpoints,
    }


def table(results: dict) -> str:
    lat, thr, rtf, mem = (results[k] for k in ("latency", "throughput", "rtf", "memory"))
    rows = [
        "| benchmark | measured | target |",
        "|---|---|---|",
        f"| 1. latency, 11 s clip: HTTP / direct faster-whisper (medians {lat['http_median_s']:.2f} s / "
        f"{lat['direct_median_s']:.2f} s) | **{lat['ratio']:.3f}** | <= 1.10 |",
    ]
    naive = thr["naive"]["rps"]
    for name, row in thr.items():
        if name != "naive":
            rows.append(
                f"| 2. throughput, 4 clients x 10 s clips, whisper-server {name} / naive Flask "
                f"({row['rps']:.3f} / {naive:.3f} req/s) | **{row['ratio_vs_naive']:.2f}** | >= 1.0 |"
            )
    for name, row in rtf.items():
        rows.append(f"| 3. real-time factor, 60 s clip, {name}, int8 CPU | **{row['rtf']:.3f}** | (lower is faster) |")
    rows.append(
        f"| 4. RSS after {mem['requests']} requests / after 10 ({mem['rss_after_all_mib']:.0f} / "
        f"{mem['rss_after_10_mib']:.0f} MiB) | **{mem['growth'] * 100:+.1f}%** | < +10% |"
    )
    curve = ", ".join(f"{n}: {mib:.0f}" for n, mib in mem["rss_mib_by_request"].items())
    rows.append(f"\nRSS (MiB) after N requests: {curve}.")
    return "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, for a smoke run")
    args = parser.parse_args()
    tiny, base = support.tiny_en(), support.base()
    quick = args.quick
    results: dict = {
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    }
    log("1/4 latency")
    results["latency"] = bench_latency(tiny, 3 if quick else 9)
    log(f"  ratio {results['latency']['ratio']:.3f}")
    log("2/4 throughput")
    results["throughput"] = bench_throughput(tiny, 1 if quick else 4)
    log("3/4 real-time factor")
    results["rtf"] = bench_rtf({"tiny.en": tiny, "base": base}, 1 if quick else 3)
    log("4/4 memory")
    results["memory"] = bench_memory(tiny, 30 if quick else 200)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    markdown = table(results)
    (args.out / "results.md").write_text(markdown + "\n")
    log("\n" + markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
