"""Writes the flags table of server/README.md from the server's own option table (options._OPTIONS), so
the two cannot disagree. `--check` only says whether the README is current (exit 1 when it is not).

    python server/tools/flags_table.py [--check]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from whisper_server.options import markdown_table

README = Path(__file__).resolve().parents[1] / "README.md"
START = "<!-- flags table: written by server/tools/flags_table.py from options._OPTIONS; do not edit -->\n"
END = "<!-- end of flags table -->\n"


def rewritten(text: str) -> str:
    before, found, rest = text.partition(START)
    if not found or END not in rest:
        raise SystemExit(f"{README}: the flags table's markers are missing")
    return before + START + markdown_table() + END + rest.split(END, 1)[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the README's table is not current")
    args = parser.parse_args()
    text = README.read_text()
    new = rewritten(text)
    if args.check:
        if new != text:
            print(f"{README} is not current: run python server/tools/flags_table.py", file=sys.stderr)
            return 1
        return 0
    if new != text:
        README.write_text(new)
        print(f"wrote {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
