"""Builds the server's wheel, named for its source: whisper_server-<version>+src.<digest>-py3-none-any.whl.
With --project whisperlab, the whisperlab command's (server/whisperlab) the same way, for the clients.

The digest covers what goes into the wheel (pyproject.toml and every file under src/), so a wheel that
exists is current, and a box can tell from pip alone whether it runs this source. A wheel
already built for this source is not built again. Prints one JSON object: the wheel's path, its version,
whether it was built now, and the pinned requirements (requirements.lock) that go with it.

    python server/tools/dist.py [--out DIR]        (make dist; playbooks/whisper_server.yml runs it)
    python server/tools/dist.py --version          (the version this source builds; builds nothing)
    python server/tools/dist.py --project whisperlab --out DIR   (playbooks/client.yml, when shadowing)

Needs only pip on the controller (it fetches setuptools into an isolated build, once).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SERVER = Path(__file__).resolve().parents[1]
# What each project is: its folder, its wheel's name, and the one line its wheel says of itself.
PROJECTS = {
    "server": (
        SERVER,
        "whisper_server",
        "whisperlab's OpenAI-compatible speech-to-text server; its documentation is server/README.md in whisperlab.",
    ),
    "whisperlab": (
        SERVER / "whisperlab",
        "whisperlab",
        "The whisperlab command (compare, shadow, batch); its documentation is docs/whisperlab.md in whisperlab.",
    ),
}
IGNORED = re.compile(r"(^|/)(__pycache__|[^/]*\.egg-info|build)(/|$)|\.py[co]$")
# A fixed time for the files inside the wheel: the same source gives the same bytes.
EPOCH = "1704067200"


def sources(root: Path = SERVER) -> list[Path]:
    tree = [p for p in sorted((root / "src").rglob("*")) if p.is_file() and not IGNORED.search(p.as_posix())]
    return [root / "pyproject.toml", *tree]


def digest(files: list[Path], root: Path = SERVER) -> str:
    h = hashlib.sha256()
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:12]


def base_version(root: Path = SERVER) -> str:
    match = re.search(r'^version = "([^"+]+)"', (root / "pyproject.toml").read_text(), re.M)
    if not match:
        raise SystemExit(f"{root / 'pyproject.toml'} has no static version")
    return match.group(1)


def build(version: str, files: list[Path], out: Path, project: str = "server") -> Path:
    root, name, summary = PROJECTS[project]
    with tempfile.TemporaryDirectory(prefix=f"{name}-dist-") as tmp:
        tree = Path(tmp) / "project"
        for path in files:
            target = tree / path.relative_to(root)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
        # The package's long description: a pointer, so that editing the documentation changes no wheel
        # and restarts no server.
        (tree / "README.md").write_text(f"# {name} {version}\n\n{summary}\n")
        pyproject = tree / "pyproject.toml"
        text = re.sub(r'^version = "[^"]*"', f'version = "{version}"', pyproject.read_text(), count=1, flags=re.M)
        pyproject.write_text(text)
        wheels = Path(tmp) / "wheels"
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(tree)],
            check=True,
            env={**os.environ, "SOURCE_DATE_EPOCH": EPOCH, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
            stdout=sys.stderr,
        )
        (built,) = wheels.glob("*.whl")
        out.mkdir(parents=True, exist_ok=True)
        final = out / built.name
        shutil.move(str(built), final)
    return final


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=SERVER.parent / "dist", help="where the wheel goes (default: dist/)"
    )
    parser.add_argument("--version", action="store_true", help="print the version this source builds; build nothing")
    parser.add_argument("--project", choices=sorted(PROJECTS), default="server", help="which wheel (default: server)")
    args = parser.parse_args()
    root, name, _summary = PROJECTS[args.project]
    files = sources(root)
    version = f"{base_version(root)}+src.{digest(files, root)}"
    if args.version:
        print(version)
        return 0
    out = args.out.resolve()
    wheel = out / f"{name}-{version}-py3-none-any.whl"
    built = not wheel.exists()
    if built:
        made = build(version, files, out, args.project)
        if made != wheel:
            raise SystemExit(f"pip built {made.name}, not {wheel.name}")
        for old in out.glob(f"{name}-*.whl"):  # older builds of this source tree
            if old != wheel:
                old.unlink()
    print(
        json.dumps(
            {
                "wheel": str(wheel),
                "version": version,
                "built": built,
                # The server's pins go with it; the command takes its dependencies' ranges from PyPI.
                "requirements": str(SERVER / "requirements.lock") if args.project == "server" else None,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
