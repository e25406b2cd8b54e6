"""phone.sip and phone.sipreg under MicroPython against a SIP server we did not write:
Kamailio's registrar and auth modules (Debian `kamailio`) on loopback TCP. The wire format is
what is tested here (TLS is the link's): digest with MD5 and SHA-256 (RFC 8760), with qop=auth
and without qop, a 407 from a proxy, a wrong password, the granted expiry (capped by the
registrar), 423 with Min-Expires, un-REGISTER, Cisco's keepalive REGISTER and RFC 5626's CRLF
ping. Not qop=auth-int: Kamailio does not compute H(entity-body) when it checks one
(docs/protocols.md, "SIP"). Skipped when Kamailio is not installed."""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from host_tools import fwbuild, micropython

KAMAILIO = shutil.which("kamailio") or (
    "/usr/sbin/kamailio" if Path("/usr/sbin/kamailio").exists() else None)
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
pytestmark = pytest.mark.skipif(KAMAILIO is None or not (MODULES / "auth.so").exists(),
                                reason="Kamailio not installed (Debian: kamailio)")

# The To user picks the challenge: 1000 without qop, 1001 qop=auth, 1003 a proxy's 407
# (qop=auth); every line's password is "secret".
CONFIG = """#!KAMAILIO
debug=1
log_stderror=yes
children=1
tcp_children=1
listen=tcp:127.0.0.1:{port}
auto_aliases=no
mpath="{modules}/"
loadmodule "sl.so"
loadmodule "tm.so"
loadmodule "pv.so"
loadmodule "auth.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
modparam("auth", "algorithm", "{algorithm}")
modparam("registrar", "max_expires", 1800)
modparam("registrar", "min_expires", 60)
modparam("registrar", "min_expires_mode", 1)
request_route {{
    if (method != "REGISTER") {{
        sl_send_reply("405", "Method Not Allowed");
        exit;
    }}
    if ($tU == "1003") {{
        if (!pv_proxy_authenticate("$td", "secret", "0")) {{
            proxy_challenge("$td", "1");
            exit;
        }}
    }} else if (!pv_www_authenticate("$td", "secret", "0")) {{
        if ($tU == "1000") {{
            www_challenge("$td", "0");
        }} else {{
            www_challenge("$td", "1");
        }}
        exit;
    }}
    save("location");       # answers by itself, errors too (a second answer would follow)
}}
"""

SCRIPT = r"""
import asyncio, json, sys
from phone import sip, sipreg
PORT = int(sys.argv[1])

def out(**kw):
    print(json.dumps(kw))

async def exchange(w, rd, data):
    w.write(data)
    await w.drain()
    while True:
        mid = await asyncio.wait_for_ms(rd.aread(), 3000)
        if mid != sip.PONG and mid != 100:
            return mid

async def line(user, password='secret', expires=3600):
    reg = sipreg.Reg(user, 'lab.example', '127.0.0.1', 5061, '00:11:22:AA:BB:%02X' % int(user[-2:]),
                     password=password, device='SEP001122AABB00', model='307', expires=expires)
    r, w = await asyncio.open_connection('127.0.0.1', PORT)
    rd = sip.Reader(r, reg=reg)
    seen = []
    mid = await exchange(w, rd, reg.register())
    seen.append(mid)
    while mid in (401, 407) and len(seen) < 4:
        why = reg.answer(rd.msg)
        if why:
            seen.append(why)
            break
        seen.append(reg.challenge['algorithm'] + '/' + str(reg.challenge['qop']))
        mid = await exchange(w, rd, reg.register())
        seen.append(mid)
    res = dict(user=user, seen=seen, granted=rd.msg.granted, min_expires=rd.msg.min_expires)
    if mid == 200:
        # a refresh with the nonce held, Cisco's keepalive REGISTER, the CRLF ping, un-REGISTER
        res['refresh'] = [await exchange(w, rd, reg.register()), rd.msg.granted]
        res['keepalive'] = [await exchange(w, rd, reg.register(keepalive=True)), rd.msg.granted]
        w.write(sip.PING)
        await w.drain()
        res['ping'] = await asyncio.wait_for_ms(rd.aread(), 3000)
        res['unregister'] = [await exchange(w, rd, reg.register(0)), rd.msg.granted]
    w.close()
    out(**res)

async def main():
    for user in ('1000', '1001', '1003'):
        await line(user)
    await line('1001', password='wrong')
    await line('1001', expires=30)

asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def kamailio(tmp_path, request):
    port = _free_port()
    cfg = tmp_path / "kamailio.cfg"
    cfg.write_text(CONFIG.format(port=port, modules=MODULES, algorithm=request.param))
    log = open(tmp_path / "kamailio.log", "w")
    proc = subprocess.Popen([KAMAILIO, "-f", str(cfg), "-DD", "-E", "-Y", str(tmp_path)],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail("Kamailio did not start:\n" + (tmp_path / "kamailio.log").read_text())
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.parametrize("kamailio", ["MD5", "SHA-256"], indirect=True)
def test_register_against_kamailio(kamailio, tmp_path, request):
    alg = request.node.callspec.params["kamailio"]
    (tmp_path / "run.py").write_text(SCRIPT)
    env = fwbuild.environ()
    env["MICROPYPATH"] = ":".join([".frozen", str(fwbuild.compiled())])
    p = subprocess.run(micropython.command([str(tmp_path / "run.py"), str(kamailio)], heap="128K"),
                       env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    got = [json.loads(x) for x in p.stdout.splitlines()]
    by = {(g["user"], i): g for i, g in enumerate(got)}
    for i, (user, qop, status) in enumerate((("1000", "None", 401), ("1001", "auth", 401),
                                             ("1003", "auth", 407))):
        g = by[(user, i)]
        assert g["seen"] == [status, f"{alg}/{qop}", 200], g
        assert g["granted"] == 1800, g                      # max_expires: less than asked
        assert g["refresh"] == [200, 1800], g
        assert g["keepalive"] == [200, None], g             # Expires 0: no binding left
        assert g["ping"] == 0, g                            # sip.PONG
        assert g["unregister"] == [200, None], g
    wrong = by[("1001", 3)]
    assert wrong["seen"] == [401, f"{alg}/auth", 401,
                             "401: credentials for 1001 refused (realm lab.example)"], wrong
    brief = by[("1001", 4)]
    assert brief["seen"] == [401, f"{alg}/auth", 423] and brief["min_expires"] == 60, brief
