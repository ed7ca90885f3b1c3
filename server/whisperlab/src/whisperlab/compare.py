"""whisperlab compare A B FILES...: every file to both endpoints, then how B reads against A.

A is the reference (usually what the user trusts today: `openai`), B the candidate (the GPU box). The
report holds, per file, both texts, both latencies and errors, B's WER against A and a word diff; and
overall, each endpoint's latency percentiles, error rate, the audio minutes, and what that volume costs
at OpenAI's price. It prints as a table and is written as report.md, report.json and report.png.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional

from whisperlab import scoring
from whisperlab.calls import Call, transcribe
from whisperlab.endpoints import Endpoint


@dataclasses.dataclass
class Settings:
    concurrency: int = 2
    timeout: float = 300.0
    retries: int = 2  # the SDK's, on 408/409/429/5xx and connection errors, honouring Retry-After
    language: Optional[str] = None
    price_per_minute: Optional[float] = None  # None: OpenAI's price for the reference's model
    minutes_per_month: Optional[float] = None


def run(a: Endpoint, b: Endpoint, audios: list, settings: Settings, progress=None) -> list:
    """[{file, seconds, a: Call, b: Call}] in the files' order. Each file goes to both; at most
    `concurrency` requests are in flight at once."""
    clients = {
        side: endpoint.client(timeout=settings.timeout, max_retries=settings.retries)
        for side, endpoint in (("a", a), ("b", b))
    }
    endpoints = {"a": a, "b": b}
    # "file" as the user named it below the folder given (or the file's own name); "path" in full.
    results: list = [
        {"file": str(audio.relative), "path": str(audio.path), "seconds": audio.seconds} for audio in audios
    ]
    lock = threading.Lock()

    def one(index: int, side: str) -> None:
        call = transcribe(clients[side], endpoints[side], audios[index], language=settings.language)
        with lock:
            results[index][side] = call
            if progress is not None:
                progress.update(1)

    with ThreadPoolExecutor(max_workers=max(1, settings.concurrency)) as pool:
        futures = [pool.submit(one, i, side) for i in range(len(audios)) for side in ("a", "b")]
        for future in futures:
            future.result()
    return results


def _side(calls: list, minutes: float) -> dict:
    ok = [c.latency_s for c in calls if c.ok]
    return {
        "requests": len(calls),
        "errors": sum(not c.ok for c in calls),
        "error_rate": (sum(not c.ok for c in calls) / len(calls)) if calls else 0.0,
        "latency_s": {
            "p50": scoring.percentile(ok, 50),
            "p95": scoring.percentile(ok, 95),
            "p99": scoring.percentile(ok, 99),
            "mean": (sum(ok) / len(ok)) if ok else None,
            "all": ok,
        },
        "audio_minutes": minutes,
    }


def report(a: Endpoint, b: Endpoint, results: list, settings: Settings) -> dict:
    files = []
    pairs = []
    for row in results:
        call_a, call_b = row["a"], row["b"]
        entry = {
            "file": row["file"],
            "path": row.get("path", row["file"]),
            "seconds": row["seconds"],
            "a": _call(call_a),
            "b": _call(call_b),
            "wer": None,
            "diff": "",
        }
        if call_a.ok and call_b.ok:
            entry["wer"] = scoring.wer(call_a.text, call_b.text)
            if entry["wer"]:
                entry["diff"] = scoring.word_diff(call_a.text, call_b.text)
            pairs.append((call_a.text, call_b.text))
        files.append(entry)
    minutes = sum(r["seconds"] for r in results) / 60
    price = settings.price_per_minute
    if price is None:
        price = scoring.price_per_minute(a.model if a.is_openai else b.model if b.is_openai else "whisper-1")
    cost = {
        "price_per_minute_usd": price,
        "this_volume_usd": round(minutes * price, 4) if price is not None else None,
        "per_month_usd": (
            round(settings.minutes_per_month * price, 2)
            if price is not None and settings.minutes_per_month is not None
            else None
        ),
        "minutes_per_month": settings.minutes_per_month,
        "note": "at OpenAI's per-minute price; a local server's own cost (power, the GPU) is not counted",
    }
    return {
        "a": {
            "label": a.label,
            "name": a.name,
            "url": a.base_url,
            "model": a.model,
            **_side([r["a"] for r in results], minutes),
        },
        "b": {
            "label": b.label,
            "name": b.name,
            "url": b.base_url,
            "model": b.model,
            **_side([r["b"] for r in results], minutes),
        },
        "files": files,
        "wer": scoring.corpus_wer(pairs),
        "compared": len(pairs),
        "audio_minutes": minutes,
        "cost": cost,
    }


def _call(call: Call) -> dict:
    return {
        "ok": call.ok,
        "text": call.text,
        "latency_s": round(call.latency_s, 4),
        "status": call.status,
        "error": call.error,
        "request_id": call.request_id,
        "retries": call.retries,
    }


def gate(summary: dict, fail_above: Optional[float], p99_above: Optional[float]) -> list:
    """What fails the gate: B's WER against A over fail_above, B's p99 over p99_above, or nothing to
    compare at all when a WER gate was asked for."""
    failures = []
    if fail_above is not None:
        if summary["wer"] is None:
            failures.append("no file was transcribed by both, so there is no WER to gate on")
        elif summary["wer"] > fail_above:
            failures.append(f"WER {summary['wer']:.3f} is above {fail_above}")
    if p99_above is not None:
        p99 = summary["b"]["latency_s"]["p99"]
        if p99 is None:
            failures.append(f"{summary['b']['name']} answered nothing, so it has no p99")
        elif p99 > p99_above:
            failures.append(f"{summary['b']['name']}'s p99 latency {p99:.2f} s is above {p99_above} s")
    return failures


def _seconds(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"


def _rate(value: Optional[float]) -> str:
    return "-" if value is None else f"{value * 100:.1f}%"


def table(summary: dict) -> str:
    """The terminal's view: one line per file, then each endpoint's figures."""
    a, b = summary["a"], summary["b"]
    lines = [f"A = {a['label']} ({a['model']}, {a['url']})", f"B = {b['label']} ({b['model']}, {b['url']})", ""]
    width = max([4] + [len(_short(f["file"])) for f in summary["files"]])
    lines.append(f"{'file':<{width}}  {'sec':>6}  {'A s':>6}  {'B s':>6}  {'WER':>6}  note")
    for f in summary["files"]:
        note, a_s, b_s = _file_row(f)
        lines.append(
            f"{_short(f['file']):<{width}}  {f['seconds']:>6.1f}  {_seconds(a_s):>6}  {_seconds(b_s):>6}  "
            f"{_rate(f['wer']):>6}  {note[:80]}"
        )
    lines += ["", f"{'':<22}{'p50 s':>8}{'p95 s':>8}{'p99 s':>8}{'errors':>10}"]
    for side in (a, b):
        latency = side["latency_s"]
        lines.append(
            f"{side['name'][:21]:<22}{_seconds(latency['p50']):>8}{_seconds(latency['p95']):>8}"
            f"{_seconds(latency['p99']):>8}{_rate(side['error_rate']):>10}"
        )
    cost = summary["cost"]
    lines.append("")
    lines.append(
        f"WER of B against A: {_rate(summary['wer'])} over {summary['compared']} file(s), "
        f"{summary['audio_minutes']:.2f} audio minutes"
    )
    if cost["this_volume_usd"] is not None:
        line = f"At OpenAI's ${cost['price_per_minute_usd']}/min: ${cost['this_volume_usd']:.4f} for these files"
        if cost["per_month_usd"] is not None:
            line += f", ${cost['per_month_usd']:.2f} a month at {cost['minutes_per_month']:g} minutes"
        lines.append(line + " (the local server's power is not counted)")
    return "\n".join(lines)


def _file_row(f: dict) -> tuple:
    """(the first error, A's latency, B's latency) of one file, a latency None where that side failed."""
    note = f["a"]["error"] and f"A: {f['a']['error']}" or f["b"]["error"] and f"B: {f['b']['error']}" or ""
    return note, f["a"]["latency_s"] if f["a"]["ok"] else None, f["b"]["latency_s"] if f["b"]["ok"] else None


def _short(path: str) -> str:
    return path if len(path) <= 48 else "..." + path[-45:]


def markdown(summary: dict, picture: Optional[str]) -> str:
    a, b = summary["a"], summary["b"]
    out = [
        "# whisperlab compare",
        "",
        f"- **A** (reference): `{a['label']}`, model `{a['model']}`, {a['url']}",
        f"- **B** (candidate): `{b['label']}`, model `{b['model']}`, {b['url']}",
        f"- **Files**: {len(summary['files'])}, {summary['audio_minutes']:.2f} audio minutes",
        f"- **WER of B against A**: {_rate(summary['wer'])} over {summary['compared']} file(s)",
        "",
        "| | p50 s | p95 s | p99 s | mean s | error rate |",
        "|---|---|---|---|---|---|",
    ]
    for side in (a, b):
        latency = side["latency_s"]
        out.append(
            f"| {side['label']} | {_seconds(latency['p50'])} | {_seconds(latency['p95'])} | "
            f"{_seconds(latency['p99'])} | {_seconds(latency['mean'])} | {_rate(side['error_rate'])} |"
        )
    cost = summary["cost"]
    if cost["this_volume_usd"] is not None:
        out += ["", f"**Cost at OpenAI's price** (${cost['price_per_minute_usd']}/min): ${cost['this_volume_usd']:.4f}"]
        if cost["per_month_usd"] is not None:
            out[-1] += f"; ${cost['per_month_usd']:.2f} a month at {cost['minutes_per_month']:g} minutes"
        out[-1] += ". The local server's own cost (power, the GPU) is not counted."
    if picture:
        out += ["", f"![latency and WER]({picture})"]
    out += ["", "## Files", "", "| file | seconds | A s | B s | WER | |", "|---|---|---|---|---|---|"]
    for f in summary["files"]:
        note, a_s, b_s = _file_row(f)
        out.append(
            f"| `{f['file']}` | {f['seconds']:.1f} | {_seconds(a_s)} | {_seconds(b_s)} | {_rate(f['wer'])} | "
            f"{_cell(note)} |"
        )
    differing = [f for f in summary["files"] if f["diff"]]
    if differing:
        out += ["", "## Where they differ", "", "`[-word-]`: in A only; `{+word+}`: in B instead.", ""]
        for f in differing:
            out += [f"- `{f['file']}` (WER {_rate(f['wer'])}): {f['diff']}"]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def write(summary: dict, out: Path) -> dict:
    """report.json, report.png (when matplotlib is here) and report.md in `out`; returns their paths."""
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    picture = None
    try:
        from whisperlab import plots
    except ImportError:  # a Mac that only shadows has no matplotlib; the figures are in the JSON
        plots = None
    if plots is not None:
        picture = out / "report.png"
        plots.draw(summary, picture)
        written["png"] = picture
    path = out / "report.json"
    path.write_text(json.dumps(summary, indent=2) + "\n")
    written["json"] = path
    path = out / "report.md"
    path.write_text(markdown(summary, picture.name if picture else None))
    written["md"] = path
    return written
