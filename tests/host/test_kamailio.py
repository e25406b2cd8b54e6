"""The lab's SIP registrars: Kamailio over TLS 5061 at HQ (the call manager's) and in the
branch (the SRST router's), started by the lab in its namespaces (`Lab(sip=True)`).

A CPython phone (tests/host/sip_lab_support.py: ssl with the phone's lab certificate, the
digest computed here with hashlib) registers over mutual TLS; the status shows it; what is
not a phone of the lab (no certificate, another CA's, an unknown line, a wrong password,
another phone's certificate, plain TCP) is refused; tshark decodes the capture; SIPp
registers too. Skipped, with the reason, without Kamailio or namespaces."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sip_lab_support import (SipTlsClient, challenge_params, client_context,
                             digest_authorization, skip_without_kamailio, tls_relay)

from host_tools import ROOT
from host_tools import pki as labpki
from host_tools.lab import kamailio, netns
from host_tools.lab import lab as lablib
from host_tools.lab.kamailio_cfg import (RPC_DIR_MAX, TLS_PATH_MAX, SipConfigError, SipLine,
                                         SipServerConfig, render_cfg, render_openssl,
                                         render_tls)
from host_tools.lab.lab import Lab

MAC, OTHER = "001122AABBCC", "001122AABBDD"
PHONE_IP = "192.0.2.50"
ROLES = ("sip_callmanager", "sip_srst")
TSHARK = shutil.which("tshark")
SIPP = shutil.which("sipp")


@pytest.fixture(scope="module")
def sip_pki(tmp_path_factory) -> labpki.Pki:
    return labpki.make_pki(tmp_path_factory.mktemp("pki"), [MAC, OTHER])


@pytest.fixture(scope="module")
def stranger(tmp_path_factory) -> labpki.Identity:
    """A phone certificate with MAC's name, issued by a CA that is not the lab's CAPF."""
    d = tmp_path_factory.mktemp("stranger")
    ca = labpki.make_identity("other_ca", "CA", cn="Other-CAPF").write(d)
    return labpki.make_identity(f"SEP{MAC}", "PHONE", cn=f"SEP{MAC}", issuer=ca).write(d)


@pytest.fixture(scope="module")
def sip_lab(tmp_path_factory, sip_pki):
    if netns.unusable_reason():
        pytest.skip(netns.unusable_reason())
    skip_without_kamailio()
    with Lab(tmp_path_factory.mktemp("siplab") / "lab", mode="netns", macs=[MAC, OTHER],
             pki=sip_pki, sip=True, dhcp=False) as lab:
        lab.topology.set_phone_address(PHONE_IP)  # type: ignore[union-attr]
        yield lab


def _phone(lab: Lab, fn, *args):
    return lab.topology.run_in("phone", fn, *args)  # type: ignore[union-attr]


def _ctx(lab: Lab, mac: str = MAC, **kw) -> ssl.SSLContext:
    ident = lab.pki.phones[mac]  # type: ignore[union-attr]
    return client_context(ident.cert_path, ident.key_path, lab.keylog_path,
                          security_level=lab.tls_security_level, **kw)


def _register(lab: Lab, role: str, mac: str = MAC, expires: int | None = 600,
              user: str | None = None, password: str | None = None, cert_of: str | None = None):
    """(401, answer, certificate the server presented) for one digest registration."""
    line = lab.sip.lines[mac]  # type: ignore[union-attr]
    host, port = lab.endpoints[role]

    def run():
        with SipTlsClient(host, port, _ctx(lab, cert_of or mac)) as c:
            first, second = c.register_with_digest(user or line.user, password or line.password,
                                                   expires, device=f"SEP{mac}")
            return first, second, c.sock.getpeercert(binary_form=True)
    return _phone(lab, run)


# -- the configuration, without Kamailio ------------------------------------------------------
def _config(tmp_path: Path, **kw) -> SipServerConfig:
    base = dict(role="srst", host="192.0.2.1", cert=tmp_path / "srst.chain.pem",
                key=tmp_path / "srst.key.pem", client_ca=tmp_path / "capf.pem",
                realm="srst-branch-7", lines=[SipLine("1001", "s3cret", f"SEP{MAC}")])
    base.update(kw)
    return SipServerConfig(**base)  # type: ignore[arg-type]


def test_configuration_is_tls_only_mutual_and_keeps_no_password(tmp_path):
    c = _config(tmp_path, algorithm="SHA-256")
    cfg = render_cfg(c, tmp_path / "run")
    listens = [ln for ln in cfg.splitlines() if ln.startswith("listen=")]
    assert listens == ["listen=tls:192.0.2.1:5061"]
    assert "s3cret" not in cfg and c.lines[0].ha1("srst-branch-7", "SHA-256") in cfg
    assert 'modparam("usrloc", "db_mode", 0)' in cfg
    assert 'modparam("auth", "algorithm", "SHA-256")' in cfg
    tls = render_tls(c)
    server = tls.split("[client:default]")[0]
    for want in ("verify_certificate = yes", "require_certificate = yes", "method = TLSv1.2+",
                 f"certificate = {tmp_path / 'srst.chain.pem'}", f"ca_list = {tmp_path / 'capf.pem'}"):
        assert want in server, want
    assert render_openssl(c) is None
    assert "CipherString = DEFAULT:@SECLEVEL=1" in render_openssl(_config(tmp_path, security_level=1))


@pytest.mark.parametrize("bad", [dict(role="proxy"), dict(algorithm="SHA-512"),
                                 dict(realm='a"b'), dict(host="srst.example"),
                                 dict(lines=[SipLine("1001", "x", "SEP1"), SipLine("1001", "y", "SEP2")]),
                                 dict(lines=[SipLine("10 01", "x", "SEP1")]),
                                 dict(min_expires=0), dict(cert=Path('/tmp/a"b'))])
def test_configuration_refuses_what_kamailio_could_not_quote(tmp_path, bad):
    with pytest.raises(SipConfigError):
        _config(tmp_path, **bad)


def test_paths_kamailio_would_choke_on_are_refused_in_one_line(tmp_path):
    """Kamailio 5.6 corrupts its memory on a long RPC FIFO folder (jsonrpcs' 128-byte reply
    path) and refuses a long TLS file path (tls.cfg's 512-character values): refused before
    it starts. The lab never meets either (kamailio.py: a short private folder)."""
    long = tmp_path.joinpath(*["d" * 100] * 6)
    c = _config(tmp_path)
    with pytest.raises(SipConfigError, match="RPC FIFO folder"):
        render_cfg(c, long)
    cfg = render_cfg(c, long, rpc_dir=tmp_path / "rpc")
    assert f'"fifo_reply_dir", "{tmp_path / "rpc"}/"' in cfg and str(long) in cfg
    render_cfg(c, long, rpc_dir=Path("/" + "r" * (RPC_DIR_MAX - 1)))    # the longest taken
    assert len(str(long / "srst.key.pem")) > TLS_PATH_MAX
    with pytest.raises(SipConfigError, match="tls.cfg"):
        render_tls(_config(tmp_path, key=long / "srst.key.pem"))


def test_available_names_the_missing_package(monkeypatch, tmp_path):
    monkeypatch.setattr(kamailio, "binary", lambda: None)
    assert "kamailio-tls-modules" in (kamailio.available() or "")
    monkeypatch.setattr(kamailio, "binary", lambda: "/usr/sbin/kamailio")
    monkeypatch.setattr(kamailio, "_probe", lambda exe: ("5.6.3", tmp_path))
    assert "TLS module" in (kamailio.available() or "")


# -- the servers in the namespace lab ----------------------------------------------------------
@pytest.mark.netns
@pytest.mark.parametrize("role", ROLES)
def test_register_with_digest_over_mutual_tls(sip_lab, role):
    lab, p = sip_lab, sip_lab.pki
    assert lab.endpoints[role][1] == 5061
    first, ok, presented = _register(lab, role)
    ch = challenge_params(first.header("WWW-Authenticate"))
    assert ch["realm"] == ("ccmsipline" if role == "sip_callmanager" else p.srst.cn)
    assert ch["qop"] == "auth" and ch["algorithm"] == "MD5" and ch["nonce"]
    assert ok.status == 200, (ok.status, ok.reason)
    assert "expires=600" in ok.header("Contact")
    # the SRST router presents the very certificate its credentials service answers (the
    # one the phone pins from its configuration); the call manager its own
    assert presented == (p.srst.cert_der if role == "sip_srst" else p.ccm.cert_der)
    st = lab.status()
    assert st["phones"][MAC][role] == "registered"
    regs = st["servers"][role]["registrations"][lab.sip.lines[MAC].user]
    assert len(regs) == 1 and regs[0]["contact"].endswith(";transport=tls")
    assert 590 <= regs[0]["expires"] <= 600
    assert regs[0]["instance"] == f"<urn:uuid:00000000-0000-0000-0000-{MAC.lower()}>"


@pytest.mark.netns
def test_expiry_is_kept_within_the_registrars_bounds_and_zero_unregisters(sip_lab):
    lab = sip_lab
    line = lab.sip.lines[OTHER]
    host, port = lab.endpoints["sip_srst"]

    def run():
        with SipTlsClient(host, port, _ctx(lab, OTHER)) as c:
            out = []
            for expires in (7200, 30, 0):
                first = c.register(line.user, expires, device=f"SEP{OTHER}")
                ch = challenge_params(first.header("WWW-Authenticate"))
                auth = digest_authorization(ch, line.user, line.password, "REGISTER",
                                            f"sip:{host}")
                r = c.register(line.user, expires, auth, device=f"SEP{OTHER}")
                out.append((r.status, r.header("Contact"), r.header("Min-Expires")))
                if expires == 7200:
                    out.append(lab.status()["phones"][OTHER]["sip_srst"])
            return out
    longer, registered, brief, gone = _phone(lab, run)
    assert longer[0] == 200 and "expires=3600" in longer[1]          # max_expires granted
    assert registered == "registered"
    assert brief[0] == 423 and brief[2] == "60"                       # Interval Too Brief
    assert gone[0] == 200
    assert lab.status()["phones"][OTHER]["sip_srst"] is None


@pytest.mark.netns
@pytest.mark.parametrize("role", ROLES)
def test_a_wrong_line_password_or_certificate_is_refused(sip_lab, role):
    lab = sip_lab
    _, unknown, _ = _register(lab, role, user="4711")
    assert unknown.status == 403
    _, wrong, _ = _register(lab, role, password="not-the-password")
    assert wrong.status == 401 and challenge_params(wrong.header("WWW-Authenticate"))["nonce"]
    # OTHER's line with MAC's certificate: right password, wrong device
    _, borrowed, _ = _register(lab, role, mac=OTHER, cert_of=MAC)
    assert (borrowed.status, borrowed.reason) == (403, "Certificate Mismatch")
    # MAC's line (To) with OTHER's credentials (digest user)
    other = lab.sip.lines[OTHER]
    host, port = lab.endpoints[role]

    def as_other():
        with SipTlsClient(host, port, _ctx(lab)) as c:
            ch = challenge_params(c.register("1001").header("WWW-Authenticate"))
            auth = digest_authorization(ch, other.user, other.password, "REGISTER", f"sip:{host}")
            return c.register("1001", 600, auth)
    assert _phone(lab, as_other).status == 403
    assert lab.status()["phones"][OTHER][role] is None


@pytest.mark.netns
def test_options_are_answered_and_other_requests_are_not_implemented(sip_lab):
    lab = sip_lab
    host, port = lab.endpoints["sip_callmanager"]

    def run():
        with SipTlsClient(host, port, _ctx(lab)) as c:
            return [c.register("1001", None, method=m).status for m in ("OPTIONS", "INVITE")]
    assert _phone(lab, run) == [200, 501]


def _handshake(host: str, port: int, ctx: ssl.SSLContext) -> str:
    """What a phone gets: 'sip <status>' or the TLS error that ended it."""
    try:
        with SipTlsClient(host, port, ctx, timeout=3) as c:
            return f"sip {c.register('1001', 600).status}"
    except (ssl.SSLError, ConnectionError) as e:
        return f"refused: {e}"


@pytest.mark.netns
@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("tls13", [False, True], ids=["tls1.2", "tls1.3"])
def test_tls_without_a_lab_phone_certificate_is_refused(sip_lab, stranger, role, tls13):
    lab = sip_lab
    host, port = lab.endpoints[role]
    top = ssl.TLSVersion.TLSv1_3 if tls13 else ssl.TLSVersion.TLSv1_2
    none = client_context(None, None, max_version=top)
    other_ca = client_context(stranger.cert_path, stranger.key_path, max_version=top)
    for ctx in (none, other_ca):
        got = _phone(lab, _handshake, host, port, ctx)
        assert got.startswith("refused"), got
    assert _phone(lab, _handshake, host, port, _ctx(lab, max_version=top)) == "sip 401"


def _plain(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=3) as s:
        s.sendall(b"REGISTER sip:x SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        try:
            return s.recv(4096)
        except (ConnectionError, socket.timeout):
            return b""


@pytest.mark.netns
def test_only_tls_5061_listens_and_plain_sip_gets_no_answer(sip_lab):
    lab = sip_lab
    topo = lab.topology
    for host in ("branch", "hq"):
        out = subprocess.run([*topo.host_prefix(host), "ss", "-Hlntup"], capture_output=True,
                             text=True, check=True).stdout
        mine = [ln.split() for ln in out.splitlines() if "kamailio" in ln]
        assert mine and all(c[0] == "tcp" and c[4].endswith(":5061") for c in mine), out
    for role in ROLES:
        assert b"SIP/2.0" not in _phone(lab, _plain, *lab.endpoints[role])


@pytest.mark.netns
def test_the_run_folders_are_private_and_the_lab_describes_the_servers(sip_lab):
    lab = sip_lab
    assert _register(lab, "sip_srst")[1].status == 200
    desc = json.loads((lab.workdir / "lab.json").read_text())["sip"]
    assert desc["servers"]["srst"]["listen"] == "tls:192.0.2.1:5061"
    assert desc["lines"][MAC] == {"user": "1001", "device": f"SEP{MAC}"}
    for role in ("callmanager", "srst"):
        d = Path(desc["servers"][role]["run_dir"])
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        assert (d / "kamailio.pid").read_text().strip() == str(lab.sip.servers[role].proc.pid)
    log = Path(desc["servers"]["srst"]["log"]).read_text()
    assert f"lab: REGISTER 1001 from {PHONE_IP}:" in log and f"(SEP{MAC}) saved" in log
    lines = lab.workdir / "sip-lines.json"
    assert stat.S_IMODE(lines.stat().st_mode) == 0o600
    assert json.loads(lines.read_text())[MAC]["password"] == lab.sip.lines[MAC].password
    assert lab.failures() == []


@pytest.mark.netns
@pytest.mark.skipif(TSHARK is None, reason="tshark not installed (apt-get install tshark)")
def test_tshark_decodes_sip_over_tls_with_the_key_log(sip_lab, tmp_path):
    lab = sip_lab
    lab.record_start(tmp_path / "sip.pcap")
    try:
        for role in ROLES:
            assert _register(lab, role)[1].status == 200
    finally:
        files = lab.record_stop()
    tls = ["-r", files["pcap"], "-o", "tcp.check_checksum:FALSE",
           "-o", f"tls.keylog_file:{files['keylog']}"]
    rows = subprocess.run([TSHARK, *tls, "-Y", "sip", "-T", "fields", "-e", "ip.src",
                           "-e", "tcp.srcport", "-e", "ip.dst", "-e", "tcp.dstport",
                           "-e", "sip.Method", "-e", "sip.Status-Code"],
                          capture_output=True, text=True, check=True).stdout.splitlines()
    seen = [tuple(r.split("\t")) for r in rows]
    for server in ("203.0.113.10", "192.0.2.1"):
        sent = [r for r in seen if r[2:4] == (server, "5061")]
        answered = [r for r in seen if r[:2] == (server, "5061")]
        assert {r[0] for r in sent + answered} - {server} == {PHONE_IP}, rows
        assert [r[4] for r in sent] == ["REGISTER", "REGISTER"], rows
        assert [r[5] for r in answered] == ["401", "200"], rows
    bad = subprocess.run([TSHARK, *tls, "-Y", "_ws.malformed || _ws.expert.severity >= error"],
                         capture_output=True, text=True, check=True).stdout
    assert bad.strip() == "", bad[:2000]


@pytest.mark.netns
@pytest.mark.skipif(SIPP is None, reason="SIPp not installed (Debian: sip-tester)")
def test_sipp_registers_through_a_tls_relay(sip_lab):
    """Debian's SIPp has no TLS: it speaks TCP to a relay in the phone namespace that holds the
    phone's certificate. SIPp computes the digest answer itself."""
    lab = sip_lab
    line = lab.sip.lines[MAC]
    ready = threading.Event()
    relay = lab.topology.phone_ns[0].thread(  # type: ignore[union-attr]
        tls_relay, ("127.0.0.1", 15061), lab.endpoints["sip_callmanager"], _ctx(lab), ready)
    assert ready.wait(5)
    r = subprocess.run([*lab.phone_prefix(), SIPP, "127.0.0.1:15061", "-t", "t1", "-nostdin",
                        "-sf", str(ROOT / "tests/host/sipp/register.xml"), "-s", line.user,
                        "-au", line.user, "-ap", line.password, "-i", "127.0.0.1", "-m", "1",
                        "-timeout", "10", "-timeout_error", "-trace_err",
                        "-error_file", str(lab.workdir / "sipp-errors.log")],
                       capture_output=True, text=True, timeout=30, cwd=lab.workdir)
    relay.join(5)
    errors = (lab.workdir / "sipp-errors.log")
    (lab.workdir / "sipp-out.log").write_text(r.stdout + r.stderr)
    assert r.returncode == 0, (r.stdout[-1500:], errors.read_text() if errors.exists() else "")
    regs = lab.status()["servers"]["sip_callmanager"]["registrations"][line.user]
    assert any(c["user_agent"] == "SIPp (phonelab test)" for c in regs), regs


@pytest.mark.netns
def test_sha256_digest(tmp_path, sip_pki):
    """RFC 8760: the challenge says algorithm=SHA-256 and a SHA-256 answer registers."""
    if netns.unusable_reason():
        pytest.skip(netns.unusable_reason())
    skip_without_kamailio()
    with Lab(tmp_path / "lab", mode="netns", macs=[MAC], pki=sip_pki, sip=True, dhcp=False,
             sip_algorithm="SHA-256") as lab:
        lab.topology.set_phone_address(PHONE_IP)  # type: ignore[union-attr]
        for role in ROLES:
            first, ok, _ = _register(lab, role)
            assert challenge_params(first.header("WWW-Authenticate"))["algorithm"] == "SHA-256"
            assert ok.status == 200, (ok.status, ok.reason)


def test_loopback_lab_reaches_hq_through_the_wan_relay(tmp_path, sip_pki):
    """No namespaces: both servers on the lab's 127.0.0.x addresses, the call manager's
    behind the WAN relay, and a cut WAN cuts SIP to HQ but not to the branch."""
    skip_without_kamailio()
    with Lab(tmp_path / "lab", mode="loopback", macs=[MAC], pki=sip_pki, sip=True) as lab:
        a = lab.topology.addr  # type: ignore[union-attr]
        assert lab.endpoints["sip_srst"][0] == a.srst
        assert lab.endpoints["sip_callmanager"][0] == a.hq_front != a.hq_bind
        for role in ROLES:
            assert _register(lab, role)[1].status == 200
        lab.wan_cut("unreachable")
        host, port = lab.endpoints["sip_callmanager"]
        with pytest.raises(OSError):
            socket.create_connection((host, port), timeout=2).close()
        assert _register(lab, "sip_srst")[1].status == 200
        lab.wan_restore()
        st = lab.status()
        assert st["phones"][MAC]["sip_callmanager"] == st["phones"][MAC]["sip_srst"] == "registered"
    assert not [p for p in lablib._pids_using(tmp_path) if b"kamailio" in
                Path(f"/proc/{p}/cmdline").read_bytes()]


def test_the_registrars_run_in_a_very_long_work_folder(tmp_path):
    """The work folder's length never matters (pytest's basetemp, a scenario's folder): here
    over 600 characters, the PKI in it too. Kamailio's RPC FIFO and its TLS files' links
    are in a short private folder of each server's, gone when the lab stops."""
    skip_without_kamailio()
    deep = tmp_path.joinpath(*[f"a-long-folder-name-{i}-" + "x" * 80 for i in range(6)])
    pki = labpki.make_pki(deep / "pki", [MAC])
    assert len(str(pki.srst.key_path)) > TLS_PATH_MAX
    with Lab(deep / "lab", mode="loopback", macs=[MAC], pki=pki, sip=True) as lab:
        servers = lab.sip.servers  # type: ignore[union-attr]
        shorts = [k.short_dir for k in servers.values()]
        for k in servers.values():
            assert str(k.run_dir).startswith(str(deep)) and k.short_dir is not None
            assert len(str(k.short_dir)) <= RPC_DIR_MAX
            assert stat.S_IMODE(k.short_dir.stat().st_mode) == 0o700
            assert (k.run_dir / "rpc.fifo").resolve() == k.short_dir / "rpc.fifo"
        for role in ROLES:
            assert _register(lab, role)[1].status == 200
        st = lab.status()
        assert st["phones"][MAC]["sip_callmanager"] == st["phones"][MAC]["sip_srst"] == "registered"
        assert lab.failures() == []
    assert not any(d.exists() for d in shorts if d is not None)
    assert not [k for k in servers.values() if k.running or (k.run_dir / "rpc.fifo").is_symlink()]


def test_a_pki_with_1024_bit_keys_registers_with_a_warning(tmp_path):
    """An older cluster's 1024-bit CAPF and phone certificates: Kamailio allows them as the
    simulators do (OpenSSL security level 1), and the lab says so."""
    skip_without_kamailio()
    weak = labpki.make_pki(tmp_path / "pki", [MAC], key_size=1024)
    with Lab(tmp_path / "lab", mode="loopback", macs=[MAC], pki=weak, sip=True) as lab:
        assert lab.tls_security_level == 1 and lab.warnings
        for role in ROLES:
            assert _register(lab, role)[1].status == 200


KILLED = """
import sys, time
from pathlib import Path
from host_tools import pki as labpki
from host_tools.lab import kamailio, lab as lablib
from host_tools.lab.kamailio import Kamailio
from host_tools.lab.kamailio_cfg import SipServerConfig, lab_lines
kamailio.short_base = lambda: Path(sys.argv[1])     # its short folder beside the run's
run = lablib.run_folder("kam", sys.argv[1])
p = labpki.load_pki(sys.argv[2])
cfg = SipServerConfig(role="srst", host="127.0.0.1", port=int(sys.argv[3]),
                      cert=p.srst.server_cert, key=p.srst.key_path, client_ca=p.capf.cert_path,
                      realm="r", lines=lab_lines(["SEP001122AABBCC"]))
k = Kamailio(cfg, run / "sip-srst").start()
print(run, k.short_dir, flush=True)
time.sleep(60)
"""


def test_a_killed_labs_kamailio_does_not_outlive_it(tmp_path, sip_pki):
    """SIGKILL the process that started Kamailio: Kamailio ends with it (parent-death signal)
    and the next lab's sweep removes the run folder and Kamailio's short folder (its RPC
    FIFO); nothing of it is left."""
    skip_without_kamailio()
    base = tmp_path / "tmp"
    base.mkdir()
    port = kamailio.free_port("127.0.0.1")
    proc = subprocess.Popen([sys.executable, "-c", KILLED, str(base), str(sip_pki.out_dir),
                             str(port)], stdout=subprocess.PIPE, text=True, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        said = proc.stdout.readline().split()  # type: ignore[union-attr]
        assert len(said) == 2, proc.communicate(timeout=5)
        run, short = map(Path, said)
        assert run.is_dir() and (short / "rpc.fifo").exists()
        pids = lablib._pids_using(run)
        assert len(pids) > 1       # the main process and its workers
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert netns.wait_for(lambda: not _alive(pids), 5), [_state(p) for p in pids]
    lablib.sweep_stale_runs(base)
    assert not run.exists() and not short.exists()


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return "gone"


def _alive(pids: list[int]) -> bool:
    return any(_state(p) not in ("gone", "Z", "X") for p in pids)


def test_stop_leaves_no_worker_behind(tmp_path):
    """A main process that has to be killed (here: it ignores SIGTERM, being stopped) leaves
    no worker to init: stop() takes the workers it saw too."""
    skip_without_kamailio()
    from host_tools.lab.kamailio import Kamailio, _children, free_port
    from host_tools.lab import kamailio_cfg
    ident = labpki.make_identity("k", "SRST", cn="k").write(tmp_path / "id")
    cfg = kamailio_cfg.SipServerConfig(role="srst", host="127.0.0.1", port=free_port("127.0.0.1"),
                                       cert=ident.cert_path, key=ident.key_path,
                                       client_ca=ident.cert_path, realm="k",
                                       lines=tuple(kamailio_cfg.lab_lines(["SEP001122AABBCC"])))
    k = Kamailio(cfg, tmp_path / "k").start()
    main = k.proc.pid
    workers = _children(main)
    assert workers
    os.kill(main, signal.SIGSTOP)          # SIGTERM is not seen: stop() must kill it
    k.stop()
    alive = [p for p in workers if Path(f"/proc/{p}").exists()
             and b"kamailio" in Path(f"/proc/{p}/cmdline").read_bytes()]
    assert alive == [], alive
