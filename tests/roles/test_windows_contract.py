"""The windows_wsl role against the contracts it cannot be run against here (there is no Windows machine):

- every task's module arguments against `ansible-doc -j` of the collections pinned by the installed ansible
  package (ansible.windows, community.windows, ansible.builtin): names, aliases, required options,
  suboptions, types (Ansible's own converters) and choices, where the value is a literal or a template that
  can only give literals ('a' if x else 'b');
- every PowerShell script (the keep-alive template rendered for each mode, and each inline win_powershell
  or win_shell script) through a real PowerShell grammar (tree-sitter-powershell), plus the one PowerShell
  parse error that grammar accepts ("$name:" in a double-quoted string);
- each win_powershell task's parameters against its script's param() block, and $Ansible.Changed set by
  each script in tasks/ (win_powershell reports a change on every run otherwise).

The checkers are tested against made-up arguments and broken scripts, so that a pass means something.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jinja2
import jinja2.nodes
import pytest
import tree_sitter
import tree_sitter_powershell
import yaml
from ansible.module_utils.common.parameters import DEFAULT_TYPE_VALIDATORS
from ansible.parsing.mod_args import ModuleArgsParser
from ansible.plugins.loader import init_plugin_loader

REPO = Path(__file__).resolve().parents[2]
ROLE = REPO / "roles" / "windows_wsl"
init_plugin_loader()

# --- the role's tasks -------------------------------------------------------------------------------


def _walk(tasks: list, where: str):
    for task in tasks or []:
        if "block" in task:
            for part in ("block", "rescue", "always"):
                yield from _walk(task.get(part), where)
        else:
            yield where, task


# The wsl role restarts WSL through the PC when wsl.conf changes: its Windows tasks (only those) are held
# to the same contract (its file names carry the role's name; windows_wsl's do not).
OTHER_ROLES = [REPO / "roles" / "wsl"]


def role_tasks() -> list[tuple[str, dict]]:
    """(file: task name, task) for every task in the role's tasks/ and handlers/, blocks flattened."""
    found = []
    paths = [*ROLE.glob("tasks/*.yml"), *ROLE.glob("handlers/*.yml")]
    paths += [path for role in OTHER_ROLES for path in role.glob("tasks/*.yml")]
    for path in sorted(paths):
        relative = path.relative_to(ROLE if path.is_relative_to(ROLE) else REPO / "roles").as_posix()
        for where, task in _walk(yaml.safe_load(path.read_text()), relative):
            if path.is_relative_to(ROLE) or _windows_module(task):
                found.append((f"{where}: {task.get('name', '?')}", task))
    return found


def _windows_module(task: dict) -> bool:
    return any(str(key).startswith(("ansible.windows.", "community.windows.")) for key in task)


def module_call(task: dict) -> tuple[str, dict]:
    """The module and its arguments, as ansible-core itself reads them from the task."""
    action, args, _ = ModuleArgsParser(copy.deepcopy(task)).parse()
    return action, args


TASKS = role_tasks()
MODULES = sorted({module_call(task)[0] for _, task in TASKS})


@functools.cache
def docs() -> dict:
    """`ansible-doc -j` for every module the role uses, from this venv's ansible."""
    result = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-doc")), "-j", *MODULES],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg")},
    )
    assert result.returncode == 0, result.stderr
    return {name: entry["doc"] for name, entry in json.loads(result.stdout).items()}


# --- the argument checker ---------------------------------------------------------------------------

# Task arguments and PowerShell, not HTML: nothing to escape.
_JINJA = jinja2.Environment()  # noqa: S701
_FREE_FORM = ("_raw_params", "free_form", "free-form")


def _templated(value) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _constants(node):
    """The values an expression can only ever be, or None when it depends on a variable."""
    if isinstance(node, jinja2.nodes.Const):
        return [node.value]
    if isinstance(node, jinja2.nodes.CondExpr) and node.expr2 is not None:
        first, second = _constants(node.expr1), _constants(node.expr2)
        return None if first is None or second is None else first + second
    return None


