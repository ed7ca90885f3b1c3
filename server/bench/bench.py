"""whisperlab benchmarks: every figure is a ratio of two things measured side by side in this run.

All on this machine, with tiny.en int8 on the CPU, beam 5 and VAD on for every side:
1. latency: a 5 s note and an 11 s clip over HTTP, against the naive Flask server and against a
   direct in-process WhisperModel.transcribe call (medians of interleaved runs)
2. throughput and peak memory: 4 concurrent clients x 11 s clips, against the naive server
3. what cross-request batching gains: 2, 4 and 8 clients, the default against --batch-size 1
4. long audio: a 60 s clip over HTTP, against a direct BatchedInferencePipeline call with the same
   settings (and, for reference, with the library's defaults and sequentially)
5. real-time factor over HTTP on the 60 s clip, tiny.en and base
6. memory: server RSS after 200 requests / after the first 50
7. WER on the real speech in ../shared/data, where present: this server against the sequential
   decoding the server used before batching (direct WhisperModel.transcribe)
8. Wyoming, as Home Assistant speaks it: this server's Wyoming port against wyoming-faster-whisper on
   the same model and settings (int8, beam 5), the same clips: latency from audio-stop to the
   transcript (medians of interleaved runs), WER, and each process's RSS
9. idle unload, tiny.en and base: RSS loaded, unloaded and loaded again; the reload's time; the first
   request after an unload against a warm one
10. long notes, WER and time: varied dictation in three espeak-ng voices and speeds, repetitive speech
   (two sentences alternating; jfk.flac and a 5 s note alternating, and the multilingual clip's English
   half, where ../shared/data has them), each through ours (batched), ours with --batch-size 1, direct
   WhisperModel.transcribe (sequential, as the seed's server and wyoming-faster-whisper decode) and
   direct BatchedInferencePipeline (its defaults)
"""

from __future__ import annotations

import argparse
import io
import json
import platform
import re
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

from whisperlab_testkit import support

HERE = Path(__file__).resolve().parent

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


# Our server as the role deploys it: glibc's arenas capped (see the unit), everything else default.
SERVER_ENV = {"MALLOC_ARENA_MAX": "2"}


class Server:
    """A server under test: ours (support.start_server) or the naive baseline, with its process."""

    def __init__(self, url: str, process: subprocess.Popen, stop):
        self.url, self.process, self._stop = url, process, stop

    def post(self, audio: bytes, filename: str = "c.ogg", **fields: str) -> requests.Response:
        return requests.post(
            self.url + "/v1/audio/transcriptions",
            data={"model": "whisper-1", **fields},
            files={"file": (filename, audio)},
            timeout=600,
        )

    def stop(self) -> None:
        self._stop()


def ours(tmp: Path, model: Path, *flags: str) -> Server:
    tmp.mkdir(parents=True, exist_ok=True)
    running = support.start_server(tmp, model, "--max-queue", "16", *flags, key=None, env=SERVER_ENV)
    return Server(running.url, running.process, running.stop)


def naive(tmp: Path, model: Path) -> Server:
    port = support.free_port()
    process = subprocess.Popen(
        [sys.executable, str(HERE / "naive_server.py"), "--model", str(model), "--port", str(port)],
        stdout=(tmp / "naive.out").open("wb"),
        stderr=subprocess.STDOUT,
    )

    def stop() -> None:
        process.terminate()
        process.wait()

    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            requests.get(url + "/health", timeout=1)
            return Server(url, process, stop)
        except requests.ConnectionError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("naive server did not start")


def timed(action, *args, **kwargs) -> float:
    started = time.perf_counter()
    action(*args, **kwargs)
    return time.perf_counter() - started


def post_ok(server: Server, audio: bytes, **fields: str) -> None:
    server.post(audio, **fields).raise_for_status()


def direct_sequential(model, audio: bytes) -> None:
    from faster_whisper import decode_audio

    list(model.transcribe(decode_audio(io.BytesIO(audio)), beam_size=5, vad_filter=True)[0])


