"""The front page and the documents it links to: every relative link names a file that exists, and
every #anchor a heading in it (GitHub's anchor rules: lower case, punctuation dropped, spaces to -)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCUMENTS = sorted(
    [
        REPO / "README.md",
        REPO / "server" / "README.md",
        *(REPO / "docs").glob("*.md"),
        *(REPO / "roles").glob("*/README.md"),
    ]
)
LINK = re.compile(r"\]\(([^)\s]+)\)")


def anchors(path: Path) -> set[str]:
    found = set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", title).replace(" ", "-"))
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(document):
    broken = []
    for target in LINK.findall(document.read_text()):
        if re.match(r"[a-z]+:", target):
            continue
        name, _, anchor = target.partition("#")
        path = (document.parent / name).resolve() if name else document
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(target)
    assert not broken, f"{document.relative_to(REPO)}: broken links {broken}"


def test_the_front_page_is_short_and_links_every_document():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) < 150
    for doc in (REPO / "docs").glob("*.md"):
        assert f"](docs/{doc.name})" in text, f"README.md does not link docs/{doc.name}"