def possible_values(value):
    """[value] for a literal; every literal a template can give ('a' if x else 'b'); None otherwise."""
    if not _templated(value):
        return [value]
    body = _JINJA.parse(value).body
    if len(body) == 1 and isinstance(body[0], jinja2.nodes.Output) and len(body[0].nodes) == 1:
        return _constants(body[0].nodes[0])
    return None


def _options(spec: dict) -> dict[str, dict]:
    """Every name an option answers to (aliases too) -> its spec."""
    names = {}
    for name, option in (spec or {}).items():
        names[name] = option
        for alias in option.get("aliases") or []:
            names[alias] = option
    return names


def _check_value(path: str, value, option: dict) -> list[str]:
    problems = []
    if _templated(value):
        try:
            _JINJA.parse(value)
        except jinja2.TemplateSyntaxError as error:
            return [f"{path}: the template does not parse: {error}"]
    kind = option.get("type")
    if option.get("suboptions") and kind in (None, "dict") and isinstance(value, dict):
        return check_arguments(path, value, option["suboptions"])
    if option.get("suboptions") and kind == "list" and isinstance(value, list):
        for index, element in enumerate(value):
            if isinstance(element, dict):
                problems += check_arguments(f"{path}[{index}]", element, option["suboptions"])
            elif not _templated(element):
                problems.append(f"{path}[{index}]: {element!r} is not a dict of suboptions")
        return problems
    if not _templated(value) and kind in DEFAULT_TYPE_VALIDATORS and kind != "raw":
        if kind == "str" and isinstance(value, (dict, list)):
            problems.append(f"{path}: {value!r} is not a {kind}")
        else:
            try:
                DEFAULT_TYPE_VALIDATORS[kind](value)
            except (TypeError, ValueError) as error:
                problems.append(f"{path}: {value!r} is not a {kind} ({error})")
    elements = option.get("elements")
    if kind == "list" and isinstance(value, list) and elements in DEFAULT_TYPE_VALIDATORS:
        for index, element in enumerate(value):
            if not _templated(element):
                try:
                    DEFAULT_TYPE_VALIDATORS[elements](element)
                except (TypeError, ValueError):
                    problems.append(f"{path}[{index}]: {element!r} is not a {elements}")
    choices = option.get("choices")
    if choices:
        candidates = value if kind == "list" and isinstance(value, list) else [value]
        for candidate in candidates:
            for possible in possible_values(candidate) or []:
                if possible not in choices and str(possible) not in [str(choice) for choice in choices]:
                    problems.append(f"{path}: {possible!r} is not one of {choices}")
    return problems


def check_arguments(where: str, args: dict, spec: dict) -> list[str]:
    """Every way `args` breaks the documented `spec` (an options or suboptions dict), as messages."""
    problems = []
    names = _options(spec)
    free_form = next((name for name in _FREE_FORM if name in spec), None)
    for name, value in args.items():
        if name == "_raw_params" and free_form:
            problems += _check_value(f"{where}: {free_form}", value, spec[free_form])
        elif name not in names:
            problems.append(f"{where}: unknown argument {name!r} (documented: {', '.join(sorted(spec))})")
        else:
            problems += _check_value(f"{where}: {name}", value, names[name])
    for name, option in (spec or {}).items():
        given = {name, *(option.get("aliases") or [])} & set(args)
        if name in _FREE_FORM and "_raw_params" in args:
            given.add(name)
        if option.get("required") and not given:
            problems.append(f"{where}: the required argument {name!r} is missing")
    return problems


def check_task(where: str, task: dict) -> list[str]:
    try:
        module, args = module_call(task)
    except Exception as error:  # ansible-core's own parser refuses the task: that is the finding
        return [f"{where}: {error}"]
    if module not in docs():
        return [f"{where}: no documentation for {module}"]
    return check_arguments(f"{where} ({module})", args, docs()[module].get("options") or {})


# --- PowerShell ---------------------------------------------------------------------------------------

POWERSHELL = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))