def bench_latency(model: Path, runs: int) -> dict:
    """Interleaved, so drift on a noisy machine hits every side alike."""
    from faster_whisper import WhisperModel

    direct = WhisperModel(str(model), device="cpu", compute_type="int8")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        ours_server, naive_server = ours(Path(tmp) / "ours", model), naive(Path(tmp), model)
        try:
            for seconds in (5, 11):
                audio = support.encode(clip(seconds), "ogg")
                times: dict[str, list[float]] = {"ours": [], "naive": [], "direct": []}
                for server in (ours_server, naive_server):  # warm-up
                    server.post(audio)
                for _ in range(runs):
                    times["ours"].append(timed(post_ok, ours_server, audio))
                    times["naive"].append(timed(post_ok, naive_server, audio))
                    times["direct"].append(timed(direct_sequential, direct, audio))
                row = {f"{k}_median_s": statistics.median(v) for k, v in times.items()}
                row["vs_naive"] = row["ours_median_s"] / row["naive_median_s"]
                row["vs_direct"] = row["ours_median_s"] / row["direct_median_s"]
                results[f"{seconds}s"] = row
                log(f"  {seconds} s: ours/naive {row['vs_naive']:.3f}, ours/direct {row['vs_direct']:.3f}")
        finally:
            ours_server.stop()
            naive_server.stop()
    return results


def _load(server: Server, audio: bytes, clients: int, per_client: int) -> dict:
    """`clients` threads each posting `per_client` requests back to back; peak RSS sampled meanwhile."""
    statuses: list[int] = []
    lock = threading.Lock()
    process = psutil.Process(server.process.pid)
    peak = [process.memory_info().rss]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], process.memory_info().rss)

    def client() -> None:
        for _ in range(per_client):
            response = server.post(audio)
            with lock:
                statuses.append(response.status_code)

    sampler = threading.Thread(target=sample)
    sampler.start()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    done.set()
    sampler.join()
    ok = statuses.count(200)
    return {
        "requests": len(statuses),
        "ok": ok,
        "seconds": elapsed,
        "rps": ok / elapsed,
        "peak_rss_mib": peak[0] / 2**20,
    }


def bench_throughput(model: Path, per_client: int) -> dict:
    """4 clients x 11 s clips: naive, then ours with its defaults. Each server alone on the machine."""
    audio = support.encode(clip(11), "ogg")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, start in (("naive", lambda: naive(Path(tmp), model)), ("ours", lambda: ours(Path(tmp) / "o", model))):
            server = start()
            try:
                _load(server, audio, 1, 1)  # warm-up
                results[name] = _load(server, audio, 4, per_client)
            finally:
                server.stop()
            log(f"  {name}: {results[name]['rps']:.3f} req/s, peak RSS {results[name]['peak_rss_mib']:.0f} MiB")
    results["rps_ratio"] = results["ours"]["rps"] / results["naive"]["rps"]
    results["peak_rss_ratio"] = results["ours"]["peak_rss_mib"] / results["naive"]["peak_rss_mib"]
    return results


