"""The configuration files of the lab's Kamailio (`kamailio.py` runs it): kamailio.cfg and
tls.cfg for one SIP registrar, the call manager's at HQ or the SRST router's in the branch.

    cfg = SipServerConfig(role="srst", host="192.0.2.1", cert=pki.srst.server_cert,
                          key=pki.srst.key_path, client_ca=pki.capf.cert_path,
                          realm="srst-branch-7", lines=[SipLine("1001", "pw", "SEP001122AABBCC")])
    write_config(cfg, run_dir, rpc_dir)     # run_dir/kamailio.cfg, run_dir/tls.cfg

What the server does (docs/lab.md, "The SIP servers"; docs/decisions.md, "Issue 15"):
- SIP over TLS on `host:port` (5061) and nothing else: no UDP or TCP listener;
- mutual TLS: the server's certificate (chain file), a client certificate issued by
  `client_ca` (the CAPF, the phones' CA) required and verified;
- REGISTER only: digest authentication (RFC 2617 / RFC 3261; SHA-256 per RFC 8760 when
  `algorithm="SHA-256"`) against each line's HA1, kept in an in-memory htable filled when
  the module starts (the password itself is never written); the digest user must be the To
  user, and (`match_cert`) the TLS certificate's CN the line's device, SEP<MAC>;
- registrar + usrloc in memory (db_mode 0), one contact per AOR (a phone that reconnects
  replaces its old contact), expiry within [min_expires, max_expires] (below: 423 Interval Too Brief with
  Min-Expires, RFC 3261 10.3; above: max_expires granted);
- OPTIONS to the server answered 200, ACK dropped, any other request 501;
- its status over JSON-RPC on a FIFO in `rpc_dir`, a folder with a short path (`kamrpc.py`;
  RPC_PATH_MAX: Kamailio 5.6's jsonrpcs overflows a 128-byte buffer on a long one); the TLS
  files' paths at most TLS_PATH_MAX (kamailio.py links them from that folder).
"""
from __future__ import annotations

import hashlib
import re
import resource
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from host_tools.lab.kamrpc import REPLY_NAME_MAX

ROLES = ("callmanager", "srst")
SECURE_PORT = 5061                 # SIP over TLS (RFC 3261: 5060 + 1)
ALGORITHMS = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}
CUCM_REALM = "ccmsipline"          # CUCM's default cluster security realm
RPC_FIFO = "rpc.fifo"
# jsonrpcs (Kamailio 5.6) builds a reply FIFO's path, fifo_reply_dir + the client's name, in
# a 128-byte buffer: past 127 characters it refuses the reply ("Reply fifo filename too
# long"), and a fifo_reply_dir of 128 or more overflows the buffer when its RPC process
# starts (memory corruption, Kamailio exits). Its other paths (cfg, TLS files) have no limit.
RPC_PATH_MAX = 127
RPC_DIR_MAX = RPC_PATH_MAX - 1 - REPLY_NAME_MAX     # the folder, without its trailing '/'
# tls.cfg's parser (Kamailio's cfg_parser) takes a value of at most 512 characters ("Token
# too long" past it, and Kamailio exits): the TLS files' paths. kamailio.cfg has no limit.
TLS_PATH_MAX = 512
TLS_FILES = ("cert", "key", "client_ca")            # SipServerConfig's fields in tls.cfg
CFG_NAME = "kamailio.cfg"
TLS_NAME = "tls.cfg"
OPENSSL_NAME = "openssl.cnf"

_TOKEN = re.compile(r"^[A-Za-z0-9._~-]{1,64}$")   # users, realms, device names


class SipConfigError(ValueError):
    pass


@dataclass(frozen=True)
class SipLine:
    """One phone line: its name (Cisco: the directory number, also the digest user, authName)
    and password, and the device (SEP<MAC>) whose certificate may register it."""
    user: str
    password: str = field(repr=False)
    device: str

    def ha1(self, realm: str, algorithm: str = "MD5") -> str:
        """H(user:realm:password), the hex digest a server stores (RFC 2617 3.2.2.2)."""
        return ALGORITHMS[algorithm](f"{self.user}:{realm}:{self.password}".encode()).hexdigest()


def lab_lines(devices: Iterable[str], first: int = 1001) -> list[SipLine]:
    """One line per device, directory numbers from `first` on, each with a fresh password."""
    return [SipLine(str(first + i), secrets.token_urlsafe(12), d.upper())
            for i, d in enumerate(devices)]