def powershell_errors(script: str) -> list[str]:
    """Parse errors, as 'line:column: what'; [] for a script that parses."""
    source = script.encode()
    tree = POWERSHELL.parse(source)
    errors = []

    def visit(node):
        where = f"{node.start_point[0] + 1}:{node.start_point[1] + 1}"
        if node.is_missing:
            errors.append(f"{where}: missing {node.type!r}")
        elif node.type == "ERROR":
            errors.append(f"{where}: cannot parse {node.text.decode(errors='replace')[:60]!r}")
            return
        # PowerShell reads "$name:" in a double-quoted string as a scope or drive ($env:X) and refuses it
        # when no name follows; the grammar accepts it. "${name}:" is how to write it.
        if node.type == "variable" and node.parent is not None and node.parent.type == "expandable_string_literal":
            text = node.text.decode()
            if not text.startswith("${") and ":" not in text and source[node.end_byte : node.end_byte + 1] == b":":
                errors.append(f"{where}: {text}: in a string is not a valid variable reference; write ${{{text[1:]}}}:")
        for child in node.children:
            visit(child)

    visit(tree.root_node)
    if tree.root_node.has_error and not errors:
        errors.append("the parse tree has an error")
    return errors


def script_parameters(script: str) -> list[str]:
    """The names in the script's param() block."""
    tree = POWERSHELL.parse(script.encode())
    names = []
    for block in (child for child in tree.root_node.children if child.type == "param_block"):
        for parameter_list in (child for child in block.children if child.type == "parameter_list"):
            for parameter in (child for child in parameter_list.children if child.type == "script_parameter"):
                variable = next(child for child in parameter.children if child.type == "variable")
                names.append(variable.text.decode().lstrip("$"))
    return names


def sets_changed_up_front(script: str) -> bool:
    """Whether $Ansible.Changed is assigned at the script's top level, before any branch can skip it."""
    tree = POWERSHELL.parse(script.encode())
    for statements in (child for child in tree.root_node.children if child.type == "statement_list"):
        for statement in statements.children:
            if re.match(r"\$Ansible\.Changed\s*=", statement.text.decode()):
                return True
    return False


def parameter_problems(script: str, parameters: dict) -> list[str]:
    """Names passed that the param() block lacks (PowerShell refuses them), and names it declares that are
    never passed (they would be $null)."""
    declared = {name.lower(): name for name in script_parameters(script)}
    passed = {name.lower(): name for name in parameters or {}}
    return [f"{passed[name]} is passed but not in param()" for name in sorted(passed.keys() - declared.keys())] + [
        f"{declared[name]} is in param() but never passed" for name in sorted(declared.keys() - passed.keys())
    ]


def inline_scripts() -> list[tuple[str, str, dict]]:
    """(where, script, task) for every inline win_powershell / win_shell script in the role."""
    found = []
    for where, task in TASKS:
        module, args = module_call(task)
        if module.endswith((".win_powershell", ".win_shell")):
            script = args.get("script") or args.get("cmd") or args.get("_raw_params")
            if script:
                found.append((where, script, task))
    return found


SCRIPTS = inline_scripts()


