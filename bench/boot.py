"""Cold boot: `boot` -> `registered` with the call manager, and -> the standby session to the
SRST router, on the board's own clock. One lab and virtual board; before each boot the store
is emptied but for the phone's own key and certificate (what a provisioned board leaves the
bench with), so every boot is a first boot: DHCP (dnsmasq, option 150), TFTP of the CTL, the
ITL and the signed config, trust checks, TLS registration, the standby TLS session.

CPU-bound (RSA and TLS on the host's CPU; a board is much slower there), so it runs alone.
Quick: 3 boots; full: 15."""
from __future__ import annotations

import time

from bench import _rig
from bench._rig import Rig, RigSpec

KEEP = ("phone.key", "phone.der")        # phone.store.PHONE_KEY, PHONE_CERT
PLACE = "alone"


def run(quick: bool) -> dict:
    n = 3 if quick else 15
    samples: list[dict] = []
    errors: list[str] = []
    with Rig(_rig.workdir("boot"), RigSpec()) as rig:
        rig.wait("standby_up", rig.booted, 60)
        for _ in range(n):
            time.sleep(1.0)
            try:
                samples.append(_cold(rig))
            except _rig.RigError as e:
                errors.append(str(e))
    return summarize(samples, errors)


def _cold(rig: Rig) -> dict:
    for f in (rig.folder / "state").iterdir():
        if f.name not in KEEP:
            f.unlink()
    boot = rig.wait("boot", rig.reboot(), 30)
    sb = rig.wait("standby_up", boot.host, 60)
    evs = [s.event for s in rig.since(boot.host) if s.host <= sb.host]
    first = {e.ev: e for e in reversed(evs)}             # the first of each name
    reg, prov = first.get("registered"), first.get("provisioned")
    return {"registered_ms": reg.t - boot.event.t if reg else None,
            "link": reg.get("link") if reg else None,
            "provisioned_ms": prov.t - boot.event.t if prov else None,
            "offline": prov.get("offline") if prov else None,
            "standby_ms": sb.event.t - boot.event.t}


def summarize(samples: list[dict], errors: list[str]) -> dict:
    online = [s for s in samples if s["link"] == "primary" and not s["offline"]]
    rows = []
    for label, key in (("provisioned (DHCP, TFTP, CTL/ITL, signed config)", "provisioned_ms"),
                       ("registered with the call manager", "registered_ms"),
                       ("standby session to the SRST router up", "standby_ms")):
        st = _rig.stats([s[key] for s in online])
        rows.append([f"boot -> {label}", st["n"], f"{st['median']} ms", f"{st['worst']} ms"])
    notes = ["The board's own clock from its boot event; every boot a first boot (store emptied "
             "but for the phone's key and certificate), WAN up, firmware default settings.",
             "Host CPU, not an ESP32: RSA verification of the trust lists and the TLS "
             "handshakes dominate there, so a board takes seconds where this takes milliseconds."]
    if len(online) != len(samples):
        notes.append(f"{len(samples) - len(online)} boot(s) did not provision online and register "
                     f"with the call manager: {[s for s in samples if s not in online][:3]}")
    if errors:
        notes.append(f"{len(errors)} boot(s) not counted: " + "; ".join(errors[:3]))
    return {"title": "Cold boot to registered (virtual board, namespace lab)",
            "columns": ["measure", "boots", "median", "worst"], "rows": rows, "notes": notes,
            "samples": samples, "errors": errors}


def headline(res: dict) -> list[tuple[str, str, str]]:
    return [(r[0].replace("boot -> ", "cold boot -> "), f"median {r[2]}, worst {r[3]}",
             "host CPU, not an ESP32") for r in res.get("rows", [])[1:]]
