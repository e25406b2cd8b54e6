# Provisioning, the config step and the result (phone.provision imports it for the step and
# drops it): the config downloaded (signed when the trust list has a TFTP certificate),
# verified, parsed and stored; then what the connection state machine needs (a
# provision.Provisioned: call managers with their certificate from the trust list, the SRST
# router with the certificate from the config, pinned in the store). One unit with
# phone.provision and phone.provtrust: see phone/provision.py.
import gc

from phone import drop
from phone.store import CONFIG_RAW, PHONE_CERT, PHONE_KEY, SRST_CERT

_REFUSED = 'config refused'


def fetch(p, ev, servers, dev):
    """Download, verify, parse and store the config. Once the phone has trust (p.required)
    only a config signed by a TFTP certificate of the trust list in force is taken, and only
    when its signed header names this phone's file, is not older than the stored one, and
    keeps security mode 2 or 3 without lowering the stored one. Returns None when one was
    stored, else what went wrong, for provision_failed: 'config refused' (config_rejected
    said why), 'TFTP unreachable', or 'config not on TFTP (...)'."""
    signed = p.trust is not None and bool(p.trust.tftp)
    if p.required and not signed:
        # e.g. a pinned SAST and a rogue CTL refused: no TFTP key to check a config with
        ev.emit('config_rejected', file=dev + '.cnf.xml', signed=False,
                reason='unsigned configuration refused: the phone has trust but no trust list '
                       + ('signed by its SAST' if p.trust is None else 'with a TFTP certificate'))
        return _REFUSED
    floor = getattr(p, 'floor', None)
    if signed and floor is None:
        # (timestamp, security mode) of the stored signed config, which a new one must reach;
        # read once per boot. Unsigned or unreadable: no floor from it.
        floor = (0, 0)
        if p.store.exists(CONFIG_RAW):
            from phone import config as _config
            try:
                c = _config.load(p.store)
                if c is not None and c.sgn:
                    floor = (c.sgn[0], c.security_mode)
            except _config.ConfigError:
                pass
            c = _config = None
            drop('config')
        p.floor = floor
    if signed:
        got = p.download(ev, servers, (('CFG', (dev + '.cnf.xml.sgn',), 'config.sgn'),))
    else:
        got = p.download(ev, servers, (('CFG', (dev + '.cnf.xml', 'XMLDefault.cnf.xml'),
                                            CONFIG_RAW),))
    _, w, name = got[0]
    got = None
    if w is None:
        ev.emit('config_missing', signed=signed, reason=name)
        return 'TFTP unreachable' if name == 'unreachable' else 'config not on TFTP (%s)' % name
    sgn = None
    if signed:
        # Signature first (ctl), payload copied out as the raw XML; then ctl is dropped
        # before config is loaded to parse it.
        from phone import ctl
        raw = None
        gc.collect()            # an RSA check next: give it the heap in one piece
        try:
            sg = ctl.verify_sgn(w.tmp, p.trust.tftp)
            # A replay: the header must name SEP<MAC>.cnf.xml (Cisco and certutils write it
            # with or without .sgn; compared without case), and not be older than the stored
            n = sg.filename or ''
            n = n[max(n.rfind('/'), n.rfind('\\')) + 1:]
            want = dev.lower() + '.cnf.xml'
            if n.lower() not in (want, want + '.sgn'):
                raise ctl.CtlError('signed for %s, not this phone' % (n.split('.')[0] or
                                                                      'no file name'))
            sgn = [sg.timestamp or 0, n]
            if sgn[0] < floor[0]:
                raise ctl.CtlError('older than the stored configuration (timestamp %d < %d)'
                                   % (sgn[0], floor[0]))
            raw = p.store.begin(CONFIG_RAW)
            raw.close()
            ctl.copy_payload(sg, raw.tmp)
        except ctl.CtlError as e:
            if raw is not None:
                raw.abort()
            w.abort()
            if e.memory:        # neither good nor bad: fail the pass, run() retries
                raise MemoryError(str(e))
            ev.emit('config_rejected', file=name, reason=str(e))
            return _REFUSED
        finally:
            sg = ctl = None
            drop(*p.VERIFY)
        w.abort()                         # the .sgn wrapper is not kept
        w = raw
    from phone import config as _config
    try:
        cfg = _config.parse_file(w.tmp)
        mode = cfg.security_mode
        if p.required and mode not in (2, 3):
            raise _config.ConfigError('security mode %d (plain text) refused: the phone has '
                                      'trust' % mode)
        if signed and mode < floor[1]:
            raise _config.ConfigError('security mode lowered from %d to %d' % (floor[1], mode))
    except _config.ConfigError as e:
        w.abort()
        ev.emit('config_rejected', file=name, reason=str(e))
        return _REFUSED
    cfg.sgn = sgn
    w.commit()
    _config.save(p.store, cfg)
    if sgn:
        p.floor = (sgn[0], mode)
    ev.emit('config_accepted', file=name, signed=signed, security_mode=mode,
            srst_cert=bool(cfg.srst and cfg.srst['cert']), ts=sgn and sgn[0])