def render_template(name: str, **overrides) -> str:
    """A role template, rendered the way the template modules do (trim_blocks) with the role's defaults."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    values = {
        **{key: value for key, value in defaults.items() if not _templated(value)},
        "windows_wsl_ports": [8000, 2222],
        "windows_wsl_portproxy_address": "192.168.1.50",
        "ansible_managed": "Ansible managed",
        **overrides,
    }
    environment = jinja2.Environment(  # noqa: S701 (PowerShell, not HTML)
        loader=jinja2.FileSystemLoader(ROLE / "templates"),
        trim_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template(name).render(values)


# --- the role passes --------------------------------------------------------------------------------


def test_the_role_uses_documented_modules_only():
    assert set(MODULES) <= set(docs()), set(MODULES) - set(docs())
    assert any(module.startswith("community.windows.") for module in MODULES)
    assert any(module.startswith("ansible.windows.") for module in MODULES)


@pytest.mark.parametrize(("where", "task"), TASKS, ids=[where for where, _ in TASKS])
def test_every_task_matches_its_modules_documentation(where, task):
    assert check_task(where, task) == []


@pytest.mark.parametrize(
    ("mode", "distribution"),
    [("mirrored", "Ubuntu-24.04"), ("nat", "Ubuntu-24.04"), ("nat", "Bob's-Ubuntu")],
    ids=["mirrored", "nat", "a-quote-in-the-name"],
)
def test_the_keep_alive_template_parses_as_powershell(mode, distribution):
    for template in sorted((ROLE / "templates").glob("*.ps1.j2")):
        script = render_template(template.name, windows_wsl_networking_mode=mode, windows_wsl_distribution=distribution)
        assert powershell_errors(script) == [], template.name
        assert "$Distribution = '" + distribution.replace("'", "''") + "'" in script


@pytest.mark.parametrize(("where", "script", "task"), SCRIPTS, ids=[where for where, _, _ in SCRIPTS])
def test_every_inline_script_parses_as_powershell(where, script, task):
    # Values go in through `parameters`, never templated into the code, where a quote would break it.
    assert not _templated(script), f"{where}: pass values as parameters, not as templates in the script"
    assert powershell_errors(script) == []


@pytest.mark.parametrize(("where", "script", "task"), SCRIPTS, ids=[where for where, _, _ in SCRIPTS])
def test_win_powershell_parameters_match_the_param_block(where, script, task):
    module, args = module_call(task)
    if not module.endswith(".win_powershell"):
        pytest.skip("win_shell takes no parameters")
    assert parameter_problems(script, args.get("parameters")) == []


@pytest.mark.parametrize(("where", "script", "task"), SCRIPTS, ids=[where for where, _, _ in SCRIPTS])
def test_scripts_in_tasks_say_whether_they_changed_anything(where, script, task):
    if where.startswith("handlers/"):
        pytest.skip("a handler runs because something changed")
    assert sets_changed_up_front(script), "win_powershell reports a change unless the script says otherwise"


def test_the_role_has_scripts_to_check():
    """Guards the parametrized tests above against silently collecting nothing."""
    assert len(TASKS) >= 20
    assert len(SCRIPTS) >= 6
    assert "community.windows.win_scheduled_task" in MODULES


# --- the checkers fail on what they exist to catch ----------------------------------------------------


def _task(name_part: str) -> dict:
    return copy.deepcopy(next(task for where, task in TASKS if name_part in where))


def test_a_made_up_argument_is_reported():
    task = _task("Register the keep-alive task")
    assert check_task("copy", task) == []
    task["community.windows.win_scheduled_task"]["restart_forever"] = True
    problems = check_task("copy", task)
    assert len(problems) == 1 and "unknown argument 'restart_forever'" in problems[0]


def test_a_made_up_suboption_is_reported():
    task = _task("Register the keep-alive task")
    task["community.windows.win_scheduled_task"]["triggers"][1]["repetition"]["every"] = "PT1M"
    task["community.windows.win_scheduled_task"]["actions"][0]["program"] = "wsl.exe"
    problems = check_task("copy", task)
    assert any("triggers[1]: repetition: unknown argument 'every'" in problem for problem in problems), problems
    assert any("actions[0]: unknown argument 'program'" in problem for problem in problems), problems


@pytest.mark.parametrize(
    ("argument", "value", "expected"),
    [
        ("multiple_instances", 4, "4 is not one of [0, 1, 2, 3]"),
        ("logon_type", "batch", "'batch' is not one of"),
        ("logon_type", "{{ 'password' if windows_wsl_task_password else 'S4U' }}", "'S4U' is not one of"),
        ("run_level", "{{ 'highest' if x else 'lowest' }}", "'lowest' is not one of"),
        ("enabled", "maybe", "'maybe' is not a bool"),
        ("multiple_instances", "two", "'two' is not a int"),
        ("logon_type", "{{ 'password' if x else }}", "does not parse"),
    ],
)
def test_a_wrong_value_is_reported(argument, value, expected):
    task = _task("Register the keep-alive task")
    task["community.windows.win_scheduled_task"][argument] = value
    problems = check_task("copy", task)
    assert any(expected in problem for problem in problems), problems


def test_a_missing_required_argument_and_an_unknown_module_are_reported():
    task = _task("Apply the changes now")
    task["ansible.builtin.meta"] = "flush_handler"
    assert any("'flush_handler' is not one of" in problem for problem in check_task("copy", task))
    task = _task("Look for the user's .wslconfig")
    task["ansible.windows.win_stat"] = {"get_checksum": False}
    assert any("required argument 'path' is missing" in problem for problem in check_task("copy", task))
    task = {"name": "made up", "community.windows.win_wsl_keepalive": {"distribution": "Ubuntu"}}
    assert check_task("copy", task) != []


@pytest.mark.parametrize(
    "script",
    [
        "if ($a) { Write-Output 1",
        "foreach ($Port in ) { }",
        "$Ports = @(8000, 2222",
        'throw "No address in $Distribution: is it running?"',
        "param([string]$Name\n$x = 1",
        "function Write-Log([string]$Message) {\n",
        "$x = @{ a = 1; b = }",
    ],
)
def test_the_parser_rejects_broken_powershell(script):
    assert powershell_errors(script) != []


def test_the_parser_accepts_what_powershell_accepts():
    assert powershell_errors('throw "x ${Distribution}: y $env:WSL_UTF8 $($Rule.Name)"') == []
    assert powershell_errors("[CmdletBinding(SupportsShouldProcess)]\nparam([int[]]$Ports)\n$Ports -join ','") == []


def test_a_script_that_leaves_changed_to_the_default_is_caught():
    # The shape of the earlier Hyper-V task: it reported a change on every run.
    earlier = "foreach ($P in $Ports) {\n    if ($x) { continue }\n    $Ansible.Changed = $true\n}"
    assert not sets_changed_up_front(earlier)
    assert sets_changed_up_front("param([int[]]$Ports)\n$Ansible.Changed = $false\nforeach ($P in $Ports) { }")


def test_a_misnamed_parameter_is_caught():
    where, script, task = next(item for item in SCRIPTS if "portproxy at WSL" in item[0])
    parameters = dict(task["ansible.windows.win_powershell"]["parameters"])
    assert parameter_problems(script, parameters) == []
    parameters["Distro"] = parameters.pop("Distribution")
    assert parameter_problems(script, parameters) == [
        "Distro is passed but not in param()",
        "Distribution is in param() but never passed",
    ]


# --- issue 19: only what is needed ------------------------------------------------------------------


def command_calls(script: str, name: str) -> list[dict[str, str]]:
    """Every call of the command `name` in the script, as {'-parameter' (lower case): the text of its argument,
    '' for a switch}, with positional arguments under '#0', '#1', ... (PowerShell's own parse, continuations
    and all)."""
    tree = POWERSHELL.parse(script.encode())
    calls = []

    def visit(node):
        if node.type == "command":
            # `& name` puts the name in a command_name_expr.
            names = [child for child in node.children if child.type == "command_name"]
            names += [grand for child in node.children if child.type == "command_name_expr" for grand in child.children]
            names = [child for child in names if child.type == "command_name"]
            if names and names[0].text.decode().lower() == name.lower():
                call, parameter, position = {}, None, 0
                for elements in (child for child in node.children if child.type == "command_elements"):
                    for element in elements.children:
                        if element.type == "command_argument_sep":
                            continue
                        if element.type == "command_parameter":
                            parameter = element.text.decode().lower().rstrip(":")
                            call[parameter] = ""
                        elif parameter:
                            call[parameter], parameter = element.text.decode(), None
                        else:
                            call[f"#{position}"], position = element.text.decode(), position + 1
                calls.append(call)
        for child in node.children:
            visit(child)

    visit(tree.root_node)
    return calls


def _script(name_part: str) -> tuple[str, dict]:
    where, script, task = next(item for item in SCRIPTS if name_part in item[0])
    return script, task["ansible.windows.win_powershell"]


def _main_tasks() -> list[tuple[str, dict]]:
    return [(where, task) for where, task in TASKS if where.startswith("tasks/main.yml: ")]


def test_the_command_reader_reads_powershell_calls():
    script = "New-Thing -Name $N `\n  -Profiles ($P -join ',') -Enabled True -Force x | Out-Null\n& netsh.exe a b=c"
    assert command_calls(script, "new-thing") == [
        {"-name": "$N", "-profiles": "($P -join ',')", "-enabled": "True", "-force": "x"}
    ]
    assert command_calls(script, "netsh.exe") == [{"#0": "a", "#1": "b=c"}]


def test_the_hyper_v_rule_is_scoped_to_the_lan_and_to_private_profiles():
    """Before issue 19 the rule had no -Profiles and no -RemoteAddresses: open on public Wi-Fi, from anywhere."""
    script, args = _script("through the Hyper-V firewall")
    [call] = command_calls(script, "New-NetFirewallHyperVRule")
    assert "$Profiles" in call["-profiles"] and call["-remoteaddresses"] == "$RemoteAddresses"
    assert call["-direction"] == "Inbound" and call["-action"] == "Allow" and call["-enabled"] == "True"
    assert call["-protocol"] == "TCP" and call["-localports"] == "$Port" and call["-vmcreatorid"] == "$Creator"
    parameters = args["parameters"]
    assert parameters["Profiles"] == "{{ windows_wsl_firewall_profiles }}"
    # Per scope (the LAN's ports with windows_wsl_allowed_remote_addresses, the Wyoming port with Home
    # Assistant's addresses: test_windows_wsl_render.py), the rules made are the ones the controller's
    # comparison found missing or different (tested in test_windows_preflight.py).
    assert parameters["RemoteAddresses"] == "{{ item.addresses }}"
    assert parameters["Ports"] == "{{ item.fix }}"
    # A rule that differs is removed before it is made again (Set-NetFirewallHyperVRule lacks -Profiles in
    # some of its documented syntaxes).
    assert script.index("Remove-NetFirewallHyperVRule") < script.index("New-NetFirewallHyperVRule")


def test_the_probe_reads_what_the_comparison_needs_of_each_rule():
    script, _ = _script("Look at the PC")
    rules = script[script.index("Get-NetFirewallHyperVRule") : script.index("$FirewallRules =")]
    for key, prop in [
        ("profiles", "Profiles"),
        ("remote_addresses", "RemoteAddresses"),
        ("local_ports", "LocalPorts"),
        ("enabled", "Enabled"),
        ("action", "Action"),
        ("direction", "Direction"),
        ("protocol", "Protocol"),
        ("vm_creator_id", "VMCreatorId"),
    ]:
        assert re.search(rf"\b{key} = .*\$_\.{prop}\b", rules), key
    assert "addresses = $Addresses" in script and "connected_address = $Connected" in script


def test_the_nat_rule_is_scoped_to_the_lan_and_to_private_profiles():
    [task] = [task for where, task in _main_tasks() if "through Windows Defender Firewall" in where]
    args = task["community.windows.win_firewall_rule"]
    assert args["profiles"] == "{{ windows_wsl_firewall_profiles }}"
    # Each port with its scope's addresses: the LAN's, or Home Assistant's for the Wyoming port.
    assert args["remoteip"] == "{{ item.0.addresses | join(',') }}" and args["localport"] == "{{ item.1 }}"
    assert task["loop"] == "{{ windows_wsl_firewall_scopes | subelements('ports') }}"


def _portproxy_adds(script: str) -> list[dict[str, str]]:
    return [call for call in command_calls(script, "netsh.exe") if {"portproxy", "add"} <= set(call.values())]


def test_no_portproxy_listens_on_every_address():
    """The NAT portproxy listened on 0.0.0.0: on every network the PC joins. It listens on the LAN address."""
    scripts = [script for _, script, _ in SCRIPTS] + [
        render_template(
            "wsl-keepalive.ps1.j2", windows_wsl_networking_mode="nat", windows_wsl_portproxy_address="10.1.2.3"
        )
    ]
    adds = [call for script in scripts for call in _portproxy_adds(script)]
    assert len(adds) == 2  # the role's task and the keep-alive
    for call in adds:
        assert "listenaddress=$ListenAddress" in call.values(), call
    for script in scripts:
        assert "0.0.0.0" not in "\n".join(
            line for line in script.splitlines() if "portproxy add" in line or "listenaddress=" in line
        )
    keepalive = scripts[-1]
    assert "$ListenAddress = '10.1.2.3'" in keepalive
    _, args = _script("Point the portproxy at WSL")
    assert args["parameters"]["ListenAddress"] == "{{ windows_wsl_portproxy_address }}"


def _module_tasks(module: str) -> list[tuple[int, dict]]:
    return [(index, task[module]) for index, (_, task) in enumerate(_main_tasks()) if module in task]


def test_the_script_folder_is_locked_down_before_the_script_is_written():
    """C:\\ProgramData lets any user create a folder there, own it, and so swap the script that runs at boot
    with highest privileges: the folder gets an explicit ACL, and Administrators own it, first."""
    tasks = _main_tasks()
    [(template, _)] = _module_tasks("ansible.windows.win_template")
    [(create, _)] = [item for item in _module_tasks("ansible.windows.win_file") if item[1]["state"] == "directory"]
    owners = _module_tasks("ansible.windows.win_owner")
    [(folder_owner, _)] = [item for item in owners if item[1]["path"] == "{{ windows_wsl_script_dir }}"]
    [(script_owner, _)] = [item for item in owners if item[1]["path"] == "{{ windows_wsl_script }}"]
    assert all(item[1]["user"] == "S-1-5-32-544" for item in owners)  # Administrators, by SID: any language
    [(inheritance, args)] = _module_tasks("ansible.windows.win_acl_inheritance")
    assert args == {"path": "{{ windows_wsl_script_dir }}", "state": "absent", "reorganize": False}
    [(acl, args)] = _module_tasks("ansible.windows.win_acl")
    entries = tasks[acl][1]["loop"]
    assert sorted((entry["user"], entry["rights"]) for entry in entries) == [
        ("S-1-5-18", "FullControl"),  # SYSTEM
        ("S-1-5-32-544", "FullControl"),  # Administrators
        ("{{ windows_wsl_task_user }}", "ReadAndExecute"),  # runs it, cannot change it
    ]
    assert args["type"] == "allow" and args["path"] == "{{ windows_wsl_script_dir }}"
    assert args["user"] == "{{ item.user }}" and args["rights"] == "{{ item.rights }}"
    # The look at what is there comes first (links, and a folder someone else made), then the folder is made,
    # owned, cut off from C:\ProgramData's ACL and given its own, and only then is the script written into it
    # and handed to Administrators too.
    guard = next(index for index, (where, _) in enumerate(tasks) if "Take the script folder back" in where)
    assert guard < create < folder_owner < inheritance < acl < template < script_owner


def test_the_folder_check_removes_links_and_moves_aside_what_someone_else_made():
    script, args = _script("Take the script folder back")
    assert args["parameters"] == {
        "Path": "{{ windows_wsl_script_dir }}",
        "Script": "{{ windows_wsl_script }}",
        "User": "{{ windows_wsl_task_user }}",
    }
    assert "ReparsePoint" in script  # a junction or link: the link goes, never what it points to
    assert "[IO.Directory]::Delete($Item.FullName, $false)" in script  # not recursive: the link alone
    assert "S-1-5-32-544" in script and "S-1-5-18" in script  # the owners trusted as they are
    assert "untrusted-" in script  # what someone else made is moved aside, unopened
    assert "RemoveAccessRuleSpecific" in script  # grants nobody asked for are dropped