@dataclass(frozen=True)
class SipServerConfig:
    """role:        'callmanager' (HQ) or 'srst' (branch)
    host, port:     the TLS listener (5061)
    cert, key:      the server's certificate (or chain file, leaf first) and key, PEM
    client_ca:      the CA a phone's certificate must chain to (the CAPF)
    realm:          the digest realm (CUCM's is "ccmsipline")
    lines:          who may register
    algorithm:      "MD5" or "SHA-256" (Kamailio 5.6's auth module: one per server)
    qop:            challenges carry qop="auth" (RFC 3261 recommends it)
    match_cert:     the registering certificate's CN must be the line's device
    min/default/max_expires: the registrar's bounds (423 below min, max granted above max)
    tcp_workers:    Kamailio's TLS worker processes (1: Kamailio 5.6 with OpenSSL 3 corrupts
                    its shared memory when more than one runs TLS; docs/decisions.md)
    max_connections: its TCP and TLS connection limits (tcp_max_connections,
                    tls_max_connections; Kamailio's default 2048); open_files_limit follows
                    them when the process's soft limit is lower (`open_files`)
    security_level: OpenSSL's, 1 for a PKI with keys under 2048 bits (as the simulators;
                    render_openssl)
    """
    role: str
    host: str
    cert: Path
    key: Path
    client_ca: Path
    realm: str
    lines: tuple[SipLine, ...]
    port: int = SECURE_PORT
    algorithm: str = "MD5"
    qop: bool = True
    match_cert: bool = True
    min_expires: int = 60
    default_expires: int = 3600
    max_expires: int = 3600
    tcp_workers: int = 1
    max_connections: int = 2048
    security_level: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "lines", tuple(self.lines))
        for name in ("cert", "key", "client_ca"):
            object.__setattr__(self, name, Path(getattr(self, name)))
        self.check()

    def check(self) -> None:
        if self.role not in ROLES:
            raise SipConfigError(f"role {self.role!r}: one of {', '.join(ROLES)}")
        if self.algorithm not in ALGORITHMS:
            raise SipConfigError(f"algorithm {self.algorithm!r}: one of {', '.join(ALGORITHMS)}")
        if not 0 < self.max_connections <= 1 << 20:
            raise SipConfigError(f"max_connections {self.max_connections}: 1 to {1 << 20}")
        if not 0 <= self.port < 65536:
            raise SipConfigError(f"port {self.port}: 0-65535")
        if not 0 < self.min_expires <= self.default_expires <= self.max_expires:
            raise SipConfigError("expires: 0 < min_expires <= default_expires <= max_expires")
        if not re.fullmatch(r"[0-9a-fA-F.:]+", self.host):
            raise SipConfigError(f"host {self.host!r}: an IP address")
        for what, v in [("realm", self.realm),
                        *((f"line {ln.user!r}", ln.user) for ln in self.lines),
                        *((f"device of line {ln.user!r}", ln.device) for ln in self.lines)]:
            if not _TOKEN.match(v):
                raise SipConfigError(f"{what}: letters, digits and ._~- only (got {v!r})")
        users = [ln.user for ln in self.lines]
        if len(set(users)) != len(users):
            raise SipConfigError("two lines with one user")
        for p in (self.cert, self.key, self.client_ca):
            _check_path(p)


def open_files(c: SipServerConfig) -> int | None:
    """Kamailio's open_files_limit when this process's soft limit is below what its
    connections need (one descriptor each in the TCP main process and one in the worker that
    holds it, plus listeners, pipes and files), else None (the inherited limit stands)."""
    need = 2 * c.max_connections + 256
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY or soft >= need else need


def connections_for(lines: int) -> int:
    """The connection limit a registrar with `lines` phones needs: each phone's registered
    or standby session, a probe's and a re-home's beside it, with room for reconnects;
    never below Kamailio's default."""
    return max(2048, 3 * lines + 64)


def _check_path(p: Path) -> None:
    if '"' in str(p) or "\n" in str(p):
        raise SipConfigError(f"{p}: a path Kamailio's configuration cannot quote")


