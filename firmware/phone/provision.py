# Provisioning: DHCP -> TFTP servers -> trust list (CTL, ITL) -> config (signed when the
# trust list has a TFTP certificate) -> stored; then what the connection state machine needs.
#
# Every download goes to a temporary store file and replaces the stored copy only after it
# verified, so a tampered or truncated file never costs the good state. When TFTP cannot be
# reached the agent continues from the stored state: that is how a phone boots during a WAN
# outage.
#
# One unit in three modules, loaded in steps: phone.provision (this one: the pass, DHCP and
# the downloads), phone.provtrust (the trust-list step) and phone.provcfg (the config step and
# the result). They are split for the heap alone. Provisioning runs before the agent's TLS
# links exist, and unload() drops its modules afterwards, so provisioning and the links never
# need the heap at the same time. Within a pass, every step imports what it needs and drops it
# before the next one, so only one step's modules are loaded at a time: dhcp (alone); tftp
# (the trust lists, downloaded into temporary store files); provtrust + ctl + x509 + der +
# pkcs1 (their verification); tftp again (the config); provcfg + ctl + pkcs1 (its signature);
# config (parsing); x509 (the SRST certificate's name). The step modules import nothing from
# this one (no import cycle): each step is a function given the Provisioner, whose public
# attributes are the unit's shared surface: its state (store, s, trust, required, floor, ip,
# lease, ntp, offline), download(), Trust and VERIFY; modules are dropped with phone.drop().
# The trust list in force is kept as plain values (Provisioner.Trust), never as ctl objects:
# their classes' methods would keep ctl loaded. Nothing kept refers to a dropped module's class.
import time

from phone import drop

_MODULES = ('dhcp', 'dhcpcore', 'tftp', 'ctl', 'x509', 'der', 'pkcs1', 'sha512', 'sha512n', 'config', 'store',
            'hw', 'provtrust', 'provcfg', 'provision')


class Provisioned:
    """What provisioning hands to the agent (attributes set by provcfg.result()):
    ip, mac; call_managers: [(name, host, port, anchor)] in priority order; anchor is
    (der, cn), or None for plain SCCP (security mode 1); srst: (host, tls_port, anchor) or
    None, with srst_why saying why not; identity: the paths of the phone's certificate and key
    (DER files; phone.link reads them for each TLS context) or None; monitor_s;
    secure; lease: Provisioner.lease (plain values) or None; sip: None for an SCCP phone, else
    the config's sip (the protocol is SIP: its lines with their digest credentials, the
    sipStack timers, transportLayerProtocol; phone.config.Config), and then the call managers'
    ports are their securedSipPort (sipPort in mode 1) and the SRST port its SIP port + 1;
    offline: True when no TFTP server answered (the stored state was used); down: the TFTP
    servers an ICMP host/network unreachable came back from; tftp: (the TFTP servers asked,
    their port; no servers when one answered this pass: TFTP is there, only unusable).
    No methods on purpose: a function defined here would keep this whole module (its
    globals) alive for as long as the agent holds the result, after unload()."""


def run(platform, store, settings, events, tftp_port=69):
    """Provision, retrying with backoff until something usable exists (fresh or stored)."""
    p = Provisioner(store, settings, tftp_port)
    return p.run(platform, events)


def unload():
    """Drop the provisioning modules so their heap goes back to the agent."""
    drop(*_MODULES)


