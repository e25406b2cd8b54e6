"""`phonelab vboard`: run a virtual board until Ctrl-C (or SIGTERM)."""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from host_tools import WORK, boards, cliargs, micropython
from host_tools.vboard import faithful
from host_tools.vboard.board import VirtualBoard
from host_tools.vboard.errors import VBoardError

DEFAULT_DIR = WORK / "build" / "vboard"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "vboard", help="run a virtual board (MicroPython unix port) that mpremote can talk to",
        description="Run the firmware on the MicroPython unix port behind a pty and a "
                    "socket:// endpoint; the board's filesystem is a folder. Ctrl-C stops it.")
    p.add_argument("--dir", type=cliargs.output_dir, default=DEFAULT_DIR,
                   help=f"the board's filesystem root (default {DEFAULT_DIR.relative_to(WORK)})")
    p.add_argument("--heap", default=micropython.DEFAULT_HEAP, metavar="SIZE",
                   type=cliargs.heap_size(),
                   help="MicroPython heap, like a small board (default %(default)s)")
    p.add_argument("--port", type=cliargs.port, default=0, metavar="N",
                   help="TCP port for socket://127.0.0.1:N (default 0: a free port)")
    p.add_argument("--host", default="127.0.0.1", type=cliargs.ip_address,
                   help="address the TCP endpoint listens on")
    p.add_argument("--no-tcp", action="store_true", help="no socket:// endpoint")
    p.add_argument("--no-pty", action="store_true", help="no pty endpoint")
    p.add_argument("--board", default="virtual", metavar="NAME|virtual:PROFILE",
                   type=_board_arg,
                   help="board profile written to board.json when the folder has none "
                        "(default %(default)s, a unix-chip profile); virtual:PROFILE is the "
                        "ESP32-faithful board of a hardware profile (its heap, clock at "
                        "2000-01-01, DHCP owned by the network stack, TLS budget, CPU speed; "
                        "docs/vboard.md)")
    p.add_argument("--netns", metavar="NAME", type=cliargs.name,
                   help="run the interpreter inside network namespace NAME (ip netns exec)")
    p.add_argument("--phone-if", metavar="IF", type=cliargs.name,
                   help="virtual:PROFILE with --netns: the namespace interface the board's "
                        "DHCP client runs on (without it the board's cable is unplugged)")
    p.add_argument("--console", action="store_true",
                   help="also print the board's console output here")
    p.set_defaults(func=run)


_board_arg = cliargs.board_profile(unix_only=True, faithful=True)


def _install_profile(folder: Path, name: str) -> None:
    if faithful.is_faithful(name):
        name = faithful.profile_name(name)
        target = folder / "board.json"
        if not target.exists():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(boards.load(name).path, target)
        return
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
                             pty=not args.no_pty, prefix=prefix, host=args.host, on_output=echo,
                             env={"PHONE_IF": args.phone_if} if args.phone_if else None,
                             board=args.board if faithful.is_faithful(args.board) else None)
        board.start()
    except (VBoardError, boards.BoardError, micropython.MicroPythonNotFound, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    old_term = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        what = (f"{args.board}, heap {board.heap // 1024}K" if board.traits
                else f"heap {args.heap}")
        print(f"virtual board: {board.folder} ({what})")
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
