"""`workbench`: the TUI by default, and headless commands sharing the same engine."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from providers.base import GenParams, Message
from providers.registry import (
    SETTING_RANGES,
    Registry,
    Target,
    TargetError,
    is_loopback_url,
    parse_target,
)
from workbench.config import ConfigError, Settings, load_settings
from workbench.wiring import make_registry


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench",
        description="Send one prompt to several language models at once and compare them.",
    )
    parser.add_argument(
        "-t", "--target", action="append", default=[], metavar="TARGET",
        help="provider:model[@temperature=..,top_p=..,max_tokens=..,seed=..,system=..,label=..]"
        " (repeatable); for the TUI, serve, ask and run",
    )  # fmt: skip
    parser.add_argument(
        "--private", action="store_true",
        help="only targets on this machine: nothing is sent to a cloud provider",
    )  # fmt: skip
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    ask = commands.add_parser("ask", help="ask every target one question, print answers + metrics")
    ask.add_argument(
        "prompt", nargs="?",
        help="the prompt; '-' or nothing reads stdin (invalid bytes are read as U+FFFD)",
    )  # fmt: skip
    ask.add_argument(
        "-t", "--target", action="append", default=[], dest="ask_targets", metavar="TARGET",
        help="a target (repeatable); default from config",
    )  # fmt: skip
    ask.add_argument("-s", "--system", help="system prompt for every target")
    # The same ranges as a target's own @settings.
    ask.add_argument("--temperature", type=_ranged(float, *SETTING_RANGES["temperature"]))
    ask.add_argument("--top-p", type=_ranged(float, *SETTING_RANGES["top_p"]))
    ask.add_argument("--max-tokens", type=_ranged(int, *SETTING_RANGES["max_tokens"]))
    ask.add_argument("--seed", type=_ranged(int, *SETTING_RANGES["seed"]))
    ask.add_argument("--json", action="store_true", help="JSON Lines: one object per target")

    models = commands.add_parser("models", help="list the targets available right now")
    models.add_argument("--json", action="store_true",
                        help="JSON Lines instead of a table: one object per provider "
                        "(with --fit, per model)")  # fmt: skip
    models.add_argument("--fit", action="store_true",
                        help="which local models fit this machine's memory")  # fmt: skip
    models.add_argument("--context", type=_at_least(1),
                        help="context to size the KV cache for; implies --fit")  # fmt: skip

    serve = commands.add_parser("serve", help="the TUI in a web browser (textual-serve)")
    serve.add_argument(
        "--host", default="127.0.0.1",
        help="address to listen on (0.0.0.0: every interface; there is no login, so anyone "
        "who can reach the port can use the app and its API keys)",
    )  # fmt: skip
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument(
        "--public-url", type=_public_url, metavar="URL",
        help="the address browsers use to reach the server (behind a proxy, or by another "
        "name), e.g. http://box.lan:8000; the page loads its scripts and websocket from "
        "there (default: --host and --port; for 0.0.0.0 or ::, this machine's hostname)",
    )  # fmt: skip

    _add_suite_parsers(commands)

    costs = commands.add_parser("costs", help="cost per target, shadow prices, projections")
    costs.add_argument(
        "--shadow", metavar="TARGET",
        help="price local runs as this cloud target (default: the cheapest)",
    )  # fmt: skip
    costs.add_argument("--per-day", type=_at_least(0), default=100,
                       help="requests a day, for projections")  # fmt: skip
    costs.add_argument(
        "--days",
        type=_ranged(float, lambda n: n > 0, "more than 0 (for all time, leave --days out)"),
        help="only the last N days (default: all time)",
    )
    costs.add_argument("--by-model", action="store_true",
                       help="one line per provider:model, its settings' lines added up "
                       "(default: one per target, as compared)")  # fmt: skip
    costs.add_argument("--json", action="store_true",
                       help="JSON Lines instead of a table: one object per target "
                       "(nothing stored yet: no lines)")  # fmt: skip

    prices = commands.add_parser("prices", help="where prices come from, and how old they are")
    prices.add_argument("--update", action="store_true", help="fetch the latest prices")
    prices.add_argument(
        "--url", help="with --update: fetch from here instead of genai-prices' own URL"
    )

    board = commands.add_parser("leaderboard", help="win rates per target from blind votes")
    board.add_argument("--json", action="store_true",
                       help="JSON Lines instead of a table: one object per target "
                       "(no votes yet: no lines)")  # fmt: skip
    return parser


_N = TypeVar("_N", int, float)


def _ranged(kind: type[_N], ok: Callable[[_N], bool], should: str) -> Callable[[str], _N]:
    """An argparse type: a number that `ok` accepts; anything else `should` be fixed."""

    def parse(text: str) -> _N:
        try:
            value = kind(text)
        except ValueError:
            whole = "a whole number" if kind is int else "a number"
            raise argparse.ArgumentTypeError(f"{text!r} is not {whole}") from None
        if not ok(value):  # nan fails every comparison, so it is refused too
            raise argparse.ArgumentTypeError(f"must be {should}, not {text}")
        return value

    return parse


def _at_least(low: int) -> Callable[[str], int]:
    return _ranged(int, lambda n: n >= low, f"at least {low}")


def _add_suite_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser("run", help="run a prompt suite (YAML, or a promptfoo config)")
    run.add_argument("suite", nargs="?", help="the suite file (not needed with --resume)")
    run.add_argument("-t", "--target", action="append", default=[], dest="run_targets",
                     metavar="TARGET", help="run these targets instead of the suite's")  # fmt: skip
    run.add_argument("--concurrency", type=_at_least(1), help="requests at once per provider")
    run.add_argument("--repeat", type=_at_least(1),
                     help="run each case N times (pass rate, p50/p90)")  # fmt: skip
    run.add_argument(
        "--baseline",
        help="compare with an earlier run: latest or previous (both: this suite's last run "
        "on these targets before this one) or a run id",
    )
    run.add_argument("--cache", action="store_true",
                     help="answer identical temperature-0 requests from the store")  # fmt: skip
    run.add_argument("--resume", metavar="RUN_ID", help="finish a run that was interrupted")
    run.add_argument("--skip-unsupported", action="store_true",
                     help="run a promptfoo config even if some of its checks cannot run here; "
                     "they are reported as not checked, never as passed")  # fmt: skip
    run.add_argument(
        "--report",
        choices=["csv", "json", "junit", "md"],
        help="write a report in this format (default: from --out's extension)",
    )
    run.add_argument(
        "--out", type=Path,
        help="write the report here; .json, .csv, .xml (JUnit) or .md set its format "
        "(default: stdout, which then holds the report alone; the table goes to stderr)",
    )  # fmt: skip

    cmp = commands.add_parser("compare", help="what changed between two suite runs")
    which = (
        "run id, latest or previous: runs of the suite the other argument names, or with no "
        "ids, of the suite that ran last"
    )
    cmp.add_argument("before", nargs="?", default="previous", help=which)
    cmp.add_argument("after", nargs="?", default="latest", help=which)
    cmp.add_argument("--json", action="store_true", help="one JSON document instead of Markdown")

    history = commands.add_parser("history", help="past suite runs (--chats: comparisons)")
    history.add_argument(
        "--limit", type=_at_least(1), default=20, help="list at most this many (20)"
    )
    history.add_argument("--chats", action="store_true",
                         help="past comparisons and chats instead, newest first")  # fmt: skip
    history.add_argument("--search", default="",
                         help="only runs whose suite or targets contain this (with --chats: "
                         "comparisons whose prompts or answers do)")  # fmt: skip


_TAKE_TARGETS = (None, "ask", "run", "serve")
"""The commands that use the targets given before the command name (None: the TUI)."""


def _misused(args: argparse.Namespace) -> str | None:
    """Options argparse accepts but the command would silently ignore: say so instead."""
    if args.target and args.command not in _TAKE_TARGETS:
        return f"workbench {args.command}: takes no targets; drop -t"
    if args.command == "run" and args.resume and (args.run_targets or args.target):
        return "workbench run: --resume runs the targets the run started with; drop -t"
    if args.command == "run" and args.resume and args.repeat is not None:
        return "workbench run: --resume repeats each case as the run started; drop --repeat"
    if args.command == "prices" and args.url and not args.update:
        return "workbench prices: --url needs --update"
    if sys.stdout is None and args.command in _ONLY_SHOW and not getattr(args, "update", False):
        # Started with it closed (`>&-`): as `echo hi >&-` fails, rather than exit 0 in silence.
        return f"workbench {args.command}: stdout is closed, so there is nowhere to show it"
    return None


_ONLY_SHOW = ("models", "compare", "history", "costs", "prices", "leaderboard")
"""The commands whose output is all they do (`prices --update` also fetches)."""


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if problem := _misused(args):
        print(problem, file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"workbench: {exc}", file=sys.stderr)
        return 2
    if args.private:
        settings = settings.model_copy(update={"private": True})
    if args.command == "ask":
        return _ask(args, settings)
    if args.command == "run":
        # As with ask: targets before the command name, then those after it.
        args.run_targets = args.target + args.run_targets
        from workbench.commands.run import run_command

        return run_command(args, settings)
    if args.command == "compare":
        from workbench.commands.run import compare_command

        return compare_command(args)
    if args.command == "history" and args.chats:
        from workbench.commands.chats import run_chats

        return run_chats(args.search, limit=args.limit)
    if args.command == "history":
        from workbench.commands.run import history_command

        return history_command(args)
    if args.command == "costs":
        from workbench.commands.costs import run_costs

        return run_costs(make_registry(settings), shadow=args.shadow, per_day=args.per_day,
                         days=args.days, configured=settings.targets,
                         by_model=args.by_model, as_json=args.json)  # fmt: skip
    if args.command == "prices":
        from workbench.commands.prices import run_prices

        return run_prices(update=args.update, url=args.url)
    if args.command == "serve":
        return _serve(args)
    if args.command == "leaderboard":
        from workbench.commands.leaderboard import run_leaderboard

        return run_leaderboard(as_json=args.json)
    if args.command == "models":
        from workbench.commands.models import run_models

        if args.fit or args.context is not None:
            from workbench.commands.fit import run_fit

            return asyncio.run(run_fit(make_registry(settings), context=args.context,
                                       as_json=args.json))  # fmt: skip
        return asyncio.run(run_models(make_registry(settings), as_json=args.json))
    return _tui(args.target, settings)


def _tui(specs: list[str], settings: Settings) -> int:
    from workbench.tui.app import make_app

    try:
        app = make_app(settings, specs or None)
    except TargetError as exc:
        print(f"workbench: {exc}", file=sys.stderr)
        return 2
    app.run()
    if app.unstored:  # the app's own toast went with its screen
        from workbench.commands.format import plural

        answers = plural(app.unstored, "answer")
        print(f"workbench: {answers} of this session not stored in the history (the toasts "
              "said why)", file=sys.stderr)  # fmt: skip
    return app.return_code or 0  # 1 after a crash: Textual has shown the traceback


def _serve(args: argparse.Namespace) -> int:
    """Each browser tab gets its own `workbench` process, with the same targets."""
    import shlex

    from textual_serve.server import Server

    command = [sys.executable, "-m", "workbench.cli"]
    for target in args.target:
        command += ["-t", target]
    public_url = args.public_url or _served_at(args.host, args.port)
    if not is_loopback_url(f"http://{_bracketed(args.host)}"):
        print(
            f"workbench: warning: listening on {args.host}, beyond this machine, with no "
            f"login: anyone who can reach port {args.port} can use the app as you, with its "
            "targets, the API keys it was started with, and the history",
            file=sys.stderr,
        )
    said = f"workbench: serving on {public_url}"
    if args.public_url is None and args.host in _EVERYWHERE:
        said += " (the page sends browsers here; if they know this machine by another name, "
        said += "give --public-url)"
    print(said, file=sys.stderr)
    Server(
        shlex.join(command), host=args.host, port=args.port, title="llm-workbench",
        public_url=public_url,
    ).serve()  # fmt: skip
    return 0


def _public_url(text: str) -> str:
    """An argparse type: an http(s) URL with a host, without the trailing slash that
    textual-serve would double."""
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an http:// or https:// URL with a host, like http://box.lan:8000"
        )
    return text.rstrip("/")


_EVERYWHERE = ("0.0.0.0", "::", "")
"""Hosts that listen on every interface: no address a browser can be sent to."""


def _served_at(host: str, port: int) -> str:
    """Where browsers reach `host`: an address that listens everywhere is not one they can
    use, so the page names this machine's hostname instead."""
    import socket

    if host in _EVERYWHERE:
        host = socket.gethostname()
    return f"http://{_bracketed(host)}:{port}"