def _cm_anchor(p, cm):
    """The CCM (or CCM+TFTP) certificate of the trust list for this call manager:
    matched by CN, DNS name or address; the only one when there is just one."""
    recs = p.trust.ccm
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
        with open(p.trust.path, 'rb') as f:
            f.seek(pick[3])
            der = f.read(pick[4])
    except OSError:
        return None
    return (der, pick[0]) if len(der) == pick[4] else None


def result(p, ev, c, mac, r):
    """Fill r (a provision.Provisioned) with what the agent needs; returns it."""
    mode, cms_cfg, srst_cfg, monitor_s, tls, sip = c     # tls: config.SECURE_OFFSET
    # With trust the links are TLS whatever the config says (a mode-1 config is refused
    # before this; this is the last line against plain text)
    secure = mode in (2, 3) or getattr(p, 'required', False)
    cms = []
    for cm in cms_cfg:
        # SCCP: the plain port, + 443 for TLS; SIP: sipPort, or securedSipPort for TLS
        port = cm['sip'] if sip else (cm['port'], cm['port'] + tls)
        if secure:
            anchor = _cm_anchor(p, cm) if p.trust is not None else None
            cms.append((cm['name'], cm['host'], port[1], anchor))
        else:
            cms.append((cm['name'], cm['host'], port[0], None))
    # the SRST router's TLS port: its SCCP port + 443, or its SIP port + 1 (Secure SRST)
    srst, why = _srst(p, mode, srst_cfg, ev, 1 if sip else tls, sip)
    # The files' paths, not their bytes: phone.link reads them for each TLS context it makes,
    # so the certificate and key (2 KB) are not held in the heap through every session.
    have = p.store.exists(PHONE_CERT) and p.store.exists(PHONE_KEY)
    if not have:
        ev.emit('no_identity', reason='phone certificate or key missing from the store')
    r.ip = p.ip
    r.mac = mac
    r.lease = p.lease
    r.call_managers = cms
    r.srst = srst
    r.srst_why = why
    r.identity = (p.store.path(PHONE_CERT), p.store.path(PHONE_KEY)) if have else None
    r.monitor_s = monitor_s
    r.secure = secure
    # The latest timestamp of the signed files in force (trust list, config): they were signed
    # no later than now, a floor for a clock that reads 2000 after power-up (boot applies it
    # with phone.clock once these modules are gone)
    f = getattr(p, 'floor', None)
    r.signed_ts = max(p.trust.ts if p.trust is not None else 0, f[0] if f else 0)
    r.ntp = getattr(p, 'ntp', ())
    r.sip = sip
    r.offline = p.offline        # booted from the store: no TFTP answer (phone.bootrace)
    r.down = p.down
    # phone.tftpwatch after an offline boot, unless a server answered (a refused OACK, a
    # dripping transfer): TFTP is up then, and a restart would meet the same server. Only
    # the servers provisioning asks (tftp_max_servers): one beyond them answering would
    # restart the phone into the same offline boot, again and again
    if p.heard:
        r.tftp = ((), p.tftp_port)
    else:
        n = p.s.tftp_max_servers
        r.tftp = (tuple(p.servers[:n] if n else p.servers), p.tftp_port)
    return r


def _srst(p, mode, s, ev, tls, sip):
    servers = s and s['sip' if sip else 'servers']
    if not servers or not s['cert']:
        why = ('no SRST reference in the configuration' if not servers
               else 'the configuration carries no SRST certificate')
        # Never an unpinned SRST link: no standby, no fallback. The old pin goes too, so it
        # cannot outlive the signed config that carried it.
        if p.store.exists(SRST_CERT):
            try:
                p.store.remove(SRST_CERT)
            except Exception:       # a stale file is never used to connect: only a record
                pass
            ev.emit('srst_unpinned', reason=why)
        return None, why
    if mode not in (2, 3):
        return None, 'security mode %d: Secure SRST needs 2 or 3' % mode
    if p.trust is None:
        return None, 'no trust list (CTL): the cluster is not in mixed mode'
    der = s['cert']
    from phone import x509
    try:
        cn = x509.load(der).cn
    except x509.X509Error as e:
        return None, 'SRST certificate unreadable: %s' % e
    finally:
        x509 = None
        drop('x509', 'der')
    if p.store.read_bytes(SRST_CERT) != der:
        p.store.write_bytes(SRST_CERT, der)
        ev.emit('srst_pinned', cn=cn, sha256=s['cert_sha256'])
    host, port = servers[0]
    return (host, port + tls, (der, cn)), None
