"""windows_wsl_merge: the user's %UserProfile%\\.wslconfig with only the keys whisperlab owns changed.

It runs on the controller, so the merge is plain Python and is unit-tested on Linux
(tests/roles/test_wslconfig.py). Everything else in the file stays as it was: other sections and keys,
comments, blank lines, their order and the line endings. An owned key is set where it first stands in
its section (case-insensitively, as WSL reads keys); a repeat of it there is dropped, since a later
duplicate would otherwise win; a missing key goes at the end of its section, and a missing section at
the end of the file.
"""

from __future__ import annotations

import base64
import re

_SECTION = re.compile(r"^\s*\[([^\]]+)\]\s*$")
_KEY = re.compile(r"^\s*([^=#;\s][^=]*?)\s*=")


def _decode(data: bytes) -> str:
    """Notepad writes UTF-8 (with or without a BOM) or UTF-16 ("Unicode"); WSL reads all of them."""
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def merge(existing: str, settings: dict[str, dict[str, object]]) -> str:
    """`existing` is the file's text ('' when there is none); `settings` maps section -> key -> value.

    Returns the new text. merge(merge(x, s), s) == merge(x, s), so a second run changes nothing.
    """
    newline = "\r\n" if "\r\n" in existing or not existing else "\n"
    lines = existing.splitlines()
    wanted = {
        section.lower(): {key.lower(): (key, _value(value)) for key, value in keys.items()}
        for section, keys in settings.items()
    }
    names = {section.lower(): section for section in settings}
    out: list[str] = []
    seen: dict[str, set[str]] = {}
    section = None

    def close(current):
        """Append the owned keys the section did not have, before its trailing blank lines."""
        if current not in wanted:
            return
        missing = [f"{key}={value}" for low, (key, value) in wanted[current].items() if low not in seen[current]]
        if not missing:
            return
        tail = 0
        while out and not out[-1].strip():
            out.pop()
            tail += 1
        out.extend(missing)
        out.extend([""] * tail)
        seen[current].update(wanted[current])

    for line in lines:
        header = _SECTION.match(line)
        if header:
            close(section)
            section = header.group(1).strip().lower()
            seen.setdefault(section, set())
            out.append(line)
            continue
        key = _KEY.match(line)
        if section in wanted and key and key.group(1).lower() in wanted[section]:
            low = key.group(1).lower()
            if low in seen[section]:
                continue  # a repeat: dropped, or it would override ours
            seen[section].add(low)
            name, value = wanted[section][low]
            out.append(f"{name}={value}")
            continue
        out.append(line)
    close(section)
    for low, keys in wanted.items():
        if low in seen:
            continue
        if out and out[-1].strip():
            out.append("")
        out.append(f"[{names[low]}]")
        out.extend(f"{key}={value}" for key, value in keys.values())
    return newline.join(out) + newline


def _value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def windows_wsl_merge(content_b64: str, settings: dict[str, dict[str, object]]) -> str:
    """The filter: slurp's base64 content ('' for no file) in, the merged text out."""
    existing = _decode(base64.b64decode(content_b64)) if content_b64 else ""
    return merge(existing, settings)


def windows_wsl_decode(content_b64: str) -> str:
    """The file's text as it is now, decoded the same way ('' for no file): compared with the merge."""
    return _decode(base64.b64decode(content_b64)) if content_b64 else ""


class FilterModule:
    def filters(self):
        return {"windows_wsl_merge": windows_wsl_merge, "windows_wsl_decode": windows_wsl_decode}
