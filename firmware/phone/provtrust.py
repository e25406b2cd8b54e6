# Provisioning, the trust-list step (phone.provision imports it for the step and drops it):
# the stored trust list when none is in force yet, then the downloaded CTL and ITL, verified
# against the SASTs in force (or the one pinned at flash time; none: first use), committed or
# dropped. The trust list in force is kept as plain values (provision._Trust), never as ctl
# objects: their classes' methods would keep ctl loaded.
import gc

from phone.provision import _CTL, _PIN, _VERIFY, _Trust, _drop


def check(p, ev, got):
    """The stored trust list (when none is in force yet), then the downloaded CTL/ITL
    (`got` from _download, or None): verified against the SASTs in force (or the one
    pinned at flash time; none: first use), committed or dropped."""
    from phone import ctl
    pin = None
    if p.trust is None:
        pin = p.store.read_bytes(_PIN)
        if p.store.exists(_CTL):
            try:
                p.trust = _compact(p, ctl, ctl.load_trust(p.store.path(_CTL),
                                                          [pin] if pin else None))
            except ctl.CtlError as e:
                _unless_memory(e)
                ev.emit('ctl_rejected', source='store', reason=str(e))
    if p.trust is not None:
        anchors = p.trust.sast
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
        if (p.trust is not None and (kind == 'CTL' or same)
                and _same(w.tmp, p.store.path(_CTL if kind == 'CTL' else 'itl.tlv'))):
            w.abort()
            same = kind == 'CTL'
            ev.emit('ctl_accepted', kind=kind, file=name, unchanged=True)
            continue
        gc.collect()            # an RSA check next: give it the heap in one piece
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
            tl.path = p.store.path(_CTL)
            p.trust = _compact(p, ctl, tl)
            # The ITL next is checked against the SASTs now in force (one copy of them,
            # not the old list beside the new one).
            anchors = p.trust.sast
        tl = None
    got = ctl = None
    _drop(*_VERIFY)


def _compact(p, ctl, tl):
    t = _Trust()
    t.path = tl.path
    t.sast = tl.sast_certs()
    t.tftp = tl.keys(ctl.ROLE_TFTP, ctl.ROLE_CCM_TFTP)
    t.ccm = [(r.cn, r.dns, r.ip, r.cert_off, r.cert_len) for r in tl.records
             if r.role in (ctl.ROLE_CCM, ctl.ROLE_CCM_TFTP) and r.cert_len]
    return t


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