def render_tls(c: SipServerConfig) -> str:
    """tls.cfg: the server profile for every TLS listener (there is one). The client profile
    is never used (the registrar opens no connection) but is strict all the same."""
    for name in TLS_FILES:
        p = str(getattr(c, name))
        if len(p) > TLS_PATH_MAX:
            raise SipConfigError(f"{p[:60]}...: {len(p)} characters, Kamailio's tls.cfg "
                                 f"takes at most {TLS_PATH_MAX}")
    return (f"# the lab's {c.role} SIP registrar (host_tools/lab/kamailio_cfg.py)\n"
            f"[server:default]\n"
            f"method = TLSv1.2+\n"
            f"verify_certificate = yes\n"
            f"require_certificate = yes\n"
            f"verify_depth = 3\n"
            f"certificate = {c.cert}\n"
            f"private_key = {c.key}\n"
            f"ca_list = {c.client_ca}\n"
            f"\n[client:default]\n"
            f"method = TLSv1.2+\n"
            f"verify_certificate = yes\n"
            f"require_certificate = yes\n"
            f"ca_list = {c.client_ca}\n")


def render_openssl(c: SipServerConfig) -> str | None:
    """An OpenSSL configuration (OPENSSL_CONF) for a PKI with keys under 2048 bits: Kamailio
    loads its certificate before it applies tls.cfg's cipher_list, so the security level
    must be OpenSSL's default for the whole process. None when not needed."""
    if c.security_level is None:
        return None
    return ("# the lab's Kamailio with a PKI of keys under 2048 bits (kamailio_cfg.py)\n"
            "openssl_conf = openssl_init\n\n[openssl_init]\nssl_conf = ssl_sect\n\n"
            "[ssl_sect]\nsystem_default = system_default_sect\n\n"
            f"[system_default_sect]\nCipherString = DEFAULT:@SECLEVEL={int(c.security_level)}\n")


# the modules the configuration loads (tls.so: the Debian package kamailio-tls-modules)
MODULES = ("kex", "corex", "sl", "pv", "maxfwd", "sanity", "siputils", "xlog", "htable",
            "usrloc", "registrar", "auth", "jsonrpcs", "tls")


