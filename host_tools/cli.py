"""`phonelab`: the command line. Each subcommand lives in its own module in
host_tools/commands/ (the one home of commands), which exposes `register(subparsers)`; the
parser it adds sets `func(args) -> int`. As in mpremote, argparse stays in that layer: the work
is done by plain functions elsewhere (host_tools.deploy.deploy, host_tools.flash.flash, ...),
which take values, not an argparse Namespace.

Errors: a command raises the project's own error types (any exception class defined in a
`host_tools` module, e.g. ScenarioError, PkiError, readers.InputError) or an OSError naming a
file; `main` prints them as one line, `phonelab CMD: error: ...`, and exits 2. Anything else
is a bug: one line `phonelab CMD: internal error: ...` with a hint, exit 70, and the
traceback with `phonelab --debug` (or PHONELAB_DEBUG=1). Bad argument values are refused by
argparse itself (host_tools.cliargs validators), exit 2."""
from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys

# One name per module of host_tools/commands/; order is the order of `phonelab --help`.
COMMANDS = ["demo", "boards", "certs", "config", "ctl", "vboard", "deploy", "flash", "identity",
            "package", "repl", "status", "lab", "run", "replay", "report", "fleet"]

EXIT_ERROR = 2          # the input or the environment is wrong (as argparse's usage errors)
EXIT_INTERNAL = 70      # a bug (EX_SOFTWARE)


class VersionAction(argparse.Action):
    """`--version`, asked only when given (a checkout asks git for the commit)."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser, namespace, values, option_string=None) -> None:  # type: ignore[override]
        from host_tools import version
        print(version.describe())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="phonelab",
        description="Secure SRST phone agent: virtual boards, lab, flashing and tests.")
    parser.add_argument("--debug", action="store_true",
                        help="show the Python traceback of an internal error")
    parser.add_argument("--version", action=VersionAction,
                        help="the version and the firmware commit it carries, then exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"host_tools.commands.{name}").register(sub)
    return parser


def is_user_error(e: BaseException) -> bool:
    """An error that describes the input or the environment, not a bug."""
    if isinstance(e, OSError):
        return bool(e.filename) or isinstance(e, (ConnectionError, TimeoutError))
    if isinstance(e, (subprocess.TimeoutExpired, UnicodeDecodeError)):
        return False
    return any(c.__module__.split(".")[0] == "host_tools" for c in type(e).__mro__)


def one_line(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename:
        extra = f" -> {e.filename2}" if e.filename2 else ""
        text = f"{e.filename}{extra}: {e.strerror or e}"
    else:
        text = str(e) or type(e).__name__
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return "; ".join(lines) if lines else type(e).__name__


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:          # usage error (2) or --help (0): a code for in-process callers
        return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_ERROR)
    debug = args.debug or os.environ.get("PHONELAB_DEBUG") == "1"
    prog = f"phonelab {args.command}"
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:       # noqa: BLE001 (the one place that turns errors into lines)
        if debug:
            raise
        sys.stdout.flush()
        if is_user_error(e):
            print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
            return EXIT_ERROR
        print(f"{prog}: internal error: {type(e).__name__}: {one_line(e)[:300]} "
              f"(a bug: rerun with `phonelab --debug {args.command} ...` for the traceback)",
              file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