def bench_batching(model: Path, requests_each: int) -> dict:
    """The default (batched) against --batch-size 1, same workers, at 2, 4 and 8 clients."""
    audio = support.encode(clip(11), "ogg")
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in (("batched", ("--workers", "8")), ("unbatched", ("--workers", "8", "--batch-size", "1"))):
            server = ours(Path(tmp) / name, model, *flags)
            try:
                _load(server, audio, 1, 1)
                for clients in (2, 4, 8):
                    row = _load(server, audio, clients, max(1, requests_each // clients))
                    results.setdefault(str(clients), {})[name] = row["rps"]
                    log(f"  {name}, {clients} clients: {row['rps']:.3f} req/s")
            finally:
                server.stop()
    for row in results.values():
        row["gain"] = row["batched"] / row["unbatched"]
    return results


def bench_long(model: Path, runs: int) -> dict:
    """A 60 s clip: our server over HTTP against faster-whisper's own batched pipeline called directly,
    like for like: a json answer against the pipeline without timestamps (its default), verbose_json
    against it with timestamps. Window-after-window decoding, for reference."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

    audio = support.encode(clip(60), "ogg")
    direct = WhisperModel(str(model), device="cpu", compute_type="int8")
    pipeline = BatchedInferencePipeline(direct)

    def run_pipeline(timestamps: bool) -> None:
        samples = decode_audio(io.BytesIO(audio))
        list(pipeline.transcribe(samples, beam_size=5, batch_size=8, without_timestamps=not timestamps)[0])

    times: dict[str, list[float]] = {k: [] for k in ("json", "pipeline", "verbose", "pipeline_ts", "sequential")}
    with tempfile.TemporaryDirectory() as tmp:
        # The batched path: on a CPU a 60 s clip is otherwise decoded window after window (step 10).
        server = ours(Path(tmp), model, "--sequential-seconds", "30")
        try:
            post_ok(server, audio)
            run_pipeline(False)
            for _ in range(runs):
                times["json"].append(timed(post_ok, server, audio))
                times["pipeline"].append(timed(run_pipeline, False))
                times["verbose"].append(timed(post_ok, server, audio, response_format="verbose_json"))
                times["pipeline_ts"].append(timed(run_pipeline, True))
                times["sequential"].append(timed(direct_sequential, direct, audio))
        finally:
            server.stop()
    row = {f"{k}_median_s": statistics.median(v) for k, v in times.items()}
    row["json_vs_pipeline"] = row["json_median_s"] / row["pipeline_median_s"]
    row["verbose_vs_pipeline_ts"] = row["verbose_median_s"] / row["pipeline_ts_median_s"]
    row["json_vs_sequential"] = row["json_median_s"] / row["sequential_median_s"]
    log(
        f"  json/pipeline {row['json_vs_pipeline']:.3f}, verbose_json/pipeline with timestamps "
        f"{row['verbose_vs_pipeline_ts']:.3f}, json/sequential {row['json_vs_sequential']:.3f}"
    )
    return row


def bench_rtf(models: dict[str, Path], runs: int) -> dict:
    audio = support.encode(clip(60), "ogg")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in models.items():
            server = ours(Path(tmp) / name, path, "--model-alias", name)
            try:
                server.post(audio).raise_for_status()
                times = [timed(post_ok, server, audio) for _ in range(runs)]
            finally:
                server.stop()
            results[name] = {"median_s": statistics.median(times), "rtf": statistics.median(times) / 60.0}
            log(f"  {name}: RTF {results[name]['rtf']:.3f}")
    return results


WARM = 50


def bench_memory(model: Path, total: int) -> dict:
    audio = support.encode(clip(3), "ogg")
    with tempfile.TemporaryDirectory() as tmp:
        server = ours(Path(tmp), model)
        try:
            process = psutil.Process(server.process.pid)
            checkpoints = {}
            for n in range(1, total + 1):
                assert server.post(audio).status_code == 200
                if n in (1, 10, 25) or n % 50 == 0:
                    checkpoints[n] = process.memory_info().rss / 2**20
            # From the 50th on: each model stream warms its own buffers over the first few dozen requests.
            after_warm, after_all = checkpoints[WARM] * 2**20, process.memory_info().rss
        finally:
            server.stop()
    return {
        "rss_after_warm_mib": after_warm / 2**20,
        "rss_after_all_mib": after_all / 2**20,
        "requests": total,
        "growth": after_all / after_warm - 1,
        "rss_mib_by_request": checkpoints,
    }


# The English the 60 s multilingual sample starts with (the MIT licence), to score its first half.
MIT = (
    "Permission is hereby granted, free of charge, to any person obtaining a copy of this software and "
    "associated documentation files (the Software), to deal in the Software without restriction, including "
    "without limitation the rights to use, copy, modify, merge, publish, distribute, sublicense, and/or sell "
    "copies of the Software, and to permit persons to whom the Software is furnished to do so, subject to the "
    "following conditions"
)
JFK = "And so, my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def _prefix_wer(reference: str, hypothesis: str) -> float:
    """WER of the hypothesis against the reference's best-matching prefix (the sample's English part
    ends somewhere in the reference)."""
    words = support.normalise(reference).split()
    return min(support.wer(" ".join(words[:n]), hypothesis) for n in range(max(1, len(words) // 2), len(words) + 1))


def bench_wer(models: dict[str, Path]) -> dict:
    if not support.SHARED_DATA.is_dir():
        log(f"  skipped: {support.SHARED_DATA} is absent")
        return {}
    from faster_whisper import WhisperModel, decode_audio

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, path in models.items():
            direct = WhisperModel(str(path), device="cpu", compute_type="int8")
            server = ours(Path(tmp) / name, path)
            try:
                cases = [("jfk.flac", JFK, None)]
                if name == "base":
                    cases.append(("multilingual.mp3", MIT, 30.0))
                for sample, reference, english_until in cases:
                    audio = (support.SHARED_DATA / sample).read_bytes()
                    response = server.post(audio, sample, response_format="verbose_json")
                    response.raise_for_status()
                    segments = response.json()["segments"]
                    before = list(direct.transcribe(decode_audio(io.BytesIO(audio)), beam_size=5, vad_filter=True)[0])
                    limit = english_until or float("inf")
                    now = " ".join(s["text"] for s in segments if s["start"] < limit)
                    then = " ".join(s.text for s in before if s.start < limit)
                    row = {"ours": _prefix_wer(reference, now), "sequential": _prefix_wer(reference, then)}
                    results[f"{name} {sample}" + (" (English half)" if english_until else "")] = row
                    log(f"  {name} {sample}: WER ours {row['ours']:.3f}, sequential {row['sequential']:.3f}")
            finally:
                server.stop()
    return results


def wyoming_rows(results: dict) -> list[str]:
    """Steps 8 and 9's rows, for the table (or alone, from a run with --only wyoming --only residency)."""
    rows = []
    for name, row in results["wyoming"]["clips"].items():
        wer = f", WER {row['ours_wer']:.3f} / {row['peer_wer']:.3f}" if row["ours_wer"] is not None else ""
        rows.append(
            f"| 8. Wyoming, {name}: ours / wyoming-faster-whisper, audio-stop to transcript "
            f"({row['ours_median_s']:.3f} s / {row['peer_median_s']:.3f} s{wer}) | **{row['ratio']:.3f}** | <= 1.0 |"
        )
    wy = results["wyoming"]
    rows.append(
        f"| 8. Wyoming, RSS: ours (Wyoming and /v1) / wyoming-faster-whisper ({wy['ours_rss_mib']:.0f} / "
        f"{wy['peer_rss_mib']:.0f} MiB) | **{wy['ours_rss_mib'] / wy['peer_rss_mib']:.2f}** | (one model for both) |"
    )
    for name, row in results["residency"].items():
        rows.append(
            f"| 9. idle unload, {name}: RSS unloaded / loaded ({row['rss_unloaded_mib']:.0f} / "
            f"{row['rss_loaded_mib']:.0f} MiB; {row['rss_reloaded_mib']:.0f} loaded again) | "
            f"**{row['rss_unloaded_mib'] / row['rss_loaded_mib']:.2f}** | (lower: more given back) |"
        )
        rows.append(
            f"| 9. idle unload, {name}: first request after an unload / a warm one ({row['first_after_unload_s']:.2f}"
            f" s / {row['warm_request_s']:.2f} s; the reload itself {row['reload_s']:.2f} s) | "
            f"**{row['first_after_unload_s'] / row['warm_request_s']:.2f}** | (the cost of stepping aside) |"
        )
    return rows


def table(results: dict) -> str:
    rows = ["| benchmark | measured | target |", "|---|---|---|"]
    for clip_name, row in results["latency"].items():
        rows.append(
            f"| 1. latency, {clip_name} note: HTTP / naive Flask server (medians {row['ours_median_s']:.3f} s / "
            f"{row['naive_median_s']:.3f} s) | **{row['vs_naive']:.3f}** | <= 1.0 |"
        )
        rows.append(
            f"| 1. latency, {clip_name} note: HTTP / direct WhisperModel.transcribe "
            f"({row['direct_median_s']:.3f} s) | **{row['vs_direct']:.3f}** | <= 1.05 |"
        )
    thr = results["throughput"]
    rows.append(
        f"| 2. throughput, 4 clients x 11 s clips: ours / naive ({thr['ours']['rps']:.3f} / "
        f"{thr['naive']['rps']:.3f} req/s) | **{thr['rps_ratio']:.2f}** | >= 1.25 |"
    )
    rows.append(
        f"| 2. peak RSS under that load: ours / naive ({thr['ours']['peak_rss_mib']:.0f} / "
        f"{thr['naive']['peak_rss_mib']:.0f} MiB) | **{thr['peak_rss_ratio']:.2f}** | <= 1.2 |"
    )
    for clients, row in results["batching"].items():
        rows.append(
            f"| 3. batching gain, {clients} clients x 11 s: batched / --batch-size 1 ({row['batched']:.3f} / "
            f"{row['unbatched']:.3f} req/s) | **{row['gain']:.2f}** | (higher is better) |"
        )
    long = results["long"]
    rows.append(
        "| 4. 60 s clip, batched (--sequential-seconds 30), json: HTTP / direct BatchedInferencePipeline, its "
        f"defaults ({long['json_median_s']:.2f} s / "
        f"{long['pipeline_median_s']:.2f} s) | **{long['json_vs_pipeline']:.3f}** | <= 1.10 |"
    )
    rows.append(
        f"| 4. 60 s clip, verbose_json: HTTP / the pipeline with timestamps ({long['verbose_median_s']:.2f} s / "
        f"{long['pipeline_ts_median_s']:.2f} s) | **{long['verbose_vs_pipeline_ts']:.3f}** | <= 1.10 |"
    )
    rows.append(
        f"| 4. 60 s clip, json: HTTP / sequential WhisperModel.transcribe ({long['sequential_median_s']:.2f} s)"
        f" | **{long['json_vs_sequential']:.3f}** | (reference) |"
    )
    for name, row in results["rtf"].items():
        rows.append(f"| 5. real-time factor, HTTP, 60 s clip, {name} | **{row['rtf']:.3f}** | (lower: faster) |")
    mem = results["memory"]
    rows.append(
        f"| 6. RSS after {mem['requests']} requests / after {WARM} ({mem['rss_after_all_mib']:.0f} / "
        f"{mem['rss_after_warm_mib']:.0f} MiB) | **{mem['growth'] * 100:+.1f}%** | < +10% |"
    )
    for name, row in results["wer"].items():
        rows.append(
            f"| 7. WER, {name}: ours / sequential decoding ({row['sequential']:.3f}) | **{row['ours']:.3f}** "
            f"| <= {row['sequential']:.3f} |"
        )
    rows += wyoming_rows(results)
    rows += long_quality_rows(results)
    curve = ", ".join(f"{n}: {mib:.0f}" for n, mib in mem["rss_mib_by_request"].items())
    rows.append(f"\nRSS (MiB) after N requests: {curve}.")
    return "\n".join(rows)


def bench_wyoming(model: Path, runs: int) -> dict:
    from whisperlab_testkit import wyoming_kit as wk

    clips = {key: (text, wk.pcm(support.speak(text))) for key, text in support.SENTENCES.items()}
    clips["11 s"] = (" ".join(SENTENCES), wk.pcm(clip(11.0)))
    with tempfile.TemporaryDirectory() as tmp:
        port = support.free_port()
        mine = support.start_server(Path(tmp) / "ours", model, "--wyoming-port", str(port), key=None, env=SERVER_ENV)
        peer = wk.Peer(Path(tmp), model)
        try:
            rows: dict = {}
            for name, (reference, audio) in clips.items():
                times: dict = {"ours": [], "peer": []}
                texts: dict = {}
                for _ in range(runs):
                    answer = wk.transcribe("127.0.0.1", port, audio)
                    times["ours"].append(answer.seconds)
                    texts["ours"] = answer.text
                    answer = peer.transcribe(audio)
                    times["peer"].append(answer.seconds)
                    texts["peer"] = answer.text
                ours_s, peer_s = statistics.median(times["ours"]), statistics.median(times["peer"])
                rows[name] = {
                    "ours_median_s": ours_s,
                    "peer_median_s": peer_s,
                    "ratio": ours_s / peer_s,
                    "ours_wer": support.wer(reference, texts["ours"]) if name in support.SENTENCES else None,
                    "peer_wer": support.wer(reference, texts["peer"]) if name in support.SENTENCES else None,
                }
            return {
                "clips": rows,
                "ours_rss_mib": psutil.Process(mine.process.pid).memory_info().rss / 2**20,
                "peer_rss_mib": psutil.Process(peer.process.pid).memory_info().rss / 2**20,
            }
        finally:
            peer.stop()
            mine.stop()


def bench_residency(models: dict, runs: int) -> dict:
    audio = support.encode(clip(5.0), "ogg")
    out = {}
    for name, model in models.items():
        with tempfile.TemporaryDirectory() as tmp:
            running = support.start_server(Path(tmp), model, key=None, env=SERVER_ENV)
            process = psutil.Process(running.process.pid)

            def rss(process=process) -> float:
                return process.memory_info().rss / 2**20

            try:
                warm = []
                for _ in range(runs):
                    warm.append(timed(post_ok, Server(running.url, running.process, None), audio, filename="c.ogg"))
                loaded = rss()
                first, unloaded, reloaded, unload_s = [], [], [], []
                for _ in range(runs):
                    unload_s.append(timed(requests.post, running.url + "/v1/models/whisper-1/unload", timeout=60))
                    unloaded.append(rss())
                    first.append(timed(post_ok, Server(running.url, running.process, None), audio, filename="c.ogg"))
                    reloaded.append(rss())
                metrics = requests.get(running.url + "/metrics", timeout=10).text
                total = float(re.search(r"^whisper_model_load_seconds_sum (\S+)", metrics, re.M).group(1))
                count = float(re.search(r"^whisper_model_load_seconds_count (\S+)", metrics, re.M).group(1))
            finally:
                running.stop()
        out[name] = {
            "rss_loaded_mib": loaded,
            "rss_unloaded_mib": statistics.median(unloaded),
            "rss_reloaded_mib": statistics.median(reloaded),
            "reload_s": total / count,
            "unload_call_s": statistics.median(unload_s),
            "warm_request_s": statistics.median(warm),
            "first_after_unload_s": statistics.median(first),
        }
    return out


# Voices and speeds for varied dictation: the speaker changes from sentence to sentence.
VOICES = (("en-us", 150), ("en-gb", 175), ("en-029", 130))
MORE_SENTENCES = (
    "The invoice for the garden furniture is due on the twelfth and still has not been paid.",
    "Please call the dentist and move my appointment to Wednesday morning if they have a slot.",
    "We need two hundred and forty chairs for the conference and another twenty for the speakers.",
    "Read the second chapter again before the exam, especially the part about the water cycle.",
    "The bakery on the corner closes at six, so buy the birthday cake before you pick up the kids.",
)


# Four more dictations of the same sentences: another order, other voices and speeds.
MORE_VOICES = (("en-gb", 160), ("en-us", 140), ("en-029", 150), ("en-gb-x-rp", 170), ("en-us", 185))


def dictations() -> list[tuple[str, np.ndarray]]:
    """Five ~70 s dictations (13 sentences each, the voice changing every sentence)."""
    pause = np.zeros(8000, dtype=np.float32)
    sentences = list(support.PARAGRAPH) + list(MORE_SENTENCES)
    found = []
    for n in range(5):
        if n == 0:
            order, voices = sentences, VOICES * 5
        else:
            k = n - 1
            order = sentences[k * 3 :] + sentences[: k * 3]
            order = order[::-1] if k % 2 else order
            voices = MORE_VOICES[k:] * 5 + MORE_VOICES[:k] * 5
        parts = [(s, support.speak(s, speed, voice)) for s, (voice, speed) in zip(order, voices)]
        found.append((" ".join(s for s, _ in parts), np.concatenate([x for _, a in parts for x in (a, pause)])))
    return found


def long_recordings() -> dict[str, tuple[str, np.ndarray]]:
    """name: (reference, 16 kHz audio) for step 10."""
    pause = np.zeros(8000, dtype=np.float32)

    def joined(parts: list[tuple[str, np.ndarray]]) -> tuple[str, np.ndarray]:
        return " ".join(t for t, _ in parts), np.concatenate([x for _, a in parts for x in (a, pause)])

    spoken = dictations()
    found = {f"varied dictation {n + 1}": d for n, d in enumerate(spoken)}
    found["long dictation, the five in a row"] = (
        " ".join(t for t, _ in spoken),
        np.concatenate([a for _, a in spoken]),
    )
    pair = [(support.SENTENCES[k], support.speak(support.SENTENCES[k])) for k in ("report", "fox")]
    found["repetitive, two sentences alternating"] = joined(pair * 5)
    jfk = support.SHARED_DATA / "jfk.flac"
    if jfk.is_file():
        from faster_whisper import decode_audio

        note = (support.SENTENCES["report"], support.speak(support.SENTENCES["report"]))
        found["repetitive, jfk.flac and a 5 s note alternating"] = joined([(JFK, decode_audio(str(jfk))), note] * 4)
        mit = support.SHARED_DATA / "multilingual.mp3"
        found["multilingual.mp3, English half"] = (MIT, decode_audio(str(mit))[: 30 * 16000])
    return found


SEQUENTIAL = "WhisperModel.transcribe"
PIPELINE = "BatchedInferencePipeline"


def bench_long_quality(model: Path, runs: int) -> dict:
    """Step 10: each long recording through four decoders; time (median) and WER (of the last run)."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

    direct = WhisperModel(str(model), device="cpu", compute_type="int8")
    pipeline = BatchedInferencePipeline(direct)

    def sequential(audio: bytes) -> str:
        segments, _ = direct.transcribe(decode_audio(io.BytesIO(audio)), beam_size=5, vad_filter=True)
        return " ".join(s.text for s in segments)

    def batched(audio: bytes) -> str:
        return " ".join(s.text for s in pipeline.transcribe(decode_audio(io.BytesIO(audio)))[0])

    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            "ours": ours(Path(tmp) / "a", model),
            "ours, chunks side by side past 30 s": ours(Path(tmp) / "b", model, "--sequential-seconds", "30"),
        }
        try:
            sides = {name: (lambda a, s=server: s.post(a).json()["text"]) for name, server in servers.items()}
            sides[SEQUENTIAL] = sequential
            sides[PIPELINE] = batched
            for recording, (reference, samples) in long_recordings().items():
                audio = support.encode(samples, "ogg")
                score = _prefix_wer if "English half" in recording else support.wer
                row: dict = {"seconds": len(samples) / 16000}
                for side, transcribe in sides.items():
                    times, text = [], ""
                    for _ in range(runs):
                        began = time.perf_counter()
                        text = transcribe(audio)
                        times.append(time.perf_counter() - began)
                    row[side] = {"wer": score(reference, text), "median_s": statistics.median(times)}
                results[recording] = row
                figures = [f"{k} WER {v['wer']:.3f} in {v['median_s']:.2f} s" for k, v in row.items() if k != "seconds"]
                log(f"  {recording} ({row['seconds']:.0f} s): " + ", ".join(figures))
        finally:
            for server in servers.values():
                server.stop()
    return results


def long_quality_rows(results: dict) -> list[str]:
    """Each recording's WER and time through the four decoders, then the targets: on the five dictations
    a mean WER no worse than sequential decoding's; on repetitive speech no more than 1.5x the
    pipeline's time (the fastest of the peers) at a WER no worse than it."""
    found = results.get("long_quality", {})
    rows = []
    for recording, row in found.items():
        cells = "; ".join(
            f"{side} {v['wer']:.3f} in {v['median_s']:.2f} s" for side, v in row.items() if side != "seconds"
        )
        rows.append(
            f"| 10. {recording} ({row['seconds']:.0f} s), WER and time: {cells} | **{row['ours']['wer']:.3f}** | |"
        )
    varied = [row for name, row in found.items() if name.startswith("varied dictation")]
    if varied:
        ours_mean = statistics.mean(r["ours"]["wer"] for r in varied)
        others = {side: statistics.mean(r[side]["wer"] for r in varied) for side in varied[0] if side != "seconds"}
        cells = ", ".join(f"{side} {v:.3f}" for side, v in others.items())
        rows.append(
            f"| 10. mean WER over the {len(varied)} varied dictations ({cells}) | **{ours_mean:.3f}** "
            f"| <= {others[SEQUENTIAL]:.3f} (sequential) |"
        )
    for recording, row in found.items():
        if recording.startswith("repetitive"):
            ratio = row["ours"]["median_s"] / row[PIPELINE]["median_s"]
            rows.append(
                f"| 10. {recording}: time, ours / the pipeline ({row['ours']['median_s']:.2f} s / "
                f"{row[PIPELINE]['median_s']:.2f} s; WER {row['ours']['wer']:.3f} / {row[PIPELINE]['wer']:.3f}) "
                f"| **{ratio:.2f}** | <= 1.5, WER <= {row[PIPELINE]['wer']:.3f} |"
            )
    return rows


STEPS = ("latency", "throughput", "batching", "long", "rtf", "memory", "wer", "wyoming", "residency", "long_quality")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, for a smoke run")
    parser.add_argument("--only", choices=STEPS, action="append", help="run only these steps (repeatable)")
    args = parser.parse_args()
    tiny, base = support.tiny_en(), support.base()
    quick = args.quick
    steps = {
        "latency": lambda: bench_latency(tiny, 3 if quick else 9),
        "throughput": lambda: bench_throughput(tiny, 2 if quick else 6),
        "batching": lambda: bench_batching(tiny, 8 if quick else 24),
        "long": lambda: bench_long(tiny, 1 if quick else 3),
        "rtf": lambda: bench_rtf({"tiny.en": tiny, "base": base}, 1 if quick else 3),
        "memory": lambda: bench_memory(tiny, 100 if quick else 200),
        "wer": lambda: bench_wer({"tiny.en": tiny, "base": base}),
        "wyoming": lambda: bench_wyoming(tiny, 2 if quick else 5),
        "residency": lambda: bench_residency({"tiny.en": tiny, "base": base}, 2 if quick else 5),
        "long_quality": lambda: bench_long_quality(tiny, 1 if quick else 2),
    }
    results: dict = {
        "machine": {"cpus": psutil.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    }
    chosen = args.only or list(STEPS)
    for n, name in enumerate(chosen, start=1):
        log(f"{n}/{len(chosen)} {name}")
        results[name] = steps[name]()
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    if args.only:
        log(json.dumps(results, indent=2))
        return 0
    markdown = table(results)
    (args.out / "results.md").write_text(markdown + "\n")
    log("\n" + markdown)
    return 0


if __name__ == "__main__":
    sys.exit(main())