def _bracketed(host: str) -> str:
    """An IPv6 address as a URL writes it."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def _ask(args: argparse.Namespace, settings: Settings) -> int:
    prompt = args.prompt
    if prompt is None or prompt == "-":
        if sys.stdin.isatty() and prompt is None:
            print("workbench ask: give a prompt, or pipe one in", file=sys.stderr)
            return 2
        prompt = _read_stdin()
    else:
        prompt = _as_text(prompt)
    if not prompt.strip():
        print("workbench ask: the prompt is empty", file=sys.stderr)
        return 2
    try:
        # `-t A ask … -t B` is `ask … -t A -t B`: where a -t stands never drops it.
        targets = _targets(args.target + args.ask_targets or settings.targets, args)
    except TargetError as exc:
        print(f"workbench ask: {exc}", file=sys.stderr)
        return 2
    if not targets:  # `targets = []` in the config: asking nobody is never what was meant
        from workbench import locations

        print(
            "workbench ask: no targets: give some with -t, or set targets in the config "
            f"({locations.config_path()})",
            file=sys.stderr,
        )
        return 2
    messages = [Message("user", prompt)]
    if args.system:
        messages.insert(0, Message("system", _as_text(args.system)))
    registry = make_registry(settings)
    try:
        for target in targets:
            registry.kind(target.provider)
    except TargetError as exc:
        print(f"workbench ask: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(_ask_and_close(registry, targets, messages, args.json, settings.max_time_s))


def _read_stdin() -> str:
    """Stdin as text, whatever bytes arrive: an invalid byte becomes U+FFFD here, rather
    than a lone surrogate that every provider then fails to encode."""
    if isinstance(sys.stdin, io.TextIOWrapper):
        sys.stdin.reconfigure(errors="replace")
    return sys.stdin.read()


def _as_text(arg: str) -> str:
    """A command-line argument with its undecodable bytes (kept by Python as lone
    surrogates) replaced by U+FFFD, as `_read_stdin` does."""
    return os.fsencode(arg).decode(sys.getfilesystemencoding(), "replace")


async def _ask_and_close(
    registry: Registry,
    targets: list[Target],
    messages: list[Message],
    as_json: bool,
    max_time_s: float,
) -> int:
    """Exit status 130 on Ctrl-C, 143 on SIGTERM (`timeout`, a job cancelled), once every
    target's result so far is printed and stored."""
    from workbench import locations
    from workbench.commands.ask import run_ask
    from workbench.store import Store

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    interrupted: int | None = None

    def interrupt(status: int) -> None:
        # Only the first signal cancels. Another (or `timeout -s INT`, which signals the
        # process group too) must not break into the store's writes and the printing.
        nonlocal interrupted
        if interrupted is None:
            interrupted = status
            task.cancel()

    handled: list[signal.Signals] = []
    for signum, status in ((signal.SIGINT, 130), (signal.SIGTERM, 143)):
        try:
            loop.add_signal_handler(signum, interrupt, status)
            handled.append(signum)
        except NotImplementedError:  # Windows: asyncio's own, KeyboardInterrupt in entry()
            break
    store = Store(locations.database_path())
    try:
        store.require_writable()
    except BaseException:
        store.close()
        raise
    try:
        try:
            return await run_ask(
                registry, targets, messages, as_json=as_json, store=store, max_time_s=max_time_s
            )
        finally:
            store.close()
            await registry.aclose()
    except asyncio.CancelledError:
        if interrupted is None:
            raise
        task.uncancel()  # run_ask has said what was kept
        return interrupted
    finally:
        for signum in handled:
            loop.remove_signal_handler(signum)


