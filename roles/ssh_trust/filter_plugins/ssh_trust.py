"""ssh_trust's controller-side helpers, unit-tested on their own (tests/roles/test_ssh_trust_filters.py).

ssh_trust_config_block: the client's ~/.ssh/config with whisperlab's block placed before the first
  Host, Match or Include line. ssh takes the first value it obtains for each option, so a block
  appended after a `Host *` would lose every option that `Host *` also sets (User, IdentityFile, ...).
  Global options at the top stay at the top, ahead of the block, as they were.
ssh_trust_fingerprint: a public key line's SHA256 fingerprint, as `ssh-keygen -lf` prints it.
"""

from __future__ import annotations

import base64
import hashlib
import re

# ssh_config(5): keywords are case-insensitive and may be followed by spaces or "=".
_SCOPE = re.compile(r"^\s*(host|match|include)(\s|=)", re.IGNORECASE)


def config_block(existing: str, block: str | None, begin: str, end: str) -> str:
    """`existing` is the file's text ('' when there is none); returns the new text. An empty `block`
    (no servers: Ansible renders an empty template as None) leaves just the markers.

    config_block(config_block(x, b, ...), b, ...) == config_block(x, b, ...): a second run changes nothing.
    """
    lines = existing.splitlines()
    # Drop our old block, wherever it stands.
    kept: list[str] = []
    inside = False
    for line in lines:
        if line.strip() == begin:
            inside = True
            continue
        if inside:
            if line.strip() == end:
                inside = False
            continue
        kept.append(line)
    ours = [begin, *(block or "").rstrip("\n").splitlines(), end]
    at = next((i for i, line in enumerate(kept) if _SCOPE.match(line)), len(kept))
    new = kept[:at] + ours + kept[at:]
    return "\n".join(new) + "\n"


def fingerprint(public_key: str) -> str:
    """'ssh-ed25519 AAAA... comment' -> 'SHA256:...' (unpadded base64 of the key blob's SHA-256)."""
    parts = public_key.split()
    if len(parts) < 2:
        raise ValueError(f"not an OpenSSH public key line: {public_key[:40]!r}")
    digest = hashlib.sha256(base64.b64decode(parts[1])).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class FilterModule:
    def filters(self):
        return {"ssh_trust_config_block": config_block, "ssh_trust_fingerprint": fingerprint}
