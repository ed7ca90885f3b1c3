"""The openclaw role's plan (roles/openclaw/filter_plugins/openclaw_plan.py): whisperlab's voice-note
entries go through the bundled senseaudio provider with a file SecretRef, the user's openai provider
is never touched, and an older install (an openai:whisperlab profile) is taken apart. The lab proves the
same against the real OpenClaw (tests/lab/test_openclaw_e2e.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PLUGIN = Path(__file__).resolve().parents[2] / "roles" / "openclaw" / "filter_plugins" / "openclaw_plan.py"
spec = importlib.util.spec_from_file_location("openclaw_plan", PLUGIN)
plugin = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plugin)

URLS = ["http://wsl.home:8000/v1", "http://wsl2.home:8000/v1"]
KEY = "/home/u/.config/whisperlab/openclaw-key"
REF = {"source": "file", "provider": "whisperlab", "id": "value"}
IMAGE = {"provider": "ollama", "model": "gemma4:26b", "capabilities": ["image"]}
PERSONAL = {"id": "openai:personal", "provider": "openai", "type": "api_key"}
LEGACY = {"id": "openai:whisperlab", "provider": "openai", "type": "api_key"}


def plan(current: dict, **kwargs) -> dict:
    return plugin.openclaw_plan(current, URLS, "whisper-1", 120, KEY, **kwargs)


def paths(settings: list[dict]) -> dict:
    return {s["path"]: s["value"] for s in settings}


def applied(current: dict, result: dict) -> dict:
    """What `config get` would show after the plan ran (secrets redacted, as OpenClaw shows them)."""
    after = {k: (dict(v) if isinstance(v, dict) else v) for k, v in current.items()}
    after["profiles"] = [p for p in current.get("profiles", []) if p["id"] != result["logout"]]
    for path, value in paths(result["batch"]).items():
        if path.startswith("secrets.providers."):
            after.setdefault("secrets", {})[path.rsplit(".", 1)[1]] = dict.fromkeys(value, plugin.REDACTED)
        elif path.startswith("models.providers."):
            block = dict(value, apiKey=dict(value["apiKey"], id=plugin.REDACTED))
            after.setdefault("providers", {})[path.rsplit(".", 1)[1]] = block
        elif path == "tools.media.models":
            after["media"] = dict(after.get("media") or {}, models=value)
        elif path == "tools.media.audio.enabled":
            after["media"] = dict(after.get("media") or {}, audio={"enabled": value})
        elif path == "plugins.allow":
            after["plugins"] = dict(after.get("plugins") or {}, allow=value)
    for path in result["unsets"]:
        if path == "auth.order":
            after["order"] = {}
        elif path == "auth.order.openai":
            after["order"] = {k: v for k, v in after["order"].items() if k != "openai"}
        elif path.startswith("models.providers.openai"):
            after["providers"] = {k: v for k, v in after["providers"].items() if k != "openai"}
    return after


def test_a_first_run_puts_our_entries_first_on_the_senseaudio_provider_with_a_file_ref():
    result = plan({"media": {"models": [IMAGE]}, "profiles": [PERSONAL]})
    settings = paths(result["sets"])
    assert settings["secrets.providers.whisperlab"] == {"source": "file", "path": KEY, "mode": "singleValue"}
    block = settings["models.providers.senseaudio"]
    assert block["apiKey"] == REF and block["request"] == {"allowPrivateNetwork": True}
    assert block["baseUrl"] == URLS[0]
    models = settings["tools.media.models"]
    assert [m.get("baseUrl") for m in models] == [*URLS, None]
    assert all(m["provider"] == "senseaudio" and "profile" not in m for m in models[:2])
    assert models[2] == IMAGE
    assert settings["tools.media.audio.enabled"] is True
    assert result["unsets"] == [] and result["logout"] == "" and result["conflict"] == ""


def test_nothing_of_the_openai_provider_is_set():
    for current in ({}, {"profiles": [PERSONAL]}, {"order": {"openai": ["openai:personal"]}, "profiles": [PERSONAL]}):
        result = plan(current)
        assert not [s for s in result["batch"] if "openai" in s["path"] or s["path"].startswith("auth.")]


def test_a_second_run_wants_nothing_even_with_secrets_redacted():
    current = {"media": {"models": [IMAGE]}, "profiles": [PERSONAL]}
    after = applied(current, plan(current))
    again = plan(after)
    assert again["sets"] == [] and again["unsets"] == [] and again["logout"] == ""
    # The batch is still sent: only OpenClaw can tell whether the hidden reference is current.
    assert "secrets.providers.whisperlab" in paths(again["batch"])


def test_our_entries_are_replaced_where_they_stand_and_the_users_keep_their_order():
    mine = {"provider": "openai", "model": "gpt-4o-transcribe", "capabilities": ["audio"]}
    stale = {"provider": "senseaudio", "model": "whisper-1", "baseUrl": "http://old:8000/v1", "capabilities": ["audio"]}
    result = plan({"media": {"models": [IMAGE, stale, mine]}})
    models = paths(result["sets"])["tools.media.models"]
    assert models[0] == IMAGE and models[-1] == mine
    assert [m["baseUrl"] for m in models[1:3]] == URLS


def test_the_canary_puts_our_entries_first_or_last_and_keep_keeps_where_they_stand():
    mine = {"provider": "openai", "model": "gpt-4o-transcribe", "capabilities": ["audio"]}
    stale = {"provider": "senseaudio", "model": "whisper-1", "baseUrl": "http://old:8000/v1", "capabilities": ["audio"]}
    current = {"media": {"models": [IMAGE, stale, mine]}}
    last = paths(plan(current, place="last")["batch"])["tools.media.models"]
    assert last[:2] == [IMAGE, mine] and [m["baseUrl"] for m in last[2:]] == URLS
    first = paths(plan(current, place="first")["batch"])["tools.media.models"]
    assert [m["baseUrl"] for m in first[:2]] == URLS and first[2:] == [IMAGE, mine]
    # Put last once, a later run that keeps leaves them last, and wants nothing more.
    after = applied(current, plan(current, place="last"))
    assert paths(plan(after)["batch"])["tools.media.models"] == last
    assert "tools.media.models" not in paths(plan(after)["sets"])


def test_an_older_install_is_migrated_and_only_what_it_wrote_goes():
    old_entry = {
        "provider": "openai",
        "model": "whisper-1",
        "capabilities": ["audio"],
        "baseUrl": URLS[0],
        "profile": "openai:whisperlab",
        "timeoutSeconds": 120,
    }
    current = {
        "media": {"models": [old_entry, dict(old_entry, baseUrl=URLS[1]), IMAGE], "audio": {"enabled": True}},
        "providers": {"openai": {"baseUrl": "", "models": [], "request": {"allowPrivateNetwork": True}}},
        "order": {"openai": ["openai:personal"]},
        "profiles": [PERSONAL, LEGACY],
    }
    result = plan(current)
    assert result["logout"] == "openai:whisperlab"
    assert result["unsets"] == ["models.providers.openai", "auth.order"]
    models = paths(result["sets"])["tools.media.models"]
    assert [m["provider"] for m in models] == ["senseaudio", "senseaudio", "ollama"]
    assert not any("profile" in m for m in models)
    after = applied(current, result)
    again = plan(after)
    assert again["sets"] == [] and again["unsets"] == [] and again["logout"] == ""


def test_the_users_own_openai_settings_survive_the_migration():
    current = {
        "providers": {"openai": {"baseUrl": "https://proxy.example/v1", "request": {"allowPrivateNetwork": True}}},
        "order": {"openai": ["openai:personal", "openai:work"], "anthropic": ["anthropic:me"]},
        "profiles": [PERSONAL, {"id": "openai:work", "type": "oauth"}, LEGACY],
    }
    result = plan(current)
    # Their baseUrl stays, so only our switch goes; an order they chose themselves (not the one an older
    # whisperlab pinned: OAuth first) stays too.
    assert result["unsets"] == ["models.providers.openai.request"]
    assert "auth.order.openai" not in paths(result["batch"])
    pinned = dict(current, order={"openai": ["openai:work", "openai:personal"], "anthropic": ["anthropic:me"]})
    assert "auth.order.openai" in plan(pinned)["unsets"]


def test_without_the_legacy_profile_nothing_of_the_users_is_removed():
    current = {
        "providers": {"openai": {"request": {"allowPrivateNetwork": True}}},
        "order": {"openai": ["openai:personal"]},
        "profiles": [PERSONAL],
    }
    result = plan(current)
    assert result["unsets"] == [] and result["logout"] == ""


def test_a_senseaudio_block_of_the_users_own_stops_the_role():
    theirs = {"providers": {"senseaudio": {"baseUrl": "https://api.senseaudio.cn/v1", "apiKey": "sa-123"}}}
    result = plan(theirs)
    assert "not by whisperlab" in result["conflict"] and result["batch"] == []


def test_a_plugin_allow_list_gains_senseaudio_and_a_deny_stops():
    result = plan({"plugins": {"allow": ["telegram"]}})
    assert paths(result["sets"])["plugins.allow"] == ["telegram", "senseaudio"]
    assert "turned off" in plan({"plugins": {"deny": ["senseaudio"]}})["conflict"]
    assert "turned off" in plan({"plugins": {"entries": {"senseaudio": {"enabled": False}}}})["conflict"]


def test_the_private_network_switch_can_be_left_off():
    block = paths(plan({}, allow_private_network=False)["sets"])["models.providers.senseaudio"]
    assert "request" not in block


def test_json_is_found_between_openclaws_notes():
    text = 'OpenClaw 2026.9.6\n{"a": [1, {"b": 2}]}\nInstalled Gateway service state could not be verified.'
    assert plugin.openclaw_json(text) == {"a": [1, {"b": 2}]}
    assert plugin.openclaw_json("no json here") == {}
    assert plugin.openclaw_json_or_empty({"rc": 1, "stdout": "Config path not found"}) == {}


CA_PATH = "/home/u/.config/whisperlab/openclaw-ca.pem"
CA_REF = {"source": "file", "provider": "whisperlab-ca", "id": "value"}


def test_with_a_ca_our_provider_trusts_it_by_a_file_reference_and_nothing_else_does():
    """The CA goes in once, as a reference: a PEM in the config would make OpenClaw refuse the write that
    removes it later (it refuses a write that halves the file)."""
    users_audio = {"provider": "openai", "model": "gpt-4o-transcribe", "capabilities": ["audio"]}
    result = plan({"media": {"models": [IMAGE, users_audio]}}, ca_path=CA_PATH)
    batch = paths(result["batch"])
    assert batch["models.providers.senseaudio"]["request"] == {"allowPrivateNetwork": True, "tls": {"ca": CA_REF}}
    assert batch["secrets.providers.whisperlab-ca"] == {"source": "file", "path": CA_PATH, "mode": "singleValue"}
    assert all("request" not in m for m in batch["tools.media.models"])
    assert IMAGE in batch["tools.media.models"] and users_audio in batch["tools.media.models"]
    # Applied, the same plan changes nothing.
    after = applied({"media": {"models": [IMAGE, users_audio]}}, result)
    assert after["secrets"]["whisperlab-ca"]
    assert plan(after, ca_path=CA_PATH)["sets"] == []
    # Plain HTTP again: the provider block loses its tls, and the reference goes after it.
    plain = plan(after)
    assert paths(plain["sets"])["models.providers.senseaudio"]["request"] == {"allowPrivateNetwork": True}
    assert plain["unsets"] == ["secrets.providers.whisperlab-ca"]


def test_a_ca_secrets_provider_of_the_users_stops_the_role():
    result = plan({"secrets": {"whisperlab-ca": {"source": "exec", "command": "x"}}}, ca_path=CA_PATH)
    assert result["conflict"] and result["batch"] == []
