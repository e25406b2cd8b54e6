"""A board in a lab: start host_tools.lab.Lab for one worker's board, give the board the
lab's identity and settings, and put it on the lab's network.

- virtual board: the lab writes its folder (lab.prepare_board_folder: profile overrides,
  settings.json, phone certificate and key) and the interpreter is started again as the
  lab's phone host (namespace prefix and environment);
- real board (serial port, labgrid place): the lab bridges the bench interface
  (--lab-interface IF, namespace mode, root) into its branch LAN; the board gets the profile
  overrides and settings over the raw REPL and its identity with host_tools.identity.
Each worker's phone has its own MAC, so parallel labs never share a device name.
"""
from __future__ import annotations

import json
from pathlib import Path

from host_tools.hil.handles import BoardHandle, VirtualHandle

MAC_BASE = 0x02005E100000   # locally administered, one per worker


def worker_mac(index: int) -> str:
    return f"{MAC_BASE + index + 1:012X}"


class LabSetupError(RuntimeError):
    pass


def start_lab(board: BoardHandle, workdir: Path, mac: str, mode: str = "auto",
              interface: str | None = None, key_size: int = 2048, **lab_kw: object) -> object:
    """lab_kw: further host_tools.lab.Lab options (a scenario's [lab] table); short timers
    unless it says otherwise. A serial board without a bench interface works only with a
    loopback lab, i.e. when it runs on this host (a virtual board behind a pty)."""
    from host_tools.lab.lab import Lab
    if board.kind != "virtual" and not interface and mode != "loopback":
        raise LabSetupError(f"{board.name} is a real board: its lab needs the bench interface "
                            f"the board's Ethernet is plugged into (--lab-interface IF, as root)")
    lab_kw.setdefault("short_timers", True)
    lab = Lab(workdir, mode="netns" if interface else mode, macs=[mac], interface=interface,
              key_size=key_size, **lab_kw)  # type: ignore[arg-type]
    lab.start()
    try:
        if isinstance(board, VirtualHandle):
            from host_tools import BOARDS
            # the board's own profile: a faithful board (virtual:PROFILE) runs its hardware one
            lab.prepare_board_folder(board.folder, mac, profile=BOARDS / f"{board.profile}.json")
            board.relaunch(prefix=lab.phone_prefix(), env=lab.phone_env())
        else:
            prepare_real_board(board, lab, mac)
            board.reset()
    except BaseException:
        lab.stop()
        raise
    return lab


def prepare_real_board(board: BoardHandle, lab: object, mac: str) -> None:
    """What prepare_board_folder does for a folder, done over the board's serial port."""
    from host_tools.deploy import RawRepl
    from host_tools.identity import PhoneIdentity, put_identity
    overrides = lab.profile_overrides()          # type: ignore[attr-defined]
    settings = lab.board_settings()              # type: ignore[attr-defined]
    ident = lab.pki.phones[mac]                  # type: ignore[attr-defined]
    with board._port_free():
        with RawRepl(board.tool_port) as b:
            profile = json.loads(b.read_text("/board.json") or "{}")
            profile.update(overrides)
            b.write("/board.json", json.dumps(profile, indent=1).encode(), lambda n: None)
            if settings:
                b.write("/settings.json", json.dumps(settings, indent=1).encode(), lambda n: None)
        put_identity(board.tool_port, PhoneIdentity(
            mac=mac, cert_der=ident.cert_der, cn=f"SEP{mac}", key_der=ident.key_der),
            reset=False, show=False)
