"""The openclaw role's plan: what OpenClaw's config must gain and lose, worked out on the controller from
what `openclaw config get` read, and unit-tested on its own (tests/roles/test_openclaw_plan.py).

Why this shape. A credential stored for OpenClaw's `openai` provider is that provider's, not one use's:
on a 429 OpenClaw retries with every key it knows for the provider (profiles, OPENAI_API_KEY,
OPENAI_API_KEYS, OPENAI_API_KEY_*), so a LAN server that answers 429 would receive the user's own
OpenAI key, and a profile of ours would also sign the user's chat. So whisperlab's entries use the bundled
`senseaudio` media provider instead: it posts the same OpenAI-shaped multipart request to
`<baseUrl>/audio/transcriptions`, and has its own `models.providers.senseaudio` block, whose `apiKey` is
a file SecretRef to a 0600 file and whose `request.allowPrivateNetwork` opens private addresses for that
provider only. The user's `openai` provider is not touched.

Older whisperlab installs (an `openai:whisperlab` auth profile, entries naming it, an `auth.order.openai`
pin and `models.providers.openai.request.allowPrivateNetwork`) are migrated: the plan says what to
remove, and only what that install wrote.
"""

from __future__ import annotations

import json
from typing import Any

LEGACY_PROFILE = "openai:whisperlab"
# What `openclaw config get` shows in place of a secret's location (a SecretRef's id, a secrets provider's
# fields): it matches any value, so a comparison never calls such a field changed, and the batch below
# is sent anyway, for OpenClaw itself to tell ("No change").
REDACTED = "__OPENCLAW_REDACTED__"


def _same(now: Any, wanted: Any) -> bool:
    """now == wanted, where a redacted value in now matches anything."""
    if now == REDACTED:
        return True
    if isinstance(now, dict) and isinstance(wanted, dict):
        return now.keys() == wanted.keys() and all(_same(now[k], wanted[k]) for k in now)
    if isinstance(now, list) and isinstance(wanted, list):
        return len(now) == len(wanted) and all(_same(a, b) for a, b in zip(now, wanted))
    return now == wanted


def _meaningful(block: dict[str, Any]) -> set[str]:
    """The keys of a provider block that hold something: `config get` fills in baseUrl "" and models []."""
    return {key for key, value in block.items() if value not in ("", [], {}, None)}


def secret_ref(secret_provider: str) -> dict[str, str]:
    """The SecretRef our provider block holds: the whole file, read at use (singleValue wants id "value")."""
    return {"source": "file", "provider": secret_provider, "id": "value"}


def _ours(entry: dict[str, Any], provider: str) -> bool:
    return entry.get("provider") == provider or entry.get("profile") == LEGACY_PROFILE


def _merge_entries(
    current: list[dict[str, Any]], wanted: list[dict[str, Any]], provider: str, place: str = "keep"
) -> list:
    """Ours are replaced, as one run in server order, where the first of them stands; the user's entries
    stay as they are, in their order. A first run puts ours first, so audio tries the LAN servers first.
    place (whisperlab_client_order, which `whisperlab canary --apply` sets): keep, as described; first,
    ours before every entry of the user's; last, after them (OpenClaw tries entries in order)."""
    if place not in ("keep", "first", "last"):
        raise ValueError(f"place must be keep, first or last, not {place!r}")
    if place in ("first", "last"):
        others = [entry for entry in current if not _ours(entry, provider)]
        return wanted + others if place == "first" else others + wanted
    out: list[dict[str, Any]] = []
    found = False
    for entry in current:
        if _ours(entry, provider):
            if not found:
                out.extend(wanted)
            found = True
        else:
            out.append(entry)
    return out if found else wanted + out


def _own_order(profiles: list[dict[str, Any]]) -> list[str]:
    """The auth.order.openai an older whisperlab pinned: the user's profiles, OAuth, then tokens, then keys."""
    mine = [p for p in profiles if p.get("id") != LEGACY_PROFILE]
    ranked = (
        [p for p in mine if p.get("type") == "oauth"]
        + [p for p in mine if p.get("type") == "token"]
        + [p for p in mine if p.get("type") not in ("oauth", "token")]
    )
    return [p["id"] for p in ranked]


