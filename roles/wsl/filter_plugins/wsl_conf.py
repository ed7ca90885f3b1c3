"""wsl_conf_value and wsl_drvfs_private: what the wsl role reads from /etc/wsl.conf and what it merges in.

WSL reads wsl.conf as a simple ini file: [section] lines, key = value lines, # comments, values optionally in
double quotes. The role changes a setting only when its meaning differs from what the role wants, so that a
value written another way (spacing, quotes, case, a mask with a leading 0) is no change and no restart.
Tested in tests/roles/test_wsl_conf.py, through the real ansible-playbook.
"""

from __future__ import annotations

# DrvFs's mask options (octal, bits taken away from every file's and folder's mode), and what the role adds
# to each: no access at all for the group and for others, so that only the mount's uid (the distribution's
# default user unless the options set uid=) and root can read, write or run anything on the Windows drives.
MASKS = ("umask", "fmask", "dmask")
PRIVATE = 0o077


def wsl_conf_value(text: str, section: str, key: str):
    """The value of `key` in `section`, without its quotes; the last one when it is there more than once;
    None when it is not there."""
    found, current = None, None
    for line in (text or "").splitlines():
        stripped = line.strip()
        if stripped.startswith("[") and stripped.endswith("]"):
            current = stripped[1:-1].strip().lower()
        elif current == section.lower() and "=" in stripped and not stripped.startswith(("#", ";")):
            name, value = stripped.split("=", 1)
            if name.strip().lower() == key.lower():
                value = value.strip()
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                found = value.strip()
    return found


def wsl_drvfs_private(options) -> str:
    """[automount] options with the Windows drives made private: every mask the user set keeps its bits and
    gains 077 (group and others), and umask=077 is added when there is no umask. Whether WSL combines umask
    with fmask and dmask or lets them replace it, no file or folder is then open to group or others. Every
    other option (metadata, uid, gid, case, ...) stays as it is, in its place."""
    parts = [part.strip() for part in str(options or "").split(",") if part.strip()]
    result, has_umask = [], False
    for part in parts:
        name, _, value = part.partition("=")
        if name.strip().lower() in MASKS:
            has_umask = has_umask or name.strip().lower() == "umask"
            try:
                mask = int(value.strip(), 8)
            except ValueError:
                mask = 0  # a mask DrvFs could not read keeps nothing private: replaced
            if mask | PRIVATE != mask or not value.strip():
                part = f"{name.strip()}={mask | PRIVATE:03o}"
        result.append(part)
    if not has_umask:
        result.append(f"umask={PRIVATE:03o}")
    return ",".join(result)


class FilterModule:
    def filters(self):
        return {"wsl_conf_value": wsl_conf_value, "wsl_drvfs_private": wsl_drvfs_private}
