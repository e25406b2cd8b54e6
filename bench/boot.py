"""Cold boot: `boot` -> `registered` with the call manager, and -> the standby session to the
SRST router, on the board's own clock. One lab and virtual board per board kind; before each
boot the store is emptied but for the phone's own key and certificate (what a provisioned
board leaves the bench with), so every boot is a first boot: DHCP (dnsmasq, option 150), TFTP
of the CTL, the ITL and the signed config, trust checks, TLS registration, the standby TLS
session (none on a `limited` board).

Two kinds of board: the unix port at host speed ("virtual"), then the ESP32-faithful boards
(`virtual:PROFILE`: CPU quota at the calibrated ESP32 speed, clock at 2000, the platform's
DHCP client, the profile's heap and TLS budget), both profiles at once, compared with the
target of 15 s from boot to registered.

PLACE "alone": the host-speed figures are CPU-bound (RSA and TLS on the host's CPU). A
faithful board takes under 1 % of a core (its quota), but its quota is CPU time granted per
144 ms period, so a busy machine still delays it (each grant waits for a core): the faithful
series run here too, after the host series, the two profiles beside each other only.
Quick: 3 boots at host speed, 1 per faithful board; full: 15 and 5."""
from __future__ import annotations

import os
import time

import host_tools.fw  # noqa: F401  (firmware/ on sys.path)
from bench import _rig
from bench._rig import Rig, RigSpec
from phone.store import PHONE_CERT, PHONE_KEY  # type: ignore[import-not-found]

KEEP = (PHONE_KEY, PHONE_CERT)          # the phone's identity, kept between boots
PLACE = "alone"
FAITHFUL = ("virtual:olimex-esp32-poe-iso-wrover", "virtual:wt32-eth01")
TARGET_REGISTERED_MS = 15000             # boot -> registered at ESP32 speed (issue target)


def run(quick: bool) -> dict:
    host = series(("virtual", 3 if quick else 15))
    boards = _rig.boards("BENCH_BOOT_BOARDS", FAITHFUL)
    faithful = _rig.parallel(series, [(b, 1 if quick else 5) for b in boards])
    return summarize([host, *faithful])


def series(task: tuple[str, int]) -> dict:
    """n cold boots of one board kind on one lab (runs in a worker for the faithful ones)."""
    board, n = task
    samples: list[dict] = []
    errors: list[str] = []
    load0 = os.getloadavg()[0]
    t0 = time.monotonic()
    spec = RigSpec(board=board)
    limited = False
    with Rig(_rig.workdir("boot"), spec) as rig:
        limited = bool(spec.faithful) and _limited(board)
        ready = "registered:primary" if limited else "standby_up"
        slow = 3.0 if spec.faithful else 1.0        # a faithful board boots at ESP32 speed
        rig.wait(ready, rig.booted, 60 * slow)
        for _ in range(n):
            time.sleep(1.0)
            try:
                samples.append(_cold(rig, limited, slow))
            except _rig.RigError as e:
                errors.append(str(e))
    return {"board": board, "limited": limited, "samples": samples, "errors": errors,
            "load": [round(load0, 2), round(os.getloadavg()[0], 2)],
            "seconds": round(time.monotonic() - t0, 1)}


def _limited(board: str) -> bool:
    from host_tools.boards import load
    from host_tools.vboard import faithful
    return load(faithful.profile_name(board)).limited


def _cold(rig: Rig, limited: bool, slow: float) -> dict:
    for f in (rig.folder / "state").iterdir():
        if f.name not in KEEP:
            f.unlink()
    boot = rig.wait("boot", rig.reboot(), 30 * slow)
    end = rig.wait("registered" if limited else "standby_up", boot.host, 60 * slow)
    evs = [s.event for s in rig.since(boot.host) if s.host <= end.host]
    first = {e.ev: e for e in reversed(evs)}             # the first of each name
    reg, prov = first.get("registered"), first.get("provisioned")
    return {"registered_ms": reg.t - boot.event.t if reg else None,
            "link": reg.get("link") if reg else None,
            "provisioned_ms": prov.t - boot.event.t if prov else None,
            "offline": prov.get("offline") if prov else None,
            "standby_ms": None if limited else end.event.t - boot.event.t}