def _targets(specs: Sequence[str], args: argparse.Namespace) -> list[Target]:
    """Parse the targets; command-line settings apply where a target sets none of its own."""
    shared = GenParams(args.temperature, args.top_p, args.max_tokens, args.seed)
    targets = []
    for spec in specs:
        target = parse_target(spec)
        params = shared.merged(target.params)
        targets.append(Target(target.provider, target.model, params, target.system, target.label))
    return targets


def entry() -> None:
    import sqlite3

    from workbench.commands.format import discard
    from workbench.store import SchemaTooNewError, StoreUnavailableError, why_not_written

    _fill_closed_std_fds()
    code: int | None = None
    try:
        code = main()
        if sys.stdout is not None:  # None: started with it closed, which `ask` has said
            sys.stdout.flush()  # here, where a reader gone away is handled, not at exit
    except (SchemaTooNewError, StoreUnavailableError) as exc:  # every command opens the store
        print(f"workbench: {exc}", file=sys.stderr)
        sys.exit(2)
    except sqlite3.OperationalError as exc:  # busy beyond the wait, disk full, …
        from workbench import locations

        print(f"workbench: {why_not_written(exc, locations.database_path())}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:  # a Ctrl-C no command handles itself: no traceback
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (`| head`). Its status is its own business, so the command's
        # stands when it got to decide one; cut off before that, 1, as Python's docs say.
        discard(sys.stdout)
        sys.exit(1 if code is None else code)
    except OSError as exc:
        # A file's error names the file (a config folder that may not be entered, say):
        # only a write to stdout fails with none.
        if sys.stdout is None or exc.errno in (None, 0) or exc.filename is not None:
            raise
        # Writing stdout failed (a full disk): say so, and let nothing more try at exit.
        discard(sys.stdout)
        print(f"workbench: cannot write the output: {exc.strerror or exc}", file=sys.stderr)
        sys.exit(1)
    sys.exit(code)


def _fill_closed_std_fds() -> None:
    """Started with stdin, stdout or stderr closed (`>&-`): /dev/null in their place, so
    that no file opened later (a model, the history) takes their number and then receives
    what was meant for them. Python has already set such a stream to None; `ask` says so."""
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)
            if devnull != fd:
                os.dup2(devnull, fd)
                os.close(devnull)


if __name__ == "__main__":
    entry()


__all__ = ["json", "main"]