class Provisioner:
    class Trust:
        """The trust list in force, as plain values: path, ts, sast (DER certificates: the
        anchors for the next one), tftp ((serial, n, e) of its TFTP and CCM+TFTP keys, which
        sign configs), ccm ((cn, dns, ip, offset, length) of its CCM and CCM+TFTP certificates
        in the file at `path`). Made by phone.provtrust."""

    # What verification loads (dropped after each check)
    VERIFY = ('ctl', 'x509', 'der', 'pkcs1', 'sha512', 'sha512n')
    # Per pass (set by _begin): the ticks_ms the pass must end by (None: no bound), the TFTP
    # servers that never answered (asked last), provision_deadline said, list bound said.
    until = None
    silent = None
    late = False
    capped = False
    quiet_ms = None
    down = ()
    servers = ()
    heard = False

    def __init__(self, store, settings, tftp_port=69):
        self.store = store
        self.s = settings
        self.tftp_port = tftp_port
        self.trust = None            # Trust in force (from the CTL)
        self.offline = False
        self.ip = None
        # (ip, server_id, lease_s, t1_s, t2_s, bound_ms) of the lease this pass got, for
        # phone.lease to keep; None without one (no DHCP, or a static profile).
        self.lease = None

    def run(self, plat, ev):
        for name in self.store.recovered:
            ev.emit('store_recovered', action=name[0], file=name[1])
        delay = self.s.retry_min_ms
        while True:
            try:
                prov = self._once(plat, ev)
            except MemoryError as e:
                # Keep the board alive: drop what the pass loaded and try again later.
                drop('dhcp', 'dhcpcore', 'tftp', 'config', 'hw', 'provtrust', 'provcfg', *self.VERIFY)
                ev.emit('provision_failed', reason='out of memory: %s' % e)
                prov = None
            if prov is not None:
                return prov
            ev.emit('provision_retry', retry_ms=delay)
            time.sleep_ms(delay)
            delay = min(delay * 2, self.s.retry_max_ms)

    # -- one pass ------------------------------------------------------------------------
    def _once(self, plat, ev):
        t0 = self._begin()
        servers = self.servers = self._network(plat, ev)
        mac = plat.mac()
        dev = plat.device_name()
        self.offline = True
        got = None
        if servers:
            from phone.store import CTL, ITL      # loaded by boot; not by Provisioned's users
            got = self.download(ev, servers, (
                ('CTL', ('CTL' + dev + '.tlv', 'CTLFile.tlv'), CTL),
                ('ITL', ('ITL' + dev + '.tlv', 'ITLFile.tlv'), ITL)))
        from phone import provtrust     # this step's code, dropped after it
        provtrust.check(self, ev, got)
        provtrust = None
        drop('provtrust')
        why = 'TFTP unreachable'        # what became of the config from TFTP, if none stored
        if got and not (got[-1][1] is None and got[-1][2] == 'unreachable'):
            self.offline = False
            got = None
            from phone import provcfg
            why = provcfg.fetch(self, ev, servers, dev) or 'config stored'
            provcfg = None
            drop('provcfg', 'provtrust')
        got = None
        stored = 'none stored'
        from phone import config as _config
        try:
            cfg = _config.load(self.store)
        except _config.ConfigError as e:
            ev.emit('config_rejected', source='store', reason=str(e))
            cfg = None
            stored = 'the stored one refused'
        if cfg is None:
            drop('config')
            ev.emit('provision_failed', reason='no configuration: %s and %s%s' % (
                why, stored, ' (see config_rejected)' if 'refused' in why + stored else ''))
            return None
        ev.emit('provisioned', offline=self.offline, trust=self.trust is not None,
                security_mode=cfg.security_mode, cms=len(cfg.call_managers),
                ms=time.ticks_diff(time.ticks_ms(), t0))
        # what provcfg needs of the config, taken while phone.config is loaded
        c = (cfg.security_mode, cfg.call_managers, cfg.srst, cfg.monitor_s,
             _config.SECURE_OFFSET, cfg.sip)
        cfg = _config = None
        drop('config')
        from phone import provcfg
        try:
            return provcfg.result(self, ev, c, mac, Provisioned())
        finally:
            provcfg = None
            drop('provcfg', 'provtrust')

    def _network(self, plat, ev):
        """Address and TFTP server list (150 > 66 > siaddr > profile's tftp_server). The agent
        runs the whole exchange itself, on a board too (network_up stopped the platform's
        client there): a phone's options out, option 150 back, the lease kept by phone.lease."""
        configured = plat.profile.get('tftp_server')
        fallback = [configured] if configured else []
        try:
            ip = plat.network_up()
        except OSError as e:
            ev.emit('network_failed', reason=str(e))
            return fallback
        self.ip = ip or plat.profile.get('ip')
        if ip is not None or not plat.profile.get('dhcp', True):
            return fallback
        from phone import dhcp
        try:
            lease = dhcp.acquire(plat.mac(), ev, total_ms=self.s.dhcp_timeout_ms,
                                 tftp_server=configured, **plat.dhcp_kw())
            plat.apply_lease(lease)
            # Only plain values are kept: a Lease (its class's methods) would keep the
            # whole dhcp module alive after it is dropped.
            self.lease = (lease.ip, lease.server_id, lease.lease_s, lease.t1_s, lease.t2_s,
                          lease.acquired_ms)
            self.ip = lease.ip
            if lease.ntp:       # option 42: boot's SNTP query (provcfg.result passes it on)
                self.ntp = tuple(lease.ntp[:2])
            return lease.tftp_servers
        except (dhcp.DhcpError, OSError) as e:
            ev.emit('dhcp_unavailable', reason=str(e))
            return fallback
        finally:
            lease = dhcp = None
            drop('dhcp', 'dhcpcore', 'hw')     # not needed again until the next boot

    def _begin(self):
        """Start a pass: its deadline (provision_deadline_ms from now), no silent server yet."""
        t0 = time.ticks_ms()
        ms = self.s.provision_deadline_ms
        self.until = time.ticks_add(t0, ms) if ms else None
        self.silent = []
        self.down = []              # servers that answered ICMP host/net unreachable
        self.heard = False          # a TFTP server answered this pass (usable or not)
        self.late = self.capped = False
        # With a configuration stored, a silent TFTP server is not waited out: the phone
        # boots from the store and the agent watches for TFTP to answer (phone.tftpwatch).
        from phone.store import CONFIG
        self.quiet_ms = (self.s.tftp_stored_wait_ms or None) if self.store.exists(CONFIG) else None
        return t0

    def _overdue(self, ev):
        """True once the pass deadline has passed: the pass goes on from the stored state,
        as when TFTP is unreachable (provision_deadline, once a pass)."""
        u = self.until
        if u is None or time.ticks_diff(u, time.ticks_ms()) > 0:
            return False
        if not self.late:
            self.late = True
            ev.emit('provision_deadline', ms=self.s.provision_deadline_ms)
        self.offline = True
        return True

    def download(self, ev, servers, wanted):
        """wanted: (kind, names, dest) items. For each, the first of `names` that a server has
        goes into a store Writer for `dest` (closed, not committed yet), all with one TFTP
        client; then tftp is dropped. Returns [(kind, writer, name)], with writer None and
        the reason instead of the name for a file no server had; after an item whose reason
        is 'unreachable' (no server answered at all: the WAN is down; or only servers whose
        options we refused; or the pass deadline passed) nothing more is tried. Only the
        first tftp_max_servers of the list are asked."""
        from phone import tftp
        s = self.s
        n = s.tftp_max_servers
        if n and len(servers) > n:
            if not self.capped:
                self.capped = True
                ev.emit('tftp_servers_bounded', offered=len(servers), tried=servers[:n])
            servers = servers[:n]
        c = tftp.Client(port=self.tftp_port, timeout_ms=s.tftp_timeout_ms, retries=s.tftp_retries,
                        blksize=s.tftp_blksize, windowsize=s.tftp_windowsize,
                        max_bytes=s.max_file_bytes, events=ev, min_blksize=s.tftp_min_blksize,
                        silent_retries=s.tftp_silent_retries, min_rate=s.tftp_min_rate,
                        until=self.until, silent=self.silent, answer_ms=self.quiet_ms)
        out = []
        try:
            for kind, names, dest in wanted:
                w = None
                why = 'unreachable'
                last = names[-1]
                for name in names:
                    if self._overdue(ev):
                        break
                    w = self.store.begin(dest)
                    try:
                        # "not found" for a per-device name: ask the same server for the
                        # next name before trying the next server
                        c.fetch(servers, name, w, name is last)
                        w.close()
                        why = name
                        break
                    except tftp.TftpError as e:
                        w.abort()
                        w = None
                        if e.down and e.server not in self.down:
                            self.down.append(e.server)
                        if self._overdue(ev):
                            why = 'unreachable'
                            break
                        # No answer at all (the WAN is down), or only servers whose OACK we
                        # refused (ERROR 8: a blksize under the floor): no server to use.
                        if e.code is None or (e.local and e.code == 8):
                            ev.emit('tftp_failed', file=name, reason=str(e))
                            why = 'unreachable'
                            break
                        why = str(e)
                    except Exception as e:        # a full flash, a bad sink: keep the old state
                        w.abort()
                        w = None
                        ev.emit('tftp_failed', file=name, reason=repr(e))
                        why = repr(e)
                        break
                out.append((kind, w, why))
                if w is None and why == 'unreachable':
                    break
        finally:
            if c.heard:
                self.heard = True
                self.quiet_ms = None        # a server answered: TFTP is there this pass
            c = tftp = None
            drop('tftp')
        return out
