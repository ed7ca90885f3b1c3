"""The compare report's picture: both endpoints' latency distributions, and B's per-file WER."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server or in CI

import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import MaxNLocator  # noqa: E402


def draw(summary: dict, path: Path) -> None:
    figure, (latency, wer) = plt.subplots(1, 2, figsize=(11, 4.2))
    a, b = summary["a"], summary["b"]
    samples = [a["latency_s"]["all"], b["latency_s"]["all"]]
    everything = samples[0] + samples[1]
    if everything:
        top = max(everything)
        bins = [top * i / 20 for i in range(21)] if top > 0 else 10
        for side, values, colour in ((a, samples[0], "tab:blue"), (b, samples[1], "tab:orange")):
            if values:
                latency.hist(
                    values,
                    bins=bins,
                    alpha=0.55,
                    color=colour,
                    label=f"{side['name']}, {side['model']} ({len(values)})",
                )
                p99 = side["latency_s"]["p99"]
                latency.axvline(p99, color=colour, linestyle="--", linewidth=1)
        latency.legend()
    latency.set_title("Latency per request (dashed: p99)")
    latency.set_xlabel("seconds")
    latency.set_ylabel("requests")
    latency.yaxis.set_major_locator(MaxNLocator(integer=True))

    rates = [f["wer"] * 100 for f in summary["files"] if f["wer"] is not None]
    if rates:
        wer.hist(rates, bins=[i * 5 for i in range(0, max(2, int(max(rates) // 5) + 2))], color="tab:green")
    overall = summary["wer"]
    wer.set_title(f"WER of B against A per file (overall {overall * 100:.1f}%)" if overall is not None else "WER")
    wer.set_xlabel("WER %")
    wer.set_ylabel("files")
    wer.yaxis.set_major_locator(MaxNLocator(integer=True))
    figure.suptitle(f"{a['name']} (A) vs {b['name']} (B): {len(summary['files'])} files")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
