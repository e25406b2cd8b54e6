"""Fault-matrix procedures: trust downgrades (issue items: pinned SAST first boot, signed config replay, trust list rollback).
Same contract as bench/_cases.py: each procedure drives one Rig and returns
(passed, observed text, figures); CASES are the matrix rows (fault_matrix.Case fields).

The attacker is the TFTP server: the lab's own serves the files each procedure puts in its
root (a rogue DHCP server pointing at a rogue TFTP server comes to the same thing for the
phone). The phone must refuse with an event naming the reason, keep its stored state, and
never make a plain-TCP or unverified link."""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any, Callable

import host_tools.fw  # noqa: F401  (firmware/ on sys.path)
from bench._cases import Result
from bench._rig import Rig
from host_tools import ctlbuild, pki as labpki
from host_tools.scenario import faults as scfaults
from phone.store import (  # type: ignore[import-not-found]
    CONFIG, CONFIG_RAW, CTL, SAST_PIN)

T_2020 = 1577836800          # what an attacker replays: a file signed in 2020
OTHER_PHONE = "0011223344FF"


def _config_paths(rig: Rig) -> tuple[Path, Path]:
    """(SEP<MAC>.cnf.xml, its .sgn) as the lab serves them."""
    sgn = Path(rig.lab.files["signed_configs"][0])
    return sgn.with_name(sgn.name[: -len(".sgn")]), sgn


def _serve(path: Path, data: bytes) -> None:
    """Replace a served file, the good one kept as NAME.good (as scenario faults do)."""
    good = path.with_name(path.name + ".good")
    if path.exists() and not good.exists():
        shutil.copyfile(path, good)
    tmp = path.with_name(path.name + ".new")
    tmp.write_bytes(data)
    tmp.replace(path)


def _with_mode(xml: bytes, mode: int) -> bytes:
    text = xml.decode()
    for m in (1, 2, 3):
        text = text.replace(f"<deviceSecurityMode>{m}</deviceSecurityMode>",
                            f"<deviceSecurityMode>{mode}</deviceSecurityMode>")
    return text.encode()


def _tls_port(rig: Rig) -> int:
    """The call manager's TLS port: the SCCP simulator's, or for a SIP phone HQ's Kamailio's."""
    return rig.lab.endpoints["sip_callmanager" if rig.spec.protocol == "sip" else "callmanager"][1]


def _plain(rig: Rig, since: float) -> list[Any]:
    """Registrations or tries on anything but the call manager's TLS port."""
    port = _tls_port(rig)
    return [s for s in rig.since(since) if s.event.ev in ("registered", "register_failed")
            and s.event.get("link") == "primary" and s.event.get("port") not in (None, port)]


# -- 1: a SAST pinned at provisioning, no stored CTL, a rogue TFTP server ------------------

def pinned_sast_rogue_tftp(rig: Rig, mode: int = 1) -> Result:
    """First boot with the SAST pinned (`phonelab provision --sast`): the TFTP server serves a
    CTL and ITL signed by a rogue SAST and an unsigned config with security mode `mode`, no
    .sgn. Then the real files come back."""
    lab = rig.lab
    (rig.folder / "state" / SAST_PIN).write_bytes(lab.pki.sast.cert_der)
    scfaults.replace_file(lab, "ctl", "unknown_sast")
    scfaults.replace_file(lab, "itl", "unknown_sast")
    xml, sgn = _config_paths(rig)
    _serve(xml, _with_mode(xml.read_bytes(), mode))
    sgn.replace(sgn.with_name(sgn.name + ".good"))          # a rogue server has no .sgn
    t = rig.boot()
    rej = rig.wait("config_rejected", t, 60)
    rig.wait("provision_retry", rej.host, 30)
    time.sleep(2.0)                                         # a retry or two more
    t_back = time.monotonic()
    stored = sorted(n for n in rig.store_hashes() if n in (CTL, CONFIG_RAW, CONFIG))
    bad = [s.event.ev for s in rig.since(t, None)
           if s.event.ev in ("provisioned", "config_accepted", "registered", "ctl_accepted")]
    # the real files back: the phone provisions and registers over TLS
    for which in ("ctl", "itl"):
        scfaults.restore_file(lab, which)
    lab.write_configs()
    reg = rig.wait("registered", t_back, 60)
    rig.settled(reg.host, 30)
    plain = _plain(rig, t)
    reason = rej.event.get("reason") or ""
    ok = (not bad and not stored and not plain and "unsigned" in reason
          and reg.event.get("link") == "primary" and reg.event.get("port") == _tls_port(rig))
    return ok, (f"rogue CTL and unsigned mode-{mode} config refused (config_rejected: "
                f"{reason!r}); {'stored ' + ', '.join(stored) if stored else 'nothing stored'}"
                f"{'; but ' + ', '.join(bad) if bad else ''}"
                f"{'; plain TCP tried' if plain else ''}; registered with "
                f"{reg.event.get('link')} on port {reg.event.get('port')} once the real files "
                f"were back"), {"reason": reason, "stored": stored}


# -- 2: a validly signed config replayed: another phone's, or an older one -----------------

