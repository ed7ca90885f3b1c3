"""The testinfra checks' macOS paths (the test kit's inventory_facts), against a STAND-IN host that answers
in the format macOS's dscl and netstat print (written from that format; not captured on a Mac). No Mac
runs here: this checks the parsing, and that no Linux-only command (getent, ss, sha256sum) is reached."""

from __future__ import annotations

from types import SimpleNamespace

from whisperlab_testkit import inventory_facts

NETSTAT = """Active Internet connections (including servers)
Proto Recv-Q Send-Q  Local Address          Foreign Address        (state)
tcp4       0      0  192.168.1.20.22        192.168.1.5.53122      ESTABLISHED
tcp6       0      0  *.22                   *.*                    LISTEN
tcp4       0      0  *.22                   *.*                    LISTEN
tcp4       0      0  127.0.0.1.8021         *.*                    LISTEN
"""


class StandInMac:
    system_info = SimpleNamespace(type="darwin")

    def __init__(self, answers):
        self.answers = answers
        self.asked = []

    def check_output(self, command):
        self.asked.append(command)
        for prefix, answer in self.answers.items():
            if command.startswith(prefix):
                return answer
        raise AssertionError(f"a Mac has no answer to {command!r}")

    def user(self, name):
        raise AssertionError("testinfra's User module runs getent, which macOS lacks")

    def socket(self, spec):
        raise AssertionError("testinfra's Socket module runs ss on Darwin, which macOS lacks")


def test_home_comes_from_open_directory():
    mac = StandInMac({"dscl . -read /Users/ada NFSHomeDirectory": "NFSHomeDirectory: /Volumes/Data/ada"})
    assert inventory_facts.home_of(mac, "ada") == "/Volumes/Data/ada"


def test_listening_reads_netstat():
    mac = StandInMac({"netstat -an -p tcp": NETSTAT})
    assert inventory_facts.listening_on(mac, 22) is True
    assert inventory_facts.listening_on(mac, 8000) is False
    assert inventory_facts.listening_on(mac, 21) is False  # 8021 is not 21


def test_digest_and_resolution_go_through_python():
    mac = StandInMac({"python3 -c": "0" * 64})
    assert inventory_facts.sha256_of(mac, "/Users/ada/voice note.ogg") == "0" * 64
    assert all(command.startswith("python3 -c") for command in mac.asked)