def render_cfg(c: SipServerConfig, run_dir: Path, rpc_dir: Path | None = None,
               secret: str | None = None) -> str:
    """kamailio.cfg for `c`, its files in `run_dir` (tls.cfg), its RPC FIFO in `rpc_dir`
    (default run_dir), whose path must be at most RPC_DIR_MAX characters."""
    rpc_dir = run_dir if rpc_dir is None else rpc_dir
    _check_path(run_dir)
    _check_path(rpc_dir)
    if len(str(rpc_dir)) > RPC_DIR_MAX:
        raise SipConfigError(f"{rpc_dir}: {len(str(rpc_dir))} characters, Kamailio's RPC "
                             f"FIFO folder takes at most {RPC_DIR_MAX}")
    secret = secret or secrets.token_hex(16)
    idle = c.max_expires + 60          # a registered phone's connection outlives its expiry
    challenge = "1" if c.qop else "0"  # www_challenge flags: 1 = qop="auth"
    stale = "17" if c.qop else "16"    # ... + 16 = stale=true (a nonce that expired)
    lines = "\n".join(
        f'\t$sht(ha1=>{ln.user}) = "{ln.ha1(c.realm, c.algorithm)}";\n'
        f'\t$sht(dev=>{ln.user}) = "{ln.device}";' for ln in c.lines)
    cert_check = (
        '\tif ($tls_peer_subject_cn != $sht(dev=>$au)) {\n'
        '\t\txlog("L_NOTICE", "lab: REGISTER $au refused: certificate $tls_peer_subject_cn '
        'is not the line\'s device $sht(dev=>$au)\\n");\n'
        '\t\tsl_send_reply("403", "Certificate Mismatch");\n'
        '\t\texit;\n'
        '\t}\n') if c.match_cert else ""
    modules = "\n".join(f'loadmodule "{m}.so"' for m in MODULES)
    nofile = open_files(c)
    files = f"open_files_limit={nofile}\n" if nofile else ""
    return f"""#!KAMAILIO
# The lab's {c.role} SIP registrar, written by host_tools/lab/kamailio_cfg.py: do not edit.

debug=2
log_stderror=yes
memdbg=5
memlog=5
fork=yes
children=1
tcp_children={c.tcp_workers}
tcp_max_connections={c.max_connections}
tls_max_connections={c.max_connections}
{files}disable_tcp=no
enable_tls=yes
listen=tls:{c.host}:{c.port}
auto_aliases=no
dns=no
rev_dns=no
dns_try_ipv6=no
use_dns_cache=off
tcp_connection_lifetime={idle}
tcp_accept_no_cl=yes
server_header="Server: phonelab-{c.role} (Kamailio)"
run_dir="{run_dir}"

{modules}

modparam("tls", "config", "{run_dir / TLS_NAME}")
modparam("tls", "connection_timeout", {idle})
modparam("usrloc", "db_mode", 0)
modparam("usrloc", "timer_interval", 10)
modparam("registrar", "min_expires", {c.min_expires})
modparam("registrar", "min_expires_mode", 1)
modparam("registrar", "default_expires", {c.default_expires})
modparam("registrar", "max_expires", {c.max_expires})
modparam("auth", "secret", "{secret}")
modparam("auth", "algorithm", "{c.algorithm}")
modparam("htable", "htable", "ha1=>size=10;")
modparam("htable", "htable", "dev=>size=10;")
modparam("jsonrpcs", "transport", 2)
modparam("jsonrpcs", "fifo_name", "{rpc_dir / RPC_FIFO}")
modparam("jsonrpcs", "fifo_mode", 0600)
modparam("jsonrpcs", "fifo_reply_dir", "{rpc_dir}/")
modparam("jsonrpcs", "pretty_format", 0)

event_route[htable:mod-init] {{
{lines}
}}

request_route {{
\tif (!mf_process_maxfwd_header("10")) {{
\t\tsl_send_reply("483", "Too Many Hops");
\t\texit;
\t}}
\tif (!sanity_check()) {{
\t\texit;
\t}}
\tif ($rm == "ACK") {{
\t\texit;
\t}}
\tif ($rm == "OPTIONS" && $rU == $null) {{
\t\toptions_reply();
\t\texit;
\t}}
\tif ($rm != "REGISTER") {{
\t\tsl_send_reply("501", "Not Implemented");
\t\texit;
\t}}
\troute(REGISTER);
}}

route[REGISTER] {{
\tif ($au == $null) {{
\t\twww_challenge("{c.realm}", "{challenge}");
\t\texit;
\t}}
\tif ($sht(ha1=>$au) == $null) {{
\t\txlog("L_NOTICE", "lab: REGISTER from unknown user $au refused\\n");
\t\tsl_send_reply("403", "Forbidden");
\t\texit;
\t}}
\tif (!pv_www_authenticate("{c.realm}", "$sht(ha1=>$au)", "1")) {{
\t\tif ($rc == -4) {{
\t\t\twww_challenge("{c.realm}", "{stale}");
\t\t\texit;
\t\t}}
\t\txlog("L_NOTICE", "lab: REGISTER $au: digest refused ($rc)\\n");
\t\twww_challenge("{c.realm}", "{challenge}");
\t\texit;
\t}}
\tif ($au != $tU) {{
\t\tsl_send_reply("403", "Digest User Is Not The To User");
\t\texit;
\t}}
{cert_check}\tconsume_credentials();
\t# save() answers itself, errors too (423 below min_expires): a second answer
\t# (sl_reply_error) would reach the phone as the answer to its next request
\tif (!save("location", "0x04")) {{
\t\txlog("L_NOTICE", "lab: REGISTER $au from $si:$sp refused by the registrar\\n");
\t\texit;
\t}}
\txlog("L_NOTICE", "lab: REGISTER $au from $si:$sp ($tls_peer_subject_cn) saved\\n");
\texit;
}}
"""


def write_config(c: SipServerConfig, run_dir: Path,
                 rpc_dir: Path | None = None) -> dict[str, Path]:
    """Write kamailio.cfg and tls.cfg (and openssl.cnf for weak keys) into `run_dir` (made
    0700: the cfg holds the HA1s), the RPC FIFO to be in `rpc_dir` (render_cfg)."""
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    run_dir.chmod(0o700)
    out = {"cfg": run_dir / CFG_NAME, "tls": run_dir / TLS_NAME}
    out["cfg"].write_text(render_cfg(c, run_dir, rpc_dir))
    out["tls"].write_text(render_tls(c))
    ossl = render_openssl(c)
    (run_dir / OPENSSL_NAME).unlink(missing_ok=True)
    if ossl is not None:
        out["openssl"] = run_dir / OPENSSL_NAME
        out["openssl"].write_text(ossl)
    for p in out.values():
        p.chmod(0o600)
    return out
