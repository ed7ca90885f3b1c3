#!/usr/bin/python
"""Lab-only STAND-IN: report macOS's facts for the host it runs on (which is Debian), so that the
client roles take their Darwin branches. Used by tests/lab/test_darwin.py; never by the roles."""

from __future__ import annotations

from ansible.module_utils.basic import AnsibleModule


def main() -> None:
    module = AnsibleModule(argument_spec={}, supports_check_mode=True)
    module.exit_json(
        changed=False,
        ansible_facts={
            "os_family": "Darwin",
            "system": "Darwin",
            "distribution": "MacOSX",
            "whisperlab_darwin_standin": True,
        },
    )


if __name__ == "__main__":
    main()
