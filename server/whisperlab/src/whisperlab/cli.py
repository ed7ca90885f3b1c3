"""The whisperlab command. Exit status: 0 done; 1 a failure (a file that failed, a gate not met);
2 a usage error; 130 interrupted."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Optional

from whisperlab import endpoints
from whisperlab.endpoints import EndpointError

ENDPOINTS_HELP = """\
endpoints:
  openai             OpenAI's API; key from OPENAI_API_KEY (OPENAI_BASE_URL moves it, as in the SDK)
  wsl.home, wsl      a server of the inventory (--inventory or WHISPERLAB_INVENTORY), by alias, short
                     name or host name; its key and CA come from the inventory's files
  https://host:8000/v1
                     any OpenAI-compatible server; key from WHISPERLAB_API_KEY, or none

keys never go on the command line: --key-file and --key-env name a file or a variable, as LABEL=VALUE
for one endpoint (LABEL as you wrote it) or VALUE for all.
"""


def _endpoint_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("endpoints")
    group.add_argument("--inventory", metavar="HOSTS.YML", help="the inventory that names the servers")
    group.add_argument("--key-file", action="append", default=[], metavar="[LABEL=]PATH", help="read a key here")
    group.add_argument("--key-env", action="append", default=[], metavar="[LABEL=]VAR", help="read a key from VAR")
    group.add_argument("--ca-file", action="append", default=[], metavar="[LABEL=]PEM", help="also trust this CA")
    group.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="[LABEL=]MODEL",
        help="the model asked for (default whisper-1)",
    )


def _options(args) -> endpoints.Options:
    return endpoints.Options(
        inventory=args.inventory,
        key_files=endpoints.per_label(args.key_file, "--key-file"),
        key_envs=endpoints.per_label(args.key_env, "--key-env"),
        ca_files=endpoints.per_label(args.ca_file, "--ca-file"),
        models=endpoints.per_label(args.model, "--model"),
    )


def _positive(kind):
    def parse(text: str):
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be above 0, not {text}")
        return value

    return parse


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="whisperlab",
        description="Compare speech-to-text endpoints and transcribe in bulk, through the official OpenAI SDK.",
        epilog=ENDPOINTS_HELP + "\nmore: docs/whisperlab.md",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = top.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    compare = commands.add_parser(
        "compare",
        help="send the same files to A and B; report WER of B against A, latency, errors and cost",
        description="Each file goes to both endpoints. A is the reference (what you trust today), B the candidate.",
        epilog=ENDPOINTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.usage = (
        "whisperlab compare [options] A B FILE|DIR [FILE|DIR ...]\n"
        "       whisperlab compare [options] --from-shadow-log LOG"
    )
    compare.add_argument(
        "args", metavar="A B FILE|DIR", nargs="*", help="the reference, the candidate, then audio files or folders"
    )
    compare.add_argument(
        "--from-shadow-log",
        type=Path,
        metavar="LOG",
        help="report on what shadowing logged (A: the second endpoint, B: the local server) instead",
    )
    compare.add_argument("--out", type=Path, metavar="DIR", help="write report.md, report.json and report.png here")
    compare.add_argument("--concurrency", type=_positive(int), default=2, help="requests in flight (default 2)")
    compare.add_argument("--timeout", type=_positive(float), default=300.0, help="seconds per request (300)")
    compare.add_argument("--retries", type=int, default=2, help="the SDK's retries per request (default 2)")
    compare.add_argument("--language", help="the language both are told (default: each detects it)")
    compare.add_argument("--fail-above", type=float, metavar="WER", help="exit 1 when B's WER against A is above")
    compare.add_argument("--p99-above", type=float, metavar="SECONDS", help="exit 1 when B's p99 latency is above")
    compare.add_argument("--price-per-minute", type=float, metavar="USD", help="instead of OpenAI's for the model")
    compare.add_argument("--minutes-per-month", type=float, metavar="N", help="also cost a month of N minutes")
    _endpoint_options(compare)

    canary = commands.add_parser(
        "canary",
        help="whether the local server meets the bar to come first, from a shadow log or a compare report",
        description=(
            "Reads the evidence (a shadow log: the local server beside the second endpoint on real notes; or "
            "report.json from compare: B is the candidate) and says whether the local server meets every "
            "threshold. Exit 0: it does; 1: it does not; 3: too little evidence to say (--apply then changes "
            "nothing); 2: a usage error."
        ),
    )
    evidence = canary.add_mutually_exclusive_group(required=True)
    evidence.add_argument("--from-shadow-log", type=Path, metavar="LOG", help="the shadow log (shadow.jsonl)")
    evidence.add_argument("--report", type=Path, metavar="REPORT.JSON", help="a report compare wrote")
    canary.add_argument("--max-error-rate", type=float, default=0.01, help="0 to 1 (default 0.01)")
    canary.add_argument("--max-p99", type=_positive(float), default=10.0, metavar="SECONDS", help="(default 10)")
    canary.add_argument("--max-wer", type=float, default=0.15, help="against the reference, 0 to 1 (default 0.15)")
    canary.add_argument("--min-notes", type=_positive(int), default=20, help="the least evidence (default 20)")
    canary.add_argument(
        "--apply",
        action="store_true",
        help=(
            "then reorder the clients through the roles (playbooks/client.yml): the local servers first when "
            "they meet every threshold, last when not (a rollback is the same command)"
        ),
    )
    canary.add_argument("--check", action="store_true", help="with --apply: show what would change, change nothing")
    canary.add_argument("--inventory", metavar="HOSTS.YML", help="with --apply: the inventory of the clients")

    shadow = commands.add_parser(
        "shadow",
        help="shadowing's background job (the skill runs it; the whisper_skill role turns it on)",
        description=(
            "While shadowing is on (whisper_skill_shadow), the skill hands a copy of each sampled note a local "
            "server answered to `whisperlab shadow send`, which asks the second endpoint, logs both answers "
            "(never the audio) and removes the copy. Report on the log with `whisperlab compare --from-shadow-log`."
        ),
    )
    actions = shadow.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    send = actions.add_parser("send", help="send one copied note to the second endpoint and log the pair")
    send.add_argument("--config", required=True, help="the skill's config (client.env)")
    send.add_argument("job", type=Path, help="the folder the skill copied the note into")

    batch = commands.add_parser(
        "batch",
        help="transcribe a folder or files, resumably, over every server",
        description=(
            "Writes a transcript beside each audio file (or under --out). A file already transcribed is "
            "skipped; an interrupted run leaves no half-written transcript. Inputs are never changed."
        ),
        epilog=ENDPOINTS_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    batch.add_argument("inputs", metavar="FILE|DIR", nargs="+", help="audio files, or folders searched for them")
    batch.add_argument(
        "--server",
        action="append",
        default=[],
        metavar="ENDPOINT",
        help="a server to use, in order (repeat it); default: every server of the inventory",
    )
    batch.add_argument("--format", choices=["txt", "srt", "vtt", "json", "verbose_json"], default="txt")
    batch.add_argument("--out", type=Path, metavar="DIR", help="write transcripts here, keeping the folder tree")
    batch.add_argument("--concurrency", type=_positive(int), default=2, help="files in flight (default 2)")
    batch.add_argument("--timeout", type=_positive(float), default=600.0, help="seconds per request (600)")
    batch.add_argument("--retries", type=int, default=3, help="the SDK's retries per server (default 3)")
    batch.add_argument("--language", help="the language the servers are told (default: detected)")
    batch.add_argument("--prompt", help="text that guides the spelling of names and terms")
    batch.add_argument("--summary-json", type=Path, metavar="PATH", help="also write the summary and each file here")
    progress = batch.add_mutually_exclusive_group()
    progress.add_argument("--progress", dest="progress", action="store_true", default=None, help="always show it")
    progress.add_argument("--no-progress", dest="progress", action="store_false", help="never show it")
    _endpoint_options(batch)
    return top


def main(argv: Optional[list] = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.command == "compare":
            return _compare(args)
        if args.command == "shadow":
            return _shadow(args)
        if args.command == "canary":
            return _canary(args)
        return _batch(args)
    except EndpointError as error:
        print(f"whisperlab {args.command}: {error}", file=sys.stderr)
        return 2
    except FileNotFoundError as error:
        print(f"whisperlab {args.command}: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"whisperlab {args.command}: interrupted", file=sys.stderr)
        return 130


def _writable_folder(folder: Optional[Path], what: str, make: bool = True) -> None:
    """Checked before any request is made (and paid for): a folder the results can be written to."""
    if folder is None:
        return
    try:
        if make:
            folder.mkdir(parents=True, exist_ok=True)
        if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
            raise OSError(f"{folder} is not a folder this user can write to")
    except OSError as error:
        raise EndpointError(f"{what}: {error.strerror or error}") from None


def _compare(args) -> int:
    from tqdm import tqdm

    from whisperlab import compare
    from whisperlab.files import BadAudio, find, measure

    settings = compare.Settings(
        concurrency=args.concurrency,
        timeout=args.timeout,
        retries=args.retries,
        language=args.language,
        price_per_minute=args.price_per_minute,
        minutes_per_month=args.minutes_per_month,
    )
    if args.from_shadow_log:
        if args.args:
            raise EndpointError("--from-shadow-log takes no A, B or files: the log names both endpoints")
        summary = _from_shadow_log(args.from_shadow_log, settings)
        return _finish(summary, args)
    if len(args.args) < 3:
        raise EndpointError("give A, B and at least one file or folder (or --from-shadow-log LOG)")
    _writable_folder(args.out, "--out")
    options = _options(args)
    a, b = endpoints.resolve(args.args[0], options), endpoints.resolve(args.args[1], options)
    audios, skipped = [], []
    for path, root in find(args.args[2:]):
        try:
            audios.append(measure(path, root))
        except BadAudio as error:
            skipped.append(f"{path}: {error}")
    for line in skipped:
        print(f"skipped {line}", file=sys.stderr)
    if not audios:
        print("whisperlab compare: no audio to compare", file=sys.stderr)
        return 1
    with tqdm(total=len(audios) * 2, unit="req", desc="requests", file=sys.stderr, disable=None) as bar:
        results = compare.run(a, b, audios, settings, progress=bar)
    summary = compare.report(a, b, results, settings)
    summary["skipped"] = skipped
    return _finish(summary, args)


def _from_shadow_log(log: Path, settings) -> dict:
    from whisperlab import compare, shadow

    if not log.is_file():
        raise FileNotFoundError(f"no shadow log at {log}")
    try:
        results, named = shadow.results_from_log(log)
    except ValueError as error:
        raise EndpointError(str(error)) from None
    if not results:
        raise EndpointError(f"{log} has no records yet")
    (a_url, a_model), (b_url, b_model) = named["a"], named["b"]
    a = endpoints.Endpoint(a_url or "shadow", a_url, None, None, a_model or "whisper-1", a_url == endpoints.OPENAI_URL)
    b = endpoints.Endpoint(b_url or "local", b_url, None, None, b_model or "whisper-1")
    summary = compare.report(a, b, results, settings)
    summary["source"] = str(log)
    return summary


def _finish(summary: dict, args) -> int:
    from whisperlab import compare

    print(compare.table(summary))
    if args.out:
        written = compare.write(summary, args.out)
        print("\nwritten: " + ", ".join(str(path) for path in written.values()))
    failures = compare.gate(summary, args.fail_above, args.p99_above)
    for failure in failures:
        print(f"gate: {failure}", file=sys.stderr)
    return 1 if failures else 0


def _canary(args) -> int:
    from whisperlab import canary, compare

    try:
        if args.report:
            summary = canary.from_report(args.report)
        else:
            summary = _from_shadow_log(args.from_shadow_log, compare.Settings())
    except ValueError as error:
        raise EndpointError(str(error)) from None
    if (args.check or args.inventory) and not args.apply:
        raise EndpointError("--check and --inventory go with --apply")
    limits = canary.Thresholds(args.max_error_rate, args.max_p99, args.max_wer, args.min_notes)
    state, lines = canary.verdict(summary, limits)
    name = summary["b"].get("name") or summary["b"]["label"]
    for line in lines:
        print(line)
    if state == canary.THIN:
        print(f"Too little evidence to judge {name}: nothing changes.")
        return 3
    if state == canary.MET:
        print(f"{name} meets every threshold: it can come first.")
    else:
        print(f"{name} does not meet them: keep the reference first.")
    if args.apply:
        inventory = args.inventory or os.environ.get("WHISPERLAB_INVENTORY")
        if not inventory:
            raise EndpointError("--apply needs the clients' inventory: --inventory (or WHISPERLAB_INVENTORY)")
        order = "local_first" if state == canary.MET else "local_last"
        done = canary.apply(inventory, order, check=args.check)
        if done != 0:
            print(f"whisperlab canary: the client play failed (exit {done})", file=sys.stderr)
            return 1
    return 0 if state == canary.MET else 1


def _shadow(args) -> int:
    from whisperlab import shadow

    record = shadow.send(args.config, args.job)
    return 0 if record and record["shadow"]["ok"] else 1


def _batch(args) -> int:
    from whisperlab import batch

    _writable_folder(args.out, "--out")
    if args.summary_json is not None:
        _writable_folder(args.summary_json.parent, "--summary-json's folder", make=False)
    options = _options(args)
    servers = [endpoints.resolve(s, options) for s in args.server] if args.server else endpoints.servers(options)
    settings = batch.Settings(
        format=args.format,
        out=args.out,
        concurrency=args.concurrency,
        timeout=args.timeout,
        retries=args.retries,
        language=args.language,
        prompt=args.prompt,
        progress=args.progress,
    )
    runner = batch.Batch(servers, settings)
    began = time.monotonic()
    outcomes = runner.run(args.inputs, report=lambda line: print(line, file=sys.stderr))
    result = batch.summary(outcomes, time.monotonic() - began)
    interrupted = runner.stopping.is_set()
    print(batch.describe(result, interrupted))
    if args.summary_json:
        detail = {**result, "interrupted": interrupted, "outcomes": [vars(o) for o in outcomes]}
        args.summary_json.write_text(json.dumps(detail, indent=2) + "\n")
    if interrupted:
        return 130
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
