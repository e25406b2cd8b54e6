"""TLS handshake time of the phone at host speed and under the calibrated ESP32 CPU quota,
beside published ESP32 handshake times.

The phone's mutual TLS as the agent opens it (phone.link.context: the call manager's
certificate pinned, the phone's certificate and 2048-bit RSA key from the lab PKI) against
the lab's call manager simulator on loopback, driven by bench/_mp_handshake.py under
MicroPython; the figure is the time of wrap_socket() (the whole handshake) on a connected
socket, each handshake after 1 s idle as the agent's are. Under the quota, Mbed TLS is
native C held to the same budget as the interpreter, while on an ESP32 Mbed TLS's RSA and
bignum work has hardware help (the MPI accelerator) and the AES/SHA engines: what the
uniform quota gives is not an ESP32 figure, only how long the board's loop is blocked here.

Published ESP32 figures (PUBLISHED_S): MicroPython on ESP32 `ssl.wrap_socket` 1.18-1.28 s
(micropython/micropython-esp32 issue 131, 2017, server authentication only); Mbed TLS on
ESP32 "~2 s for 2048 RSA keys" (espressif/esp-idf issue 630, 2017); ESP32-WROOM-32 with a
client certificate, IDF 4.4, up to 2.5 s (espressif/esp-idf issue 8852, 2022)."""
from __future__ import annotations

import json
import statistics
import tempfile
from pathlib import Path

from bench import _rig
from host_tools import micropython, pki as labpki
from host_tools.lab.callmanager import CallManager
from host_tools.lab.nsloop import NsLoop
from host_tools.vboard import cpuquota

PLACE = "alone"
SCRIPT = Path(__file__).with_name("_mp_handshake.py")
MAC = "001122AABBCC"
HEAP = "96K"
PROFILE = "esp32@160"
PUBLISHED_S = (
    ("MicroPython ESP32, ssl.wrap_socket (server auth)", 1.18, 1.28,
     "micropython/micropython-esp32#131"),
    ("Mbed TLS ESP32, 2048-bit RSA", 2.0, 2.0, "espressif/esp-idf#630"),
    ("ESP32-WROOM-32, client certificate (IDF 4.4)", 2.0, 2.5, "espressif/esp-idf#8852"),
)


def handshakes(work: Path, p: labpki.Pki, port: int, reps: int,
               quota: cpuquota.Quota | None) -> list[dict]:
    phone = p.phones[MAC]
    files = {}
    for name, data in (("anchor", p.ccm.cert_der), ("cert", phone.cert_der), ("key", phone.key_der)):
        files[name] = work / f"{name}.der"
        files[name].write_bytes(data)
    args = work / "args.json"
    args.write_text(json.dumps({"host": "127.0.0.1", "port": port, "cn": p.ccm.cn, "reps": reps,
                                "idle_ms": 1000, **{k: str(v) for k, v in files.items()}}))
    cmd = micropython.command([str(SCRIPT), str(args)], heap=HEAP)
    return _rig.script_records(cmd, quota, "handshake")


def _summary(recs: list[dict]) -> dict:
    ok = [r["tls_us"] / 1e6 for r in recs if "tls_us" in r]
    errors = [r["error"] for r in recs if "error" in r]
    return {"n": len(ok), "median_s": round(statistics.median(ok), 3) if ok else None,
            "min_s": round(min(ok), 3) if ok else None, "max_s": round(max(ok), 3) if ok else None,
            "errors": errors}


def run(quick: bool) -> dict:
    reps = 3 if quick else 8
    try:
        quota = cpuquota.quota_for(PROFILE)
        cpuquota.detect()
    except cpuquota.CpuQuotaError as e:
        return {"title": "TLS handshake", "columns": ["not run"], "rows": [[str(e)]]}
    loop = NsLoop("cpu-handshake").start()   # the simulator's loop, in a thread
    with tempfile.TemporaryDirectory(prefix="phonelab-hs-") as tmp:
        work = Path(tmp)
        p = labpki.make_pki(work / "pki", phone_macs=[MAC])
        cm = CallManager(cert=p.ccm.cert_path, key=p.ccm.key_path, phone_ca=p.capf.cert_der,
                         port=0, devices=[f"SEP{MAC}"])
        loop.run(cm.start())
        try:
            port = cm.ports["tls"]
            fast = _summary(handshakes(work, p, port, reps, None))
            slow = _summary(handshakes(work, p, port, reps, quota))
        finally:
            loop.run(cm.stop())
            loop.stop()
    rows = [["host speed", fast["median_s"], fast["min_s"], fast["max_s"], fast["n"]],
            [f"{PROFILE} quota ({quota.quota_us}/{quota.period_us} us)", slow["median_s"],
             slow["min_s"], slow["max_s"], slow["n"]]]
    rows += [[f"published: {name} [{src}]", f"{lo}-{hi}" if lo != hi else lo, "", "", ""]
             for name, lo, hi, src in PUBLISHED_S]
    notes = ["mutual TLS, 2048-bit RSA phone key, pinned call manager certificate "
             "(phone.link.context), 1 s idle before each handshake"]
    for label, s in (("host speed", fast), ("quota", slow)):
        if s["errors"]:
            notes.append(f"{label}: {len(s['errors'])} failed: {s['errors'][0]}")
    return {"title": "TLS handshake (s)", "columns": ["", "median", "min", "max", "n"],
            "rows": rows, "notes": notes, "host": fast, "quota": slow,
            "quota_us": quota.quota_us, "period_us": quota.period_us,
            "published": [dict(zip(("what", "low_s", "high_s", "source"), x)) for x in PUBLISHED_S]}


def headline(res: dict) -> list[tuple[str, str, str]]:
    if "quota" not in res:
        return [("TLS handshake under the ESP32 quota", "not run", str(res["rows"][0][0]))]
    return [("mutual TLS handshake (2048-bit key), esp32@160 quota",
             f"{res['quota']['median_s']} s (host speed {res['host']['median_s']} s)",
             "ESP32 published: 1.2-1.3 s server auth, 2-2.5 s with a client certificate")]


if __name__ == "__main__":
    import sys
    res = run("--quick" in sys.argv)
    print(json.dumps(res, indent=2))
