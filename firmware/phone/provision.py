# Provisioning: DHCP -> TFTP servers -> trust list (CTL, ITL) -> config (signed when the
# trust list has a TFTP certificate) -> stored; then what the connection state machine needs.
#
# Every download goes to a temporary store file and replaces the stored copy only after it
# verified, so a tampered or truncated file never costs the good state. When TFTP cannot be
# reached the agent continues from the stored state: that is how a phone boots during a WAN
# outage.
#
# Memory: this runs before the agent's TLS links exist, and unload() drops its modules
# afterwards, so provisioning and the links never need the heap at the same time. Within a
# pass, every step imports what it needs and drops it before the next one, so only one step's
# modules are loaded at a time: dhcp (alone); tftp (the trust lists, downloaded into temporary
# store files); ctl + x509 + der + pkcs1 (their verification); tftp again (the config); ctl +
# pkcs1 (its signature); config (parsing); x509 (the SRST certificate's name). The trust list
# in force is kept as plain values (_Trust), never as ctl objects: their classes' methods would
# keep ctl loaded. Nothing here keeps an object whose class lives in a dropped module.
import sys
import time

try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

_SECURE_OFFSET = const(443)  # TLS port = the config's plain SCCP port + 443
_PIN = 'sast.der'            # SAST certificate provisioned at flash time (optional)
_CTL = 'ctl.tlv'             # store names (phone.store)
_MODULES = ('dhcp', 'tftp', 'ctl', 'x509', 'der', 'pkcs1', 'sha512', 'config', 'store', 'hw',
            'provision')
_VERIFY = ('ctl', 'x509', 'der', 'pkcs1', 'sha512')


class Provisioned:
    """What provisioning hands to the agent (attributes set by Provisioner._result):
    ip, mac; call_managers: [(name, host, port, anchor)] in priority order; anchor is
    (der, cn), or None for plain SCCP (security mode 1); srst: (host, tls_port, anchor) or
    None, with srst_why saying why not; identity: (cert_der, key_der) or None; monitor_s;
    secure. No methods on purpose: a function defined here would keep this whole module (its
    globals) alive for as long as the agent holds the result, after unload()."""


class _Trust:
    """The trust list in force, as plain values: sast (DER certificates: the anchors for the
    next one), tftp ((serial, n, e) of its TFTP and CCM+TFTP keys, which sign configs), ccm
    ((cn, dns, ip, offset, length) of its CCM and CCM+TFTP certificates in the file at
    `path`)."""


def run(platform, store, settings, events, tftp_port=69):
    """Provision, retrying with backoff until something usable exists (fresh or stored)."""
    p = Provisioner(store, settings, tftp_port)
    return p.run(platform, events)


def unload():
    """Drop the provisioning modules so their heap goes back to the agent."""
    for m in _MODULES:
        _drop(m)


def _unless_memory(e):
    # A file the heap could not check is neither good nor bad: fail the pass (run() retries)
    # rather than reject it, which would fall back to an unsigned config.
    if e.memory:
        raise MemoryError(str(e))


def _same(a, b):
    """True when the files hold the same bytes."""
    try:
        with open(a, 'rb') as fa:
            with open(b, 'rb') as fb:
                while True:
                    x = fa.read(512)
                    if x != fb.read(512):
                        return False
                    if not x:
                        return True
    except OSError:
        return False


def _drop(*names):
    import gc
    pkg = sys.modules.get('phone')
    for name in names:
        sys.modules.pop('phone.' + name, None)
        if pkg is not None and hasattr(pkg, name):
            delattr(pkg, name)
    gc.collect()