def summarize(results: list[dict]) -> dict:
    rows, notes, errors, boards = [], [], [], []
    for r in results:
        if "samples" not in r:                  # the worker itself failed
            errors.append(r.get("error", "?"))
            continue
        samples = r["samples"]
        online = [s for s in samples if s["link"] == "primary" and not s["offline"]]
        faithful = r["board"] != "virtual"
        st = {}
        for key, label in (("provisioned_ms", "provisioned (DHCP, TFTP, CTL/ITL, signed config)"),
                           ("registered_ms", "registered with the call manager"),
                           ("standby_ms", "standby session to the SRST router up")):
            st[key] = _rig.stats([s[key] for s in online])
            if key == "standby_ms" and r["limited"]:
                continue                        # no standby session on a limited board
            target = "-"
            if faithful and key == "registered_ms" and st[key]["n"]:
                ok = st[key]["worst"] < TARGET_REGISTERED_MS
                target = f"< {TARGET_REGISTERED_MS // 1000} s: {'pass' if ok else 'FAIL'}"
            rows.append([_rig.board_label(r["board"]), f"boot -> {label}", st[key]["n"],
                         f"{st[key]['median']} ms", f"{st[key]['worst']} ms", target])
        boards.append({"board": r["board"], "limited": r["limited"], "load": r["load"],
                       "seconds": r["seconds"], "stats": st, "samples": samples,
                       "errors": r["errors"]})
        if len(online) != len(samples):
            notes.append(f"{_rig.board_label(r['board'])}: {len(samples) - len(online)} boot(s) did not "
                         f"provision online and register with the call manager: "
                         f"{[s for s in samples if s not in online][:3]}")
        if r["errors"]:
            notes.append(f"{_rig.board_label(r['board'])}: {len(r['errors'])} boot(s) not counted: "
                         + "; ".join(r["errors"][:3]))
        errors += r["errors"]
    notes[:0] = [
        "The board's own clock from its boot event; every boot a first boot (store emptied but "
        "for the phone's key and certificate), WAN up, firmware default settings.",
        "host speed: the unix port on this host's CPU, where RSA and the TLS handshakes take "
        "milliseconds. The faithful boards (virtual:PROFILE, docs/vboard.md) run under the CPU "
        "quota calibrated to an ESP32 at 160 MHz (144x), with the clock at 2000, the platform's "
        "DHCP client and the profile's heap and TLS budget; target: boot -> registered under "
        f"{TARGET_REGISTERED_MS // 1000} s (worst boot).",
        "Host load average (1 min) at the start and end of each series: "
        + ", ".join(f"{_rig.board_label(b['board'])} {b['load'][0]}-{b['load'][1]}" for b in boards)
        + " (2 cores)."]
    return {"title": "Cold boot to registered (virtual board at host speed and ESP32-faithful "
                     "boards, namespace lab)",
            "columns": ["board", "measure", "boots", "median", "worst", "target"],
            "rows": rows, "notes": notes, "boards": boards, "errors": errors,
            "target_registered_ms": TARGET_REGISTERED_MS}


def headline(res: dict) -> list[tuple[str, str, str]]:
    out = []
    for r in res.get("rows", []):
        if len(r) == 4:                         # JSON from before the board column
            r = ["host speed", *r, "-"]
        board, measure, n, med, worst, target = r
        if measure.startswith("boot -> provisioned") and board == "host speed":
            continue
        where = "" if board == "host speed" else f" ({board}, ESP32 speed)"
        cmp = f"target {target}" if target != "-" else (
            "host CPU, not an ESP32" if board == "host speed" else "no target of its own")
        out.append((measure.replace("boot -> ", "cold boot -> ") + where,
                    f"median {med}, worst {worst}", cmp))
    return out