def config_replay(rig: Rig, how: str = "other") -> Result:
    """Signed by the cluster's TFTP certificate, security mode 1: for SEP0011223344FF
    (how="other") or for this phone but signed in 2020 (how="older")."""
    lab = rig.lab
    xml, sgn = _config_paths(rig)
    payload = _with_mode(xml.read_bytes(), 1)
    if how == "other":
        data = ctlbuild.build_sgn(lab.pki.tftp, payload, filename=f"SEP{OTHER_PHONE}.cnf.xml",
                                  hash_name=lab.hash_name)
        want = f"signed for SEP{OTHER_PHONE}, not this phone"
    else:
        data = ctlbuild.build_sgn(lab.pki.tftp, payload, filename=xml.name,
                                  hash_name=lab.hash_name, timestamp=T_2020)
        want = "older than the stored configuration"
    before = rig.store_hashes()
    _serve(sgn, data)
    t = rig.reboot()
    rej = rig.wait("config_rejected", t, 60)
    reg = rig.wait("registered", t, 60)
    rig.settled(reg.host, 30)
    after = rig.store_hashes()
    kept = all(before.get(n) == after.get(n) for n in (CONFIG_RAW, CONFIG))
    accepted = rig.since(t, "config_accepted")
    reason = rej.event.get("reason") or ""
    prov = rig.since(t, "provisioned")
    mode = prov[0].event.get("security_mode") if prov else None
    ok = (want in reason and kept and not accepted and not _plain(rig, t) and mode == 3
          and reg.event.get("link") == "primary" and reg.event.get("port") == _tls_port(rig))
    return ok, (f"config_rejected ({reason!r}), stored config "
                f"{'kept' if kept else 'CHANGED'} (security mode {mode}), registered with "
                f"{reg.event.get('link')} on port {reg.event.get('port')}"), {"reason": reason}


# -- 3: a CTL signed by the real SAST, older than the stored one ---------------------------

def ctl_rollback(rig: Rig) -> Result:
    """A 2020 CTL signed by the real SAST listing an old call manager certificate (same CN,
    another key): refused, the stored trust list kept, the real call manager registered."""
    lab, p = rig.lab, rig.lab.pki
    old_ccm = labpki.make_identity("ccm-2020", "CCM", cn=p.ccm.cn, key_size=1024)
    R = ctlbuild.Record
    c_host = lab.endpoints["callmanager"][0]
    data = ctlbuild.build_trust_list(
        p.sast, [R("SAST", p.sast2.cert), R("CCM", old_ccm.cert, dns=p.ccm.cn, ip=c_host),
                 R("TFTP", p.tftp.cert), R("CAPF", p.capf.cert)],
        hash_name=lab.hash_name, timestamp=T_2020)
    before = rig.store_hashes().get(CTL)
    _serve(Path(lab.tftp_root) / "CTLFile.tlv", data)
    t = rig.reboot()
    rej = rig.wait_for(lambda e: e.ev == "ctl_rejected" and e.get("kind") == "CTL", t, 60,
                       "ctl_rejected for the CTL")
    reg = rig.wait("registered", t, 60)
    rig.settled(reg.host, 30)
    kept = rig.store_hashes().get(CTL) == before
    reason = rej.event.get("reason") or ""
    ok = (reason.startswith("older than the CTL in force") and kept
          and reg.event.get("link") == "primary" and not _plain(rig, t))
    return ok, (f"ctl_rejected ({reason!r}), stored trust list {'kept' if kept else 'CHANGED'}, "
                f"registered with {reg.event.get('link')} (its certificate from the stored "
                f"CTL)"), {"reason": reason}


PROCEDURES: dict[str, Callable[..., Result]] = {
    "pinned_sast_rogue_tftp": pinned_sast_rogue_tftp, "config_replay": config_replay,
    "ctl_rollback": ctl_rollback,
}
CASES: list[dict[str, Any]] = [
    dict(fault="rogue TFTP: CTL from a rogue SAST + unsigned mode-1 config, SAST pinned",
         phase="first boot", expected="both refused, nothing stored, no plain TCP; registers "
         "over TLS once the real files are back", proc="pinned_sast_rogue_tftp",
         args={"mode": 1}, boot_first=False),
    dict(fault="rogue TFTP: CTL from a rogue SAST + unsigned mode-3 config, SAST pinned",
         phase="first boot", expected="both refused, nothing stored; registers over TLS once "
         "the real files are back", proc="pinned_sast_rogue_tftp", args={"mode": 3},
         boot_first=False),
    dict(fault="signed config for another phone (SEP0011223344FF, mode 1)", phase="boot",
         expected="refused (signed for another phone), stored config kept, TLS to the call "
         "manager", proc="config_replay", args={"how": "other"}),
    dict(fault="signed config older than the stored one (2020, mode 1)", phase="boot",
         expected="refused (older), stored config kept, TLS to the call manager",
         proc="config_replay", args={"how": "older"}),
    dict(fault="CTL signed by the real SAST, older than the stored one", phase="boot",
         expected="refused (older), stored trust list kept, registers with the call manager",
         proc="ctl_rollback"),
]