class Provisioner:
    def __init__(self, store, settings, tftp_port=69):
        self.store = store
        self.s = settings
        self.tftp_port = tftp_port
        self.trust = None            # _Trust in force (from the CTL)
        self.offline = False
        self.ip = None

    def run(self, plat, ev):
        for name in self.store.recovered:
            ev.emit('store_recovered', action=name[0], file=name[1])
        delay = self.s.retry_min_ms
        while True:
            try:
                prov = self._once(plat, ev)
            except MemoryError as e:
                # Keep the board alive: drop what the pass loaded and try again later.
                _drop('dhcp', 'tftp', 'config', 'hw', *_VERIFY)
                ev.emit('provision_failed', reason='out of memory: %s' % e)
                prov = None
            if prov is not None:
                return prov
            ev.emit('provision_retry', retry_ms=delay)
            time.sleep_ms(delay)
            delay = min(delay * 2, self.s.retry_max_ms)

    # -- one pass ------------------------------------------------------------------------
    def _once(self, plat, ev):
        t0 = time.ticks_ms()
        servers = self._network(plat, ev)
        mac = plat.mac()
        dev = plat.device_name()
        self.offline = True
        got = None
        if servers:
            got = self._download(ev, servers, (
                ('CTL', ('CTL' + dev + '.tlv', 'CTLFile.tlv'), _CTL),
                ('ITL', ('ITL' + dev + '.tlv', 'ITLFile.tlv'), 'itl.tlv')))
        self._check_trust(ev, got)
        if got and not (got[-1][1] is None and got[-1][2] == 'unreachable'):
            self.offline = False
            got = None
            self._fetch_config(ev, servers, dev)
        got = None
        from phone import config as _config
        try:
            cfg = _config.load(self.store)
        except _config.ConfigError as e:
            ev.emit('config_rejected', source='store', reason=str(e))
            cfg = None
        if cfg is None:
            _drop('config')
            ev.emit('provision_failed', reason='no configuration (TFTP unreachable and none stored)')
            return None
        ev.emit('provisioned', offline=self.offline, trust=self.trust is not None,
                security_mode=cfg.security_mode, cms=len(cfg.call_managers),
                ms=time.ticks_diff(time.ticks_ms(), t0))
        c = (cfg.security_mode, cfg.call_managers, cfg.srst, cfg.monitor_s)
        cfg = _config = None
        _drop('config')
        return self._result(ev, c, mac)

    def _network(self, plat, ev):
        """Address and TFTP server list (150 > 66 > siaddr > profile's tftp_server)."""
        configured = plat.profile.get('tftp_server')
        fallback = [configured] if configured else []
        try:
            ip = plat.network_up()
        except OSError as e:
            ev.emit('network_failed', reason=str(e))
            return fallback
        self.ip = ip or plat.profile.get('ip')
        if not plat.profile.get('dhcp', True):
            return fallback
        from phone import dhcp
        try:
            if ip is None:
                lease = dhcp.acquire(plat.mac(), ev, total_ms=self.s.dhcp_timeout_ms,
                                     tftp_server=configured)
                plat.apply_lease(lease)
            else:
                lease = dhcp.inform(ip, plat.mac(), ev, total_ms=self.s.dhcp_timeout_ms,
                                    tftp_server=configured)
                lease.ip = ip
            # Only plain values are kept: a Lease (its class's methods) would keep the
            # whole dhcp module alive after it is dropped.
            self.ip = lease.ip
            return lease.tftp_servers
        except (dhcp.DhcpError, OSError) as e:
            ev.emit('dhcp_unavailable', reason=str(e))
            return fallback
        finally:
            lease = dhcp = None
            _drop('dhcp', 'hw')     # not needed again until the next boot

    def _download(self, ev, servers, wanted):
        """wanted: (kind, names, dest) items. For each, the first of `names` that a server has
        goes into a store Writer for `dest` (closed, not committed yet), all with one TFTP
        client; then tftp is dropped. Returns [(kind, writer, name)], with writer None and
        the reason instead of the name for a file no server had; after an item whose reason
        is 'unreachable' (no server answered at all: the WAN is down) nothing more is tried."""
        from phone import tftp
        s = self.s
        c = tftp.Client(port=self.tftp_port, timeout_ms=s.tftp_timeout_ms, retries=s.tftp_retries,
                        blksize=s.tftp_blksize, windowsize=s.tftp_windowsize,
                        max_bytes=s.max_file_bytes, events=ev)
        out = []
        try:
            for kind, names, dest in wanted:
                w = None
                why = 'unreachable'
                for name in names:
                    w = self.store.begin(dest)
                    try:
                        c.fetch(servers, name, w)
                        w.close()
                        why = name
                        break
                    except tftp.TftpError as e:
                        w.abort()
                        w = None
                        if e.code is None:        # no answer at all: the WAN is down
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
            c = tftp = None
            _drop('tftp')
        return out

    # -- trust list ----------------------------------------------------------------------
    def _check_trust(self, ev, got):
        """The stored trust list (when none is in force yet), then the downloaded CTL/ITL
        (`got` from _download, or None): verified against the SASTs in force (or the one
        pinned at flash time; none: first use), committed or dropped."""
        from phone import ctl
        pin = None
        if self.trust is None:
            pin = self.store.read_bytes(_PIN)
            if self.store.exists(_CTL):
                try:
                    self.trust = self._compact(ctl, ctl.load_trust(self.store.path(_CTL),
                                                                   [pin] if pin else None))
                except ctl.CtlError as e:
                    _unless_memory(e)
                    ev.emit('ctl_rejected', source='store', reason=str(e))
        if self.trust is not None:
            anchors = self.trust.sast
        else:
            anchors = [pin] if pin else None
        same = False                # the CTL downloaded is the one in force
        for kind, w, name in got or ():
            if w is None:
                if name != 'unreachable':
                    ev.emit('trust_missing', kind=kind, reason=name)
                continue
            # A file identical to the stored one needs no second check (the usual boot: saves
            # an RSA verification and its heap): the CTL when it is the trust list in force
            # (verified this boot), the ITL when, besides, the CTL (its anchors) is unchanged.
            if (self.trust is not None and (kind == 'CTL' or same)
                    and _same(w.tmp, self.store.path(_CTL if kind == 'CTL' else 'itl.tlv'))):
                w.abort()
                same = kind == 'CTL'
                ev.emit('ctl_accepted', kind=kind, file=name, unchanged=True)
                continue
            try:
                tl = ctl.load_trust(w.tmp, anchors)
            except ctl.CtlError as e:
                w.abort()
                _unless_memory(e)
                ev.emit('ctl_rejected', kind=kind, file=name, reason=str(e))
                continue
            w.commit()
            ev.emit('ctl_accepted', kind=kind, file=name, records=len(tl.records),
                    first_use=tl.tofu, hash=tl.hash_code)
            if kind == 'CTL':
                # Certificates are read back from the file: the committed name now holds the
                # verified bytes.
                tl.path = self.store.path(_CTL)
                self.trust = self._compact(ctl, tl)
            tl = None
        got = ctl = None
        _drop(*_VERIFY)

    def _compact(self, ctl, tl):
        t = _Trust()
        t.path = tl.path
        t.sast = tl.sast_certs()
        t.tftp = tl.keys(ctl.ROLE_TFTP, ctl.ROLE_CCM_TFTP)
        t.ccm = [(r.cn, r.dns, r.ip, r.cert_off, r.cert_len) for r in tl.records
                 if r.role in (ctl.ROLE_CCM, ctl.ROLE_CCM_TFTP) and r.cert_len]
        return t

    # -- configuration -------------------------------------------------------------------
    def _fetch_config(self, ev, servers, dev):
        signed = self.trust is not None and bool(self.trust.tftp)
        if signed:
            got = self._download(ev, servers, (('CFG', (dev + '.cnf.xml.sgn',), 'config.sgn'),))
        else:
            got = self._download(ev, servers, (('CFG', (dev + '.cnf.xml', 'XMLDefault.cnf.xml'),
                                                'config.xml'),))
        _, w, name = got[0]
        got = None
        if w is None:
            ev.emit('config_missing', signed=signed, reason=name)
            return
        if signed:
            # Signature first (ctl), payload copied out as the raw XML; then ctl is dropped
            # before config is loaded to parse it.
            from phone import ctl
            raw = None
            try:
                sg = ctl.verify_sgn(w.tmp, self.trust.tftp)
                raw = self.store.begin('config.xml')
                raw.close()
                ctl.copy_payload(sg, raw.tmp)
            except ctl.CtlError as e:
                if raw is not None:
                    raw.abort()
                w.abort()
                _unless_memory(e)
                ev.emit('config_rejected', file=name, reason=str(e))
                return
            finally:
                sg = ctl = None
                _drop(*_VERIFY)
            w.abort()                         # the .sgn wrapper is not kept
            w = raw
        from phone import config as _config
        try:
            cfg = _config.parse_file(w.tmp)
        except _config.ConfigError as e:
            w.abort()
            ev.emit('config_rejected', file=name, reason=str(e))
            return
        w.commit()
        _config.save(self.store, cfg)
        ev.emit('config_accepted', file=name, signed=signed, security_mode=cfg.security_mode,
                srst_cert=bool(cfg.srst and cfg.srst['cert']))

    # -- what the state machine needs ----------------------------------------------------
    def _cm_anchor(self, cm):
        """The CCM (or CCM+TFTP) certificate of the trust list for this call manager:
        matched by CN, DNS name or address; the only one when there is just one."""
        recs = self.trust.ccm
        pick = None
        for r in recs:
            if cm['name'] in (r[0], r[1]) or cm['host'] in r[:3]:
                pick = r
                break
        if pick is None and len(recs) == 1:
            pick = recs[0]
        if pick is None:
            return None
        try:
            with open(self.trust.path, 'rb') as f:
                f.seek(pick[3])
                der = f.read(pick[4])
        except OSError:
            return None
        return (der, pick[0]) if len(der) == pick[4] else None

    def _result(self, ev, c, mac):
        mode, cms_cfg, srst_cfg, monitor_s = c
        secure = mode in (2, 3)
        cms = []
        for cm in cms_cfg:
            if secure:
                anchor = self._cm_anchor(cm) if self.trust is not None else None
                cms.append((cm['name'], cm['host'], cm['port'] + _SECURE_OFFSET, anchor))
            else:
                cms.append((cm['name'], cm['host'], cm['port'], None))
        srst, why = self._srst(mode, srst_cfg, ev)
        cert = self.store.read_bytes('phone.der')
        key = self.store.read_bytes('phone.key')
        if cert is None or key is None:
            ev.emit('no_identity', reason='phone certificate or key missing from the store')
        p = Provisioned()
        p.ip = self.ip
        p.mac = mac
        p.call_managers = cms
        p.srst = srst
        p.srst_why = why
        p.identity = (cert, key) if cert is not None and key is not None else None
        p.monitor_s = monitor_s
        p.secure = secure
        return p

    def _srst(self, mode, s, ev):
        if s is None or not s['servers']:
            return None, 'no SRST reference in the configuration'
        if mode not in (2, 3):
            return None, 'security mode %d: Secure SRST needs 2 or 3' % mode
        if self.trust is None:
            return None, 'no trust list (CTL): the cluster is not in mixed mode'
        if not s['cert']:
            return None, 'the configuration carries no SRST certificate'
        der = s['cert']
        from phone import x509
        try:
            cn = x509.load(der).cn
        except x509.X509Error as e:
            return None, 'SRST certificate unreadable: %s' % e
        finally:
            x509 = None
            _drop('x509', 'der')
        if self.store.read_bytes('srst.der') != der:
            self.store.write_bytes('srst.der', der)
            ev.emit('srst_pinned', cn=cn, sha256=s['cert_sha256'])
        host, port = s['servers'][0]
        return (host, port + _SECURE_OFFSET, (der, cn)), None
