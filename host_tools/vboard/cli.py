"""`phonelab vboard`: run a virtual board until Ctrl-C (or SIGTERM)."""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from host_tools import ROOT, boards, cliargs, micropython
from host_tools.vboard.board import VirtualBoard
from host_tools.vboard.errors import VBoardError

DEFAULT_DIR = ROOT / "build" / "vboard"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vboard", help="run a virtual board (MicroPython unix port) that mpremote can talk to",
        description="Run the firmware on the MicroPython unix port behind a pty and a "
                    "socket:// endpoint; the board's filesystem is a folder. Ctrl-C stops it.")
    p.add_argument("--dir", type=cliargs.output_dir, default=DEFAULT_DIR,
                   help=f"the board's filesystem root (default {DEFAULT_DIR.relative_to(ROOT)})")
    p.add_argument("--heap", default=micropython.DEFAULT_HEAP, metavar="SIZE",
                   type=cliargs.heap_size(),
                   help="MicroPython heap, like a small board (default %(default)s)")
    p.add_argument("--port", type=cliargs.port, default=0, metavar="N",
                   help="TCP port for socket://127.0.0.1:N (default 0: a free port)")
    p.add_argument("--host", default="127.0.0.1", type=_address, help="address the TCP endpoint listens on")
    p.add_argument("--no-tcp", action="store_true", help="no socket:// endpoint")
    p.add_argument("--no-pty", action="store_true", help="no pty endpoint")
    p.add_argument("--board", default="virtual", metavar="NAME",
                   type=cliargs.board_profile(unix_only=True),
                   help="board profile written to board.json when the folder has none "
                        "(default %(default)s; must be a unix-chip profile)")
    p.add_argument("--netns", metavar="NAME", type=cliargs.name,
                   help="run the interpreter inside network namespace NAME (ip netns exec)")
    p.add_argument("--console", action="store_true",
                   help="also print the board's console output here")
    p.set_defaults(func=run)


def _address(text: str) -> str:
    import ipaddress
    try:
        ipaddress.ip_address(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an IP address") from None
    return text


_address.kind = "pattern"  # type: ignore[attr-defined]


def _install_profile(folder: Path, name: str) -> None:
    board = boards.load(name)
    if board.chip != "unix":
        raise VBoardError(f"board {name!r} is a {board.chip} board; a virtual board runs "
                          f"unix-chip profiles such as 'virtual'")
    target = folder / "board.json"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(board.path, target)


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    if args.no_pty and args.no_tcp:
        print("error: --no-pty and --no-tcp leave nothing to connect to", file=sys.stderr)
        return 2
    prefix = ["ip", "netns", "exec", args.netns] if args.netns else []
    echo = (lambda data: (sys.stdout.buffer.write(data), sys.stdout.flush())) if args.console else None
    try:
        _install_profile(args.dir, args.board)
        board = VirtualBoard(args.dir, heap=args.heap, tcp_port=None if args.no_tcp else args.port,
                             pty=not args.no_pty, prefix=prefix, host=args.host, on_output=echo)
        board.start()
    except (VBoardError, boards.BoardError, micropython.MicroPythonNotFound, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        print(f"virtual board: {board.folder} (heap {args.heap})")
        if board.pty_path:
            print(f"  pty:    {board.pty_path}")
        if board.url:
            print(f"  socket: {board.url}")
        print(f"  mpremote connect {board.port_for_mpremote} repl")
        print(f"  phonelab deploy --port {board.port_for_mpremote}")
        print("Ctrl-C stops the board.", flush=True)
        while board.running:
            time.sleep(0.5)
        if not board.running:
            print("error: the virtual board stopped unexpectedly", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        print("stopping the virtual board", flush=True)
    finally:
        board.stop()
        signal.signal(signal.SIGTERM, old_term)
    return 0
