"""`make setup`'s package step on a fresh Debian machine, in a throwaway copy of the lab's root
filesystem (tests/lab/sequence.sh runs this file by path; it needs root and the lab's rootfs).

Two machines a new user may have: this machine kind, which ships NodeSource's nodejs (whose npm
conflicts with Debian's npm package), and one with no Node at all. Both must end with every command
the tests and the lab need, and the first must keep its own Node.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

# Run by the lab sequence before the first converge (pytest tests/lab -m before_converge).
pytestmark = pytest.mark.before_converge

REPO = Path(__file__).resolve().parents[2]
LAB = Path(__file__).with_name("lab.sh")

# A stand-in for NodeSource's package, with the relations that made Debian's npm uninstallable.
NODESOURCE_CONTROL = """\
Package: nodejs
Version: 20.20.2-1nodesource1
Architecture: all
Maintainer: whisperlab tests <tests@whisperlab.invalid>
Provides: nodejs-dev, nodejs-doc, nodejs-legacy, npm
Conflicts: nodejs-dev, nodejs-doc, nodejs-legacy, npm
Replaces: nodejs-dev (<= 0.8.22), nodejs-legacy, npm (<= 1.2.14)
Description: stand-in for NodeSource's nodejs 20, which ships its own npm
"""


def required_commands() -> list[str]:
    """The commands in the Makefile's SYSTEM_DEPS, read from the Makefile itself."""
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    value = re.search(r"^SYSTEM_DEPS\s*:=\s*(.*)$", text, re.M).group(1)
    commands = [pair.split(":", 1)[0] for pair in value.split()]
    assert "npm" in commands and "systemd-nspawn" in commands, commands
    return commands


def nodesource_deb(folder: Path) -> Path:
    root = folder / "nodejs"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(NODESOURCE_CONTROL)
    (root / "usr" / "bin").mkdir(parents=True)
    for name, version in (("node", "v20.20.2"), ("npm", "10.8.2")):
        tool = root / "usr" / "bin" / name
        tool.write_text(f"#!/bin/sh\necho {version}\n")
        tool.chmod(0o755)
    deb = folder / "nodejs.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)], check=True, capture_output=True)
    return deb


@pytest.mark.parametrize("node", ["nodesource", "none"])
def test_system_deps_on_a_fresh_machine(node, tmp_path):
    commands = " ".join(required_commands())
    script = f"""
set -eu
export DEBIAN_FRONTEND=noninteractive
# What this machine kind has before make setup runs: make, and (first case) NodeSource's nodejs.
apt-get update -qq
apt-get install -y -qq make >/dev/null
if [ -e /stand-in/nodejs.deb ]; then dpkg -i /stand-in/nodejs.deb >/dev/null; fi
missing=""
for c in {commands}; do command -v "$c" >/dev/null || missing="$missing $c"; done
echo "missing before:$missing"
make -C /repo --no-print-directory system-deps
for c in {commands}; do command -v "$c" >/dev/null || {{ echo "still missing: $c"; exit 1; }}; done
echo "node package: $(dpkg-query -W -f '${{Version}}' nodejs 2>/dev/null || echo none)"
echo "npm package: $(dpkg-query -W -f '${{Status}}' npm 2>/dev/null || echo none)"
echo "all present"
"""
    binds = []
    if node == "nodesource":
        binds = [f"--bind-ro={nodesource_deb(tmp_path).parent}:/stand-in"]
    result = subprocess.run(
        [str(LAB), "fresh", *binds, "--", "/bin/sh", "-c", script], capture_output=True, text=True, timeout=900
    )
    print(result.stdout[-5000:], result.stderr[-5000:])
    assert result.returncode == 0, f"make system-deps failed on a fresh machine with node={node}"
    assert "all present" in result.stdout
    # Something was missing, so the install path really ran.
    assert re.search(r"^missing before: \S", result.stdout, re.M)
    if node == "nodesource":
        assert "node package: 20.20.2-1nodesource1" in result.stdout, "the machine's own Node was replaced"
        assert "npm package: none" in result.stdout or "not-installed" in result.stdout
    else:
        assert "npm package: install ok installed" in result.stdout