def _stop(reason: str) -> dict[str, Any]:
    """A plan that changes nothing and says why."""
    return {"batch": [], "sets": [], "unsets": [], "logout": "", "conflict": reason}


def openclaw_plan(
    current: dict[str, Any],
    urls: list[str],
    model: str,
    timeout_seconds: int,
    key_path: str,
    provider: str = "senseaudio",
    secret_provider: str = "whisperlab",  # noqa: S107 (a name, not a secret)
    allow_private_network: bool = True,
    ca_path: str = "",
    ca_secret_provider: str = "whisperlab-ca",  # noqa: S107 (a name, not a secret)
    place: str = "keep",
) -> dict[str, Any]:
    """`current` holds what was read: media (tools.media), providers (models.providers), secrets
    (secrets.providers), plugins, order (auth.order) and profiles (the openai auth profiles' list).

    Returns batch (every setting whisperlab owns, for one `config set --batch-json`: OpenClaw answers
    "No change" when all are as wanted), sets (those that differ from what was read, for --check and
    the display), unsets (paths, for `config unset`, in order), logout
    (the legacy profile to remove, or ''), and conflict (a reason to stop before any change, or '').

    ca_path: the whisperlab CA's certificate on the client (a 0600 file: OpenClaw's file secrets must be
    private). Our provider block then trusts it, and only it, for our servers: `request.tls.ca` is a
    SecretInput, so it holds a file reference (`secrets.providers.<ca_secret_provider>`), not the PEM,
    which would double the config's size and make OpenClaw refuse the write that later removes it (it
    refuses any write that halves the file). OpenClaw's other requests keep the system's trust store.
    Without ca_path (plain HTTP) both go again.

    place: where our entries go among the user's (keep, first, last; see _merge_entries)."""
    media = current.get("media") or {}
    providers = current.get("providers") or {}
    secrets = current.get("secrets") or {}
    plugins = current.get("plugins") or {}
    order = current.get("order") or {}
    profiles = current.get("profiles") or []
    ref = secret_ref(secret_provider)

    block_now = providers.get(provider)
    if block_now is not None and not _same(block_now.get("apiKey"), ref):
        return _stop(
            f"models.providers.{provider} is already configured, and not by whisperlab (its apiKey is not "
            f"the whisperlab file reference). whisperlab sends voice notes through OpenClaw's bundled "
            f"{provider} provider, pointed at your LAN servers, so it would take that provider over. "
            f"Nothing was changed."
        )
    secret_now = secrets.get(secret_provider)
    secret_wanted = {"source": "file", "path": key_path, "mode": "singleValue"}
    if secret_now is not None and not _same(secret_now.get("source"), "file"):
        return _stop(
            f"secrets.providers.{secret_provider} exists and is not whisperlab's key file. Nothing was changed."
        )
    deny = plugins.get("deny") or []
    entry = (plugins.get("entries") or {}).get(provider) or {}
    if provider in deny or entry.get("enabled") is False or plugins.get("enabled") is False:
        return _stop(
            f"OpenClaw's bundled {provider} plugin is turned off in your config (plugins.deny, "
            f"plugins.entries.{provider}.enabled or plugins.enabled), and whisperlab's voice-note entries "
            f"go through it. Allow it and re-run. Nothing was changed."
        )

    wanted_entries = [
        {
            "provider": provider,
            "model": model,
            "baseUrl": url.strip(),
            "capabilities": ["audio"],
            "timeoutSeconds": int(timeout_seconds),
        }
        for url in urls
    ]
    block_wanted: dict[str, Any] = {"baseUrl": urls[0].strip(), "models": [], "apiKey": ref}
    if allow_private_network:
        block_wanted["request"] = {"allowPrivateNetwork": True}
    ca_now = secrets.get(ca_secret_provider)
    if ca_now is not None and not _same(ca_now.get("source"), "file"):
        return _stop(
            f"secrets.providers.{ca_secret_provider} exists and is not whisperlab's CA file. Nothing was changed."
        )
    if ca_path:
        tls = {"ca": {"source": "file", "provider": ca_secret_provider, "id": "value"}}
        block_wanted["request"] = {**block_wanted.get("request", {}), "tls": tls}

    models_now = media.get("models") or []
    owned = [
        (secret_now, {"path": f"secrets.providers.{secret_provider}", "value": secret_wanted}),
        *(
            [(ca_now, {"path": f"secrets.providers.{ca_secret_provider}", "value": dict(secret_wanted, path=ca_path)})]
            if ca_path
            else []
        ),
        (block_now, {"path": f"models.providers.{provider}", "value": block_wanted}),
        (
            models_now,
            {"path": "tools.media.models", "value": _merge_entries(models_now, wanted_entries, provider, place)},
        ),
        ((media.get("audio") or {}).get("enabled"), {"path": "tools.media.audio.enabled", "value": True}),
    ]
    allow = plugins.get("allow")
    if allow:
        owned.append((allow, {"path": "plugins.allow", "value": allow if provider in allow else [*allow, provider]}))
    batch = [setting for _, setting in owned]
    sets = [setting for now, setting in owned if not _same(now, setting["value"])]

    unsets: list[str] = []
    # Plain HTTP again: the CA's reference goes, after the provider block that names it is rewritten.
    if not ca_path and ca_now is not None:
        unsets.append(f"secrets.providers.{ca_secret_provider}")
    # The older install: only what it wrote goes, and only where its profile proves it was there.
    legacy = any(p.get("id") == LEGACY_PROFILE for p in profiles)
    if legacy:
        openai = providers.get("openai") or {}
        request = openai.get("request") or {}
        if request.get("allowPrivateNetwork") is True:
            if set(request) != {"allowPrivateNetwork"}:
                unsets.append("models.providers.openai.request.allowPrivateNetwork")
            elif _meaningful(openai) != {"request"}:
                unsets.append("models.providers.openai.request")
            else:
                unsets.append("models.providers.openai")
        pinned = order.get("openai")
        if pinned is not None:
            rest = [p for p in pinned if p != LEGACY_PROFILE]
            if rest == _own_order(profiles) or not rest:
                unsets.append("auth.order" if set(order) == {"openai"} else "auth.order.openai")
            elif rest != pinned:
                batch.append({"path": "auth.order.openai", "value": rest})
                sets.append({"path": "auth.order.openai", "value": rest})
    return {"batch": batch, "sets": sets, "unsets": unsets, "logout": LEGACY_PROFILE if legacy else "", "conflict": ""}


