"""The windows_wsl role's .wslconfig merge (a controller-side filter, so it runs here): only the keys
whisperlab owns change; everything of the user's stays, byte for byte where it can."""

from __future__ import annotations

import base64
import importlib.util
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[2] / "roles" / "windows_wsl" / "filter_plugins" / "wslconfig.py"
spec = importlib.util.spec_from_file_location("wslconfig", PLUGIN)
wslconfig = importlib.util.module_from_spec(spec)
spec.loader.exec_module(wslconfig)

OURS = {"wsl2": {"networkingMode": "mirrored", "vmIdleTimeout": -1}, "general": {"instanceIdleTimeout": -1}}

USERS = (
    "# my WSL settings\r\n"
    "[wsl2]\r\n"
    "memory=16GB\r\n"
    "networkingMode=NAT\r\n"
    "; processors are mine\r\n"
    "processors=8\r\n"
    "NetworkingMode = nat\r\n"
    "\r\n"
    "[experimental]\r\n"
    "autoMemoryReclaim=gradual\r\n"
)


def test_a_missing_file_gets_our_keys_only():
    text = wslconfig.merge("", OURS)
    assert (
        text == "[wsl2]\r\nnetworkingMode=mirrored\r\nvmIdleTimeout=-1\r\n\r\n[general]\r\ninstanceIdleTimeout=-1\r\n"
    )


def test_the_users_keys_comments_and_order_stay():
    text = wslconfig.merge(USERS, OURS)
    assert text == (
        "# my WSL settings\r\n"
        "[wsl2]\r\n"
        "memory=16GB\r\n"
        "networkingMode=mirrored\r\n"  # ours, where the user's stood
        "; processors are mine\r\n"
        "processors=8\r\n"
        "vmIdleTimeout=-1\r\n"  # the repeat of networkingMode is gone; the missing key ends the section
        "\r\n"
        "[experimental]\r\n"
        "autoMemoryReclaim=gradual\r\n"
        "\r\n"
        "[general]\r\n"
        "instanceIdleTimeout=-1\r\n"
    )


def test_a_second_merge_changes_nothing():
    once = wslconfig.merge(USERS, OURS)
    assert wslconfig.merge(once, OURS) == once
    assert wslconfig.merge(wslconfig.merge("", OURS), OURS) == wslconfig.merge("", OURS)


def test_unix_line_endings_stay_and_other_sections_are_untouched():
    text = wslconfig.merge("[wsl2]\nswap=0\n[boot]\nvmIdleTimeout=5\n", {"wsl2": {"vmIdleTimeout": -1}})
    # vmIdleTimeout under [boot] is not the [wsl2] key: it stays.
    assert text == "[wsl2]\nswap=0\nvmIdleTimeout=-1\n[boot]\nvmIdleTimeout=5\n"


def test_keys_before_any_section_and_booleans():
    text = wslconfig.merge("top=1\n[wsl2]\nfirewall=true\n", {"wsl2": {"firewall": False}})
    assert text == "top=1\n[wsl2]\nfirewall=false\n"


@pytest.mark.parametrize(
    "encoded", [USERS.encode("utf-8"), b"\xef\xbb\xbf" + USERS.encode("utf-8"), USERS.encode("utf-16")]
)
def test_notepads_encodings_are_read(encoded):
    """slurp hands the filter base64: UTF-8, UTF-8 with a BOM and UTF-16 all merge the same."""
    b64 = base64.b64encode(encoded).decode()
    assert wslconfig.windows_wsl_decode(b64) == USERS
    assert wslconfig.windows_wsl_merge(b64, OURS) == wslconfig.merge(USERS, OURS)
    assert wslconfig.windows_wsl_merge("", OURS) == wslconfig.merge("", OURS)
