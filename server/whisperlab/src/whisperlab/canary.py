"""whisperlab canary: whether the local server has earned the first place, from the evidence.

The evidence is a shadow log (the local server's answers to real notes beside the second endpoint's) or
a compare report (report.json: B is the candidate). The local server meets the bar when, over at least
--min-notes notes, its error rate, its p99 latency and its WER against the reference are all within
their thresholds.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Optional


@dataclasses.dataclass
class Thresholds:
    max_error_rate: float = 0.01
    max_p99: float = 10.0
    max_wer: float = 0.15
    min_notes: int = 20


def from_report(path: Path) -> dict:
    try:
        summary = json.loads(path.read_text())
        summary["b"]["latency_s"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is not a report.json that whisperlab compare wrote") from None
    return summary


def verdict(summary: dict, limits: Thresholds) -> tuple:
    """(meets, lines): whether the candidate (B) meets every threshold, and why, one line each."""
    b = summary["b"]
    notes = b["requests"]
    p99: Optional[float] = b["latency_s"]["p99"]
    wer: Optional[float] = summary["wer"]
    checks = [
        (
            notes >= limits.min_notes,
            f"notes: {notes} (at least {limits.min_notes} for a verdict)",
        ),
        (
            b["error_rate"] <= limits.max_error_rate,
            f"error rate: {b['error_rate'] * 100:.1f}% (at most {limits.max_error_rate * 100:.1f}%)",
        ),
        (
            p99 is not None and p99 <= limits.max_p99,
            f"p99 latency: {'-' if p99 is None else f'{p99:.2f} s'} (at most {limits.max_p99:g} s)",
        ),
        (
            wer is not None and wer <= limits.max_wer,
            f"WER against {summary['a'].get('name') or summary['a']['label']}: "
            f"{'-' if wer is None else f'{wer * 100:.1f}%'} (at most {limits.max_wer * 100:.1f}%)",
        ),
    ]
    lines = [f"{'ok  ' if ok else 'FAIL'} {line}" for ok, line in checks]
    return all(ok for ok, _line in checks), lines