def openclaw_json(text: str) -> Any:
    """The first JSON value in a command's output. OpenClaw prints notes around its JSON at times (a
    banner before, a Gateway warning after); {} when there is none."""
    decoder = json.JSONDecoder()
    for at, char in enumerate(text):
        if char in "{[":
            try:
                return decoder.raw_decode(text, at)[0]
            except ValueError:
                continue
    return {}


def openclaw_json_or_empty(result: dict[str, Any]) -> Any:
    """A `config get --json` result: its value, or {} for a path that is valid but unset."""
    return openclaw_json(result.get("stdout", "")) if result.get("rc") == 0 else {}


def openclaw_names_legacy_profile(value: Any) -> bool:
    """Whether a setting (tools.media, auth.order) names an older whisperlab's auth profile anywhere in it."""
    if isinstance(value, dict):
        return any(openclaw_names_legacy_profile(item) for item in value.values())
    if isinstance(value, list):
        return any(openclaw_names_legacy_profile(item) for item in value)
    return value == LEGACY_PROFILE


class FilterModule:
    def filters(self):
        return {
            "openclaw_plan": openclaw_plan,
            "openclaw_json": openclaw_json,
            "openclaw_json_or_empty": openclaw_json_or_empty,
            "openclaw_names_legacy_profile": openclaw_names_legacy_profile,
        }
