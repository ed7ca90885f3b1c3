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
        for side in ("a", "b"):
            summary[side]["label"], summary[side]["requests"], summary[side]["error_rate"]
            summary[side]["latency_s"]["p99"]
        summary["wer"], summary["compared"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is not a report.json that whisperlab compare wrote") from None
    return summary


MET, MISSED, THIN = "met", "missed", "thin"


def verdict(summary: dict, limits: Thresholds) -> tuple:
    """(state, lines): MET when the candidate (B) meets every threshold, MISSED when it does not, THIN
    when there is too little evidence to say (too few notes both answered): nothing should change then."""
    b = summary["b"]
    compared = summary["compared"]
    p99: Optional[float] = b["latency_s"]["p99"]
    wer: Optional[float] = summary["wer"]
    enough = compared >= limits.min_notes and wer is not None
    checks = [
        (b["error_rate"] <= limits.max_error_rate, f"error rate: {b['error_rate'] * 100:.1f}% of {b['requests']} notes "
         f"(at most {limits.max_error_rate * 100:.1f}%)"),
        (p99 is not None and p99 <= limits.max_p99,
         f"p99 latency: {'-' if p99 is None else f'{p99:.2f} s'} (at most {limits.max_p99:g} s)"),
        (wer is not None and wer <= limits.max_wer,
         f"WER against {summary['a'].get('name') or summary['a']['label']}: "
         f"{'-' if wer is None else f'{wer * 100:.1f}%'} (at most {limits.max_wer * 100:.1f}%)"),
    ]  # fmt: skip
    lines = [f"{'ok  ' if enough else 'LOW '} evidence: {compared} notes both answered (at least {limits.min_notes})"]
    lines += [f"{'ok  ' if ok else 'FAIL'} {line}" for ok, line in checks]
    if not enough:
        return THIN, lines
    return (MET if all(ok for ok, _line in checks) else MISSED), lines


def apply(inventory: str, order: str, check: bool = False) -> int:
    """Runs the client play with whisperlab_client_order=order: OpenClaw's entries and the skill's order
    follow, and later plain runs keep them (the roles' keep). Its output goes to the terminal."""
    import subprocess

    from whisperlab.endpoints import ansible

    path, repo, playbook_cmd, env = ansible(inventory)
    command = [
        playbook_cmd,
        "-i",
        str(path),
        "playbooks/client.yml",
        "-e",
        json.dumps({"whisperlab_client_order": order}),
    ]
    if check:
        command += ["--check", "--diff"]
    where = "first" if order == "local_first" else "last, after the clients' other endpoints"
    print(f"{'checking' if check else 'putting'} the local servers {where}: {' '.join(command)}", flush=True)
    return subprocess.run(command, cwd=repo, env=env).returncode
