#!/usr/bin/env python3
"""Read ansible-playbook's JSON output (ansible.posix.json) and fail, naming them, if any task changed
something, failed, or found a host unreachable. Used for the idempotence and check-mode runs."""

import json
import sys


def main() -> int:
    label, path = sys.argv[1], sys.argv[2]
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    # Warnings may precede the document; it starts at the first '{' on a line of its own.
    run = json.loads(text[text.index("{\n") :])
    changed, failed = [], []
    for play in run["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                name = f"{host}: {play['play']['name']} / {task['task']['name']}"
                if result.get("failed") or result.get("unreachable"):
                    failed.append(f"{name}: {result.get('msg', '')}")
                elif result.get("changed"):
                    changed.append(name)
    totals = {host: stats["changed"] for host, stats in run["stats"].items()}
    for name in changed:
        print(f"{label}: changed: {name}")
    for name in failed:
        print(f"{label}: FAILED: {name}")
    if changed or failed or any(totals.values()):
        print(f"{label}: FAILED, changed per host: {totals}")
        return 1
    print(f"{label}: ok, changed=0 on {', '.join(sorted(totals))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
