#!/usr/bin/env python3
"""A stand-in for the `openclaw` command, for the openclaw role's controller-side runs: the few
subcommands the role calls, over a JSON config and a profiles list in $FAKE_OPENCLAW_DIR, each call
logged one per line (argv, space-joined) to calls.log there. The real OpenClaw's behaviour is proven in
the lab (tests/lab/test_openclaw_e2e.py); this one only shows which commands a run makes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

HERE = Path(os.environ["FAKE_OPENCLAW_DIR"])
CONFIG = HERE / "openclaw.json"
PROFILES = HERE / "profiles.json"


def load(path: Path, empty):
    return json.loads(path.read_text()) if path.exists() else empty


def lookup(config: dict, path: str):
    node = config
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(path)
        node = node[part]
    return node


def assign(config: dict, path: str, value) -> None:
    *parents, last = path.split(".")
    node = config
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def main(args: list[str]) -> int:
    with (HERE / "calls.log").open("a") as log:
        log.write(" ".join(args) + "\n")
    config = load(CONFIG, {})
    if args == ["--version"]:
        print((HERE / "version").read_text().strip() if (HERE / "version").exists() else "OpenClaw 2026.9.6 (fake)")
    elif args == ["config", "file"]:
        print(CONFIG)
    elif args[:2] == ["config", "get"]:
        try:
            print(json.dumps(lookup(config, args[2])))
        except KeyError:
            print(f"Config path not found: {args[2]}", file=sys.stderr)
            return 1
    elif args[:2] == ["plugins", "inspect"]:
        print(json.dumps({"plugin": {"origin": "bundled", "mediaUnderstandingProviderIds": [args[2]]}}))
    elif args[:3] == ["models", "auth", "list"]:
        print(json.dumps({"profiles": load(PROFILES, [])}))
    elif args[:3] == ["models", "auth", "logout"]:
        PROFILES.write_text(json.dumps([p for p in load(PROFILES, []) if p["id"] != args[3]]))
    elif args[:3] == ["config", "set", "--batch-json"]:
        before = json.dumps(config, sort_keys=True)
        for setting in json.loads(args[3]):
            assign(config, setting["path"], setting["value"])
        if json.dumps(config, sort_keys=True) == before:
            print("No change")
        elif "--dry-run" not in args:
            CONFIG.write_text(json.dumps(config))
    elif args[:2] == ["config", "unset"]:
        *parents, last = args[2].split(".")
        lookup(config, ".".join(parents)).pop(last, None) if parents else config.pop(last, None)
        CONFIG.write_text(json.dumps(config))
    elif args == ["config", "validate"]:
        print("Config valid")
    else:
        print(f"fake openclaw: unknown command {args}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
