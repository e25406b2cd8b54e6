# Provisioning, the config step and the result (phone.provision imports it for the step and
# drops it): the config downloaded (signed when the trust list has a TFTP certificate),
# verified, parsed and stored; then what the connection state machine needs (a
# provision.Provisioned: call managers with their certificate from the trust list, the SRST
# router with the certificate from the config, pinned in the store).
try:
    from micropython import const
except ImportError:  # CPython
    def const(x):
        return x

from phone.provision import _VERIFY, Provisioned, _drop
from phone.provtrust import _unless_memory

_SECURE_OFFSET = const(443)  # TLS port = the config's plain SCCP port + 443


def fetch(p, ev, servers, dev):
    signed = p.trust is not None and bool(p.trust.tftp)
    if signed:
        got = p._download(ev, servers, (('CFG', (dev + '.cnf.xml.sgn',), 'config.sgn'),))
    else:
        got = p._download(ev, servers, (('CFG', (dev + '.cnf.xml', 'XMLDefault.cnf.xml'),
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
            sg = ctl.verify_sgn(w.tmp, p.trust.tftp)
            raw = p.store.begin('config.xml')
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
    _config.save(p.store, cfg)
    ev.emit('config_accepted', file=name, signed=signed, security_mode=cfg.security_mode,
            srst_cert=bool(cfg.srst and cfg.srst['cert']))


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


def result(p, ev, c, mac):
    mode, cms_cfg, srst_cfg, monitor_s = c
    secure = mode in (2, 3)
    cms = []
    for cm in cms_cfg:
        if secure:
            anchor = _cm_anchor(p, cm) if p.trust is not None else None
            cms.append((cm['name'], cm['host'], cm['port'] + _SECURE_OFFSET, anchor))
        else:
            cms.append((cm['name'], cm['host'], cm['port'], None))
    srst, why = _srst(p, mode, srst_cfg, ev)
    cert = p.store.read_bytes('phone.der')
    key = p.store.read_bytes('phone.key')
    if cert is None or key is None:
        ev.emit('no_identity', reason='phone certificate or key missing from the store')
    r = Provisioned()
    r.ip = p.ip
    r.mac = mac
    r.call_managers = cms
    r.srst = srst
    r.srst_why = why
    r.identity = (cert, key) if cert is not None and key is not None else None
    r.monitor_s = monitor_s
    r.secure = secure
    return r


def _srst(p, mode, s, ev):
    if s is None or not s['servers']:
        return None, 'no SRST reference in the configuration'
    if mode not in (2, 3):
        return None, 'security mode %d: Secure SRST needs 2 or 3' % mode
    if p.trust is None:
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
    if p.store.read_bytes('srst.der') != der:
        p.store.write_bytes('srst.der', der)
        ev.emit('srst_pinned', cn=cn, sha256=s['cert_sha256'])
    host, port = s['servers'][0]
    return (host, port + _SECURE_OFFSET, (der, cn)), None
