"""SHA-512 at ESP32 speed: phone.sha512's two engines (viper native code, and the pure-Python
fallback for ports without a native emitter) in KB/s, and the time to verify an 8 KB
SHA-512-signed CTL (phone.ctl.load_trust: parse, hash, RSA), on this host and under the
calibrated ESP32 CPU quota (host_tools/vboard/cpuquota.py, profile esp32@160), beside a
projection from the published ratio (ESP32 MicroPython is 80-180x slower than this host).

MicroPython's hashlib has no SHA-512 on any port, so the ESP32 runs phone.sha512. Caveats:
the quota is calibrated on interpreted code (pystone); viper code and the big-int RSA step
scale differently on an Xtensa core (32-bit words: mpz digits of 16 bits instead of 32, so
pow() does about 4x the digit work), so the quota and the projection are estimates, not a
board measurement. Target (issue 12): the 8 KB CTL verified in under 2 s at ESP32 speed."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

from bench import _rig
from host_tools import ctlbuild, micropython, pki as labpki
from host_tools.vboard import cpuquota

PLACE = "alone"
SCRIPT = Path(__file__).with_name("_mp_sha512.py")
HEAP = "96K"
PROFILE = "esp32@160"
RATIO = (80, 180)          # published: ESP32 MicroPython vs this host (issue 12, item 6)
TARGET_S = 2.0


def _trust_list(work: Path, key_size: int) -> tuple[Path, int]:
    p = labpki.make_pki(work / f"pki{key_size}", key_size=key_size)
    recs = [ctlbuild.Record(role, i.cert) for role, i in
            (("SAST", p.sast2), ("CCM", p.ccm), ("TFTP", p.tftp), ("CCM+TFTP", p.ccm_tftp),
             ("CAPF", p.capf))]
    data = ctlbuild.build_trust_list(p.sast, recs, hash_name="sha512", timestamp=0)
    path = work / f"CTLFile-{key_size}.tlv"
    path.write_bytes(data)
    return path, len(data)


def _measure(work: Path, ctls: list[Path], quota: cpuquota.Quota | None, quick: bool) -> list[dict]:
    hash_kb = {"native": 256, "python": 8 if quota else 64}
    args = work / ("args-quota.json" if quota else "args.json")
    args.write_text(json.dumps({"hash_kb": hash_kb, "ctls": [str(c) for c in ctls],
                                "reps": 1 if quick and quota else 3}))
    return _rig.script_records(micropython.command([str(SCRIPT), str(args)], heap=HEAP), quota,
                               "sha512")


def _kbs(rec: dict) -> float:
    return round(rec["kb"] / (rec["us"] / 1e6), 1)


def run(quick: bool) -> dict:
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="phonelab-sha512-") as tmp:
        work = Path(tmp)
        sizes = [2048] if quick else [2048, 4096]
        built = [_trust_list(work, k) for k in sizes]
        ctls = [p for p, _ in built]
        fast = _measure(work, ctls, None, quick)
        slow: list[dict] = []
        quota = None
        try:
            quota = cpuquota.quota_for(PROFILE)
            cpuquota.detect()
            slow = _measure(work, ctls, quota, quick)
        except cpuquota.CpuQuotaError as e:
            notes.append(f"not measured under the quota: {e}")
            quota = None
    q_by = {(r["what"], r["engine"], r.get("path")): r for r in slow}
    rows: list[list] = []
    figures: dict = {"hash": {}, "ctl": {}}
    for r in fast:
        q = q_by.get((r["what"], r["engine"], r.get("path")))
        if r["what"] == "hash":
            host = _kbs(r)
            proj = (round(host / RATIO[1], 1), round(host / RATIO[0], 1))
            under = _kbs(q) if q else None
            figures["hash"][r["engine"]] = {"host_kb_s": host, "projected_kb_s": proj,
                                            "quota_kb_s": under}
            rows.append([f"SHA-512 {r['engine']} (KB/s)", host, f"{proj[0]}-{proj[1]}",
                         under if under is not None else "-"])
        else:
            size = dict((str(p), n) for p, n in built)[r["path"]]
            bits = int(Path(r["path"]).stem.split("-")[1])
            host_s = r["us"] / 1e6
            proj = (round(host_s * RATIO[0], 2), round(host_s * RATIO[1], 2))
            under = round(q["us"] / 1e6, 2) if q else None
            key = f"{bits}-bit {r['engine']}"
            figures["ctl"][key] = {"bytes": size, "host_s": round(host_s, 4),
                                   "projected_s": proj, "quota_s": under,
                                   "error": r.get("error") or (q or {}).get("error")}
            rows.append([f"verify {size / 1024:.1f} KB CTL, {bits}-bit SAST, {r['engine']} (s)",
                         round(host_s, 4), f"{proj[0]}-{proj[1]}",
                         under if under is not None else "-"])
            if r.get("error"):
                notes.append(f"{key}: refused: {r['error']}")
    notes.append(f"projection: host figure x {RATIO[0]}-{RATIO[1]} (published ESP32 "
                 f"MicroPython ratio); quota: {PROFILE}"
                 + (f" ({quota.quota_us}/{quota.period_us} us, {quota.factor:.0f}x)" if quota
                    else " (not available)"))
    return {"title": "SHA-512 and SHA-512 CTL verification",
            "columns": ["", "host", f"ESP32 projected ({RATIO[0]}-{RATIO[1]}x)",
                        f"under {PROFILE} quota"],
            "rows": rows, "notes": notes, "figures": figures, "ratio": list(RATIO),
            "profile": PROFILE, "target_s": TARGET_S,
            "quota_us": quota.quota_us if quota else None,
            "period_us": quota.period_us if quota else None}


def headline(res: dict) -> list[tuple[str, str, str]]:
    out = []
    h = res.get("figures", {}).get("hash", {})
    for eng in ("native", "python"):
        f = h.get(eng)
        if f:
            q = f"{f['quota_kb_s']} KB/s under the quota" if f.get("quota_kb_s") else "no quota"
            out.append((f"SHA-512 {eng} engine", f"{f['host_kb_s']} KB/s host; {q}",
                        f"projected {f['projected_kb_s'][0]}-{f['projected_kb_s'][1]} KB/s"))
    c = res.get("figures", {}).get("ctl", {}).get("2048-bit native")
    if c:
        at = f"{c['quota_s']} s under the quota" if c.get("quota_s") is not None else \
            f"{c['projected_s'][1]} s projected"
        out.append((f"verify a {c['bytes'] / 1024:.1f} KB SHA-512 CTL at ESP32 speed", at,
                    f"target < {res.get('target_s', TARGET_S)} s"))
    return out
