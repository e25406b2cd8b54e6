# Provisioning, the trust-list step (phone.provision imports it for the step and drops it):
# the stored trust list when none is in force yet, then the downloaded CTL and ITL, verified
# against the SASTs in force (or the one pinned at flash time; none: first use), committed or
# dropped; never one older than the one in force (rollback), never first use once the phone
# has trust (a pinned SAST or a stored CTL). The trust list in force is kept as plain values
# (Provisioner.Trust), never as ctl objects: their classes' methods would keep ctl loaded.
# One unit with phone.provision and phone.provcfg: see phone/provision.py.
import gc

from phone import drop
from phone.store import CTL, ITL, SAST_PIN


def check(p, ev, got):
    """The stored trust list (when none is in force yet), then the downloaded CTL/ITL
    (`got` from Provisioner.download, or None): verified against the SASTs in force (or the one
    pinned at flash time; none: first use), refused when older than the one in force,
    committed or dropped. Sets p.required: the phone has trust (a pinned SAST or a stored
    CTL), so it never takes less (no first use, no unsigned config, no plain text)."""
    from phone import ctl
    pin = None
    stored = p.store.exists(CTL)
    p.required = stored or p.store.exists(SAST_PIN)
    if p.trust is None:
        pin = p.store.read_bytes(SAST_PIN)
        if stored:
            gc.collect()        # an RSA check next (see below)
            try:
                # Verified against the anchors in force when it was stored: now its own
                # signature, and the pinned SAST must still be one of its SASTs (whichever
                # of them signed it: either token may sign a CTL; a phone moved to another
                # cluster by pinning that cluster's SAST drops the old list here).
                tl = ctl.load_trust(p.store.path(CTL))
                if pin and pin not in tl.sast_certs():
                    raise ctl.CtlError('stored trust list does not list the pinned SAST')
                p.trust = _compact(p, ctl, tl)
                tl = None
            except ctl.CtlError as e:
                tl = None
                _unless_memory(e)
                ev.emit('ctl_rejected', source='store', reason=str(e))
    if p.trust is not None:
        anchors = p.trust.sast
    else:
        anchors = [pin] if pin else None
    pin = None
    same = False                # the CTL downloaded is the one in force
    for kind, w, name in got or ():
        if w is None:
            if name != 'unreachable':
                ev.emit('trust_missing', kind=kind, reason=name)
            continue
        dest = CTL if kind == 'CTL' else ITL
        # A file identical to the stored one needs no second check (the usual boot: saves
        # an RSA verification and its heap): the CTL when it is the trust list in force
        # (verified this boot), the ITL when, besides, the CTL (its anchors) is unchanged.
        if (p.trust is not None and (kind == 'CTL' or same)
                and _same(w.tmp, p.store.path(dest))):
            w.abort()
            same = kind == 'CTL'
            ev.emit('ctl_accepted', kind=kind, file=name, unchanged=True)
            continue
        if p.required and not anchors:
            # a stored CTL that no longer verifies, and no pinned SAST: nothing to check a
            # new one against, and first use is over
            w.abort()
            ev.emit('ctl_rejected', kind=kind, file=name,
                    reason='no trusted SAST to verify it (stored trust list unusable, none '
                           'pinned): re-provision the phone')
            continue
        gc.collect()            # an RSA check next: give it the heap in one piece
        try:
            tl = ctl.load_trust(w.tmp, anchors)
            if tl.kind != kind:     # by its header's file name: an ITL in the CTL's place
                raise ctl.CtlError('%s served in place of the %s' % (tl.kind, kind))
            # Rollback: never older than the one in force (the CTL's was read when it was
            # verified; the stored ITL's header is read now)
            if kind == 'CTL':
                floor = p.trust.ts if p.trust is not None else 0
            else:
                floor = ctl.parse_sgn(p.store.path(dest)).timestamp if p.store.exists(dest) else 0
            if (tl.timestamp or 0) < (floor or 0):
                raise ctl.CtlError('older than the %s in force (timestamp %d < %d)'
                                   % (kind, tl.timestamp or 0, floor))
        except ctl.CtlError as e:
            w.abort()
            _unless_memory(e)
            ev.emit('ctl_rejected', kind=kind, file=name, reason=str(e))
            tl = None
            continue
        w.commit()
        ev.emit('ctl_accepted', kind=kind, file=name, records=len(tl.records),
                first_use=tl.tofu, hash=tl.hash_code, ts=tl.timestamp)
        if kind == 'CTL':
            # Certificates are read back from the file: the committed name now holds the
            # verified bytes.
            tl.path = p.store.path(CTL)
            p.trust = _compact(p, ctl, tl)
            p.required = True
            # The ITL next is checked against the SASTs now in force (one copy of them,
            # not the old list beside the new one).
            anchors = p.trust.sast
        tl = None
    got = ctl = None
    drop(*p.VERIFY)


def _compact(p, ctl, tl):
    t = p.Trust()
    t.path = tl.path
    t.ts = tl.timestamp or 0
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
