# heap: 128K
# Why not 96K: this module (compiled from source inside the test process, 20 functions) and
# the events of every boot it keeps share the heap with provisioning; the firmware alone, as
# deployed, is held to 96K by tests/host/test_provision_heap.py.
# Trust is never downgraded: provisioning (phone.provision with its provtrust/provcfg steps,
# config.load) on a real store, with the TFTP downloads answered from committed files
# (fixtures/data/trust, made by make_trust_fixtures.py). Once the phone has trust - a SAST
# pinned at provisioning or a stored CTL - it takes no first-use CTL, no unsigned or
# plain-text config, no config signed for another phone or older than the stored one, no
# trust list older than the one in force, and never plain TCP; what it refuses is an event
# with the reason, and its stored state stays.
import json

from fwtest import CaptureOut, eq
from phone import provision
from phone.events import Events
from phone.settings import Settings
from phone.store import Store

D = 'fixtures/data/trust/'
DEV = 'SEP001122334455'
CFG = DEV + '.cnf.xml'
SGN = CFG + '.sgn'
CTL = 'CTLFile.tlv'
ITL = 'ITLFile.tlv'


class Plat:
    profile = {}

    def mac(self):
        return '001122334455'

    def device_name(self):
        return DEV


def _copy(src, w):
    buf = bytearray(512)
    with open(src, 'rb') as f:
        n = f.readinto(buf)
        while n:
            w.write(memoryview(buf)[:n])
            n = f.readinto(buf)


def _bytes(path):
    try:
        with open(path, 'rb') as f:
            return f.read()
    except OSError:
        return None


class Phone:
    """A board's store, booted again and again against what `serve` maps TFTP names to
    (fixture names; None: no server answers)."""

    def __init__(self, tmp, pin=False):
        self.store = Store(tmp + '/state')
        if pin:
            self.put('sast.der', 'sast.der')
        self.out = None

    def put(self, name, fixture):
        w = self.store.begin(name)
        _copy(D + fixture, w)
        w.commit()

    def boot(self, serve):
        self.out = CaptureOut()
        ev = Events(out=self.out)
        p = provision.Provisioner(self.store, Settings())
        store = self.store

        def network(plat, ev):
            return ['192.0.2.1']

        def download(ev, servers, wanted):
            got = []
            for kind, names, dest in wanted:
                if serve is None:
                    got.append((kind, None, 'unreachable'))
                    break
                w = None
                why = 'File not found'
                for n in names:
                    if serve.get(n) == 'unreachable':
                        why = 'unreachable'
                        break
                    if serve.get(n):
                        w = store.begin(dest)
                        _copy(D + serve[n], w)
                        w.close()
                        why = n
                        break
                got.append((kind, w, why))
                if why == 'unreachable':
                    break
            return got

        p._network = network
        p.download = download
        try:
            return p._once(Plat(), ev)
        finally:
            p = None
            provision.unload()

    def events(self, name):
        out = []
        for line in self.out.lines():
            if line.startswith('{'):
                e = json.loads(line)
                if e['ev'] == name:
                    out.append(e)
        return out

    def reason(self, name):
        got = self.events(name)
        assert got, 'no %s event in:\n%s' % (name, self.out.text())
        return got[-1].get('reason') or ''

    def has(self, name):
        return self.store.exists(name)


def _secure(r):
    """A result that can only make TLS links to certificates of the trust list."""
    assert r is not None
    assert r.secure
    for name, host, port, anchor in r.call_managers:
        assert port == 2443, (name, port)


def _signed_first(ph, cfg='cfg3.sgn'):
    """A phone provisioned the proper way: CTL + ITL + its signed mode-3 config."""
    r = ph.boot({CTL: 'ctl.tlv', ITL: 'itl.tlv', SGN: cfg})
    _secure(r)
    eq(ph.events('config_accepted')[0]['signed'], True)
    assert r.call_managers[0][3] is not None and r.srst is not None
    return r


# -- 1: a pinned SAST and no stored CTL ----------------------------------------------------

def test_pinned_sast_refuses_a_rogue_ctl_and_an_unsigned_mode1_config(tmp_path):
    ph = Phone(tmp_path, pin=True)
    r = ph.boot({CTL: 'ctl_rogue.tlv', CFG: 'cfg1.xml'})
    eq(r, None)
    assert 'unknown SAST' in ph.reason('ctl_rejected')
    assert 'unsigned configuration refused' in ph.reason('config_rejected')
    eq(ph.events('provisioned'), [])
    eq(ph.events('config_accepted'), [])
    for name in ('ctl.tlv', 'config.xml', 'config.json'):
        assert not ph.has(name), name
    assert ph.has('sast.der')


def test_pinned_sast_refuses_an_unsigned_mode3_config_too(tmp_path):
    ph = Phone(tmp_path, pin=True)
    eq(ph.boot({CTL: 'ctl_rogue.tlv', CFG: 'cfg3.xml'}), None)
    assert 'unsigned configuration refused' in ph.reason('config_rejected')
    assert not ph.has('config.xml')


def test_pinned_sast_takes_the_real_cluster(tmp_path):
    ph = Phone(tmp_path, pin=True)
    _signed_first(ph)
    eq(ph.events('ctl_accepted')[0]['first_use'], False)


def test_stored_unsigned_config_is_not_used_once_there_is_trust(tmp_path):
    ph = Phone(tmp_path)
    r = ph.boot({CFG: 'cfg1.xml'})            # no trust yet: a plain cluster, mode 1
    assert r is not None and not r.secure
    ph.put('sast.der', 'sast.der')            # then `phonelab identity --sast`
    eq(ph.boot(None), None)                   # offline: only the stored config is there
    assert 'not signed' in ph.reason('config_rejected')
    eq(ph.events('provisioned'), [])


def test_stored_ctl_without_pin_also_refuses_unsigned(tmp_path):
    ph = Phone(tmp_path)
    _signed_first(ph)
    r = ph.boot({CTL: 'ctl_rogue.tlv', CFG: 'cfg1.xml'})   # rogue TFTP; stored state kept
    _secure(r)
    assert 'unknown SAST' in ph.reason('ctl_rejected')
    eq(ph.events('config_accepted'), [])
    eq(_bytes(ph.store.path('ctl.tlv')), _bytes(D + 'ctl.tlv'))


def test_an_unusable_stored_ctl_without_pin_allows_no_first_use(tmp_path):
    ph = Phone(tmp_path)
    w = ph.store.begin('ctl.tlv')
    w.write(b'\x01\x00\x02not a trust list')
    w.commit()
    eq(ph.boot({CTL: 'ctl_rogue.tlv', CFG: 'cfg1.xml'}), None)
    assert 're-provision' in ph.reason('ctl_rejected')
    eq(ph.events('ctl_accepted'), [])
    assert not ph.has('config.xml')


# -- 2: signed config replay ----------------------------------------------------------------

def test_config_signed_for_another_phone_is_refused(tmp_path):
    ph = Phone(tmp_path, pin=True)
    _signed_first(ph)
    before = _bytes(ph.store.path('config.xml'))
    r = ph.boot({CTL: 'ctl.tlv', ITL: 'itl.tlv', SGN: 'cfg_other.sgn'})
    eq(ph.reason('config_rejected'), 'signed for SEP0011223344FF, not this phone')
    _secure(r)                                # the stored mode-3 config, TLS
    eq(ph.events('provisioned')[0]['security_mode'], 3)
    eq(_bytes(ph.store.path('config.xml')), before)


def test_config_with_no_file_name_is_refused(tmp_path):
    ph = Phone(tmp_path, pin=True)
    _signed_first(ph)
    ph.boot({CTL: 'ctl.tlv', SGN: 'cfg_noname.sgn'})
    eq(ph.reason('config_rejected'), 'signed for no file name, not this phone')


def test_older_config_is_refused_and_a_newer_one_taken(tmp_path):
    ph = Phone(tmp_path, pin=True)
    _signed_first(ph)
    r = ph.boot({CTL: 'ctl.tlv', SGN: 'cfg_old.sgn'})
    assert 'older than the stored configuration' in ph.reason('config_rejected')
    _secure(r)
    # the header's name with .sgn and in other case is this phone's; its time is later
    ph.boot({CTL: 'ctl.tlv', SGN: 'cfg3_new.sgn'})
    eq(ph.events('config_accepted')[0]['ts'], 1767225600 + 86400)
    # and now the first one is the older one
    ph.boot({CTL: 'ctl.tlv', SGN: 'cfg3.sgn'})
    assert 'older than the stored configuration' in ph.reason('config_rejected')


# -- 3: trust list rollback -----------------------------------------------------------------

def test_older_ctl_signed_by_the_real_sast_is_refused(tmp_path):
    ph = Phone(tmp_path)
    _signed_first(ph)
    r = ph.boot({CTL: 'ctl_old.tlv', ITL: 'itl.tlv', SGN: 'cfg3.sgn'})
    reason = ph.reason('ctl_rejected')
    assert reason.startswith('older than the CTL in force'), reason
    eq(_bytes(ph.store.path('ctl.tlv')), _bytes(D + 'ctl.tlv'))
    eq(r.call_managers[0][3][0], _bytes(D + 'ccm.der'))     # not the old certificate


def test_older_itl_is_refused(tmp_path):
    ph = Phone(tmp_path)
    _signed_first(ph)
    ph.boot({CTL: 'ctl.tlv', ITL: 'itl_old.tlv', SGN: 'cfg3.sgn'})
    assert ph.reason('ctl_rejected').startswith('older than the ITL in force')
    eq(_bytes(ph.store.path('itl.tlv')), _bytes(D + 'itl.tlv'))


def test_newer_ctl_is_taken(tmp_path):
    ph = Phone(tmp_path)
    _signed_first(ph)
    _secure(ph.boot({CTL: 'ctl_new.tlv', ITL: 'itl.tlv', SGN: 'cfg3.sgn'}))
    eq(ph.events('ctl_accepted')[0]['ts'], 1767225600 + 86400)
    eq(_bytes(ph.store.path('ctl.tlv')), _bytes(D + 'ctl_new.tlv'))


# -- 4: the rest of the downgrade surface ---------------------------------------------------

def test_security_mode_is_never_lowered(tmp_path):
    ph = Phone(tmp_path, pin=True)
    _signed_first(ph)
    r = ph.boot({CTL: 'ctl.tlv', SGN: 'cfg2.sgn'})
    eq(ph.reason('config_rejected'), 'security mode lowered from 3 to 2')
    eq(ph.events('provisioned')[0]['security_mode'], 3)
    r = ph.boot({CTL: 'ctl.tlv', SGN: 'cfg1.sgn'})
    assert ph.reason('config_rejected').startswith('security mode 1 (plain text) refused')
    _secure(r)


def test_signed_mode1_config_is_refused_on_first_boot_with_a_pin(tmp_path):
    ph = Phone(tmp_path, pin=True)
    eq(ph.boot({CTL: 'ctl.tlv', SGN: 'cfg1.sgn'}), None)
    assert ph.reason('config_rejected').startswith('security mode 1 (plain text) refused')
    assert not ph.has('config.xml')


def test_srst_certificate_removed_drops_the_standby_and_its_pin(tmp_path):
    ph = Phone(tmp_path, pin=True)
    _signed_first(ph)
    assert ph.has('srst.der')
    r = ph.boot({CTL: 'ctl.tlv', SGN: 'cfg_nosrst.sgn'})
    _secure(r)
    eq(r.srst, None)
    assert 'no SRST certificate' in r.srst_why
    assert ph.events('srst_unpinned')
    assert not ph.has('srst.der')


def test_ctl_without_the_ccm_record_leaves_no_plain_or_unverified_link(tmp_path):
    ph = Phone(tmp_path, pin=True)
    _signed_first(ph)
    r = ph.boot({CTL: 'ctl_noccm.tlv', SGN: 'cfg3.sgn'})
    eq(ph.events('ctl_accepted')[0]['records'], 3)       # SAST x2, TFTP
    _secure(r)
    eq([cm[3] for cm in r.call_managers], [None])   # the agent skips it: cm_untrusted


# -- found on the way -----------------------------------------------------------------------

def test_stored_ctl_signed_by_the_second_sast_stays_in_force_with_a_pin(tmp_path):
    # Either SAST token may sign the next CTL; a pinned phone must keep it at the next boot
    # (it was checked against the SASTs in force when it was stored).
    ph = Phone(tmp_path, pin=True)
    _signed_first(ph)
    _secure(ph.boot({CTL: 'ctl_sast2.tlv', SGN: 'cfg3.sgn'}))
    eq(_bytes(ph.store.path('ctl.tlv')), _bytes(D + 'ctl_sast2.tlv'))
    r = ph.boot(None)                         # offline: the stored state alone
    eq(ph.events('ctl_rejected'), [])
    _secure(r)
    eq(r.call_managers[0][3][0], _bytes(D + 'ccm.der'))
    assert r.srst is not None


def test_a_stored_ctl_that_does_not_list_the_pinned_sast_gives_way(tmp_path):
    # A phone moved to another cluster by pinning that cluster's SAST
    ph = Phone(tmp_path)
    _secure(ph.boot({CTL: 'ctl_elsewhere.tlv', SGN: 'cfg3.sgn'}))
    ph.put('sast.der', 'sast.der')
    r = ph.boot({CTL: 'ctl.tlv', SGN: 'cfg3.sgn'})
    assert 'does not list the pinned SAST' in ph.events('ctl_rejected')[0]['reason']
    eq(ph.events('ctl_accepted')[0]['first_use'], False)
    _secure(r)
    eq(_bytes(ph.store.path('ctl.tlv')), _bytes(D + 'ctl.tlv'))


def test_an_itl_served_as_the_ctl_is_refused(tmp_path):
    # both signed by the real SAST: the header's file name tells them apart
    ph = Phone(tmp_path, pin=True)
    _signed_first(ph)
    _secure(ph.boot({CTL: 'itl.tlv', ITL: 'ctl.tlv', SGN: 'cfg3.sgn'}))
    reasons = [e['reason'] for e in ph.events('ctl_rejected')]
    eq(reasons, ['ITL served in place of the CTL', 'CTL served in place of the ITL'])
    eq(_bytes(ph.store.path('ctl.tlv')), _bytes(D + 'ctl.tlv'))


# -- provision_failed says what failed ----------------------------------------------------

def test_provision_failed_says_the_config_was_refused(tmp_path):
    ph = Phone(tmp_path, pin=True)
    eq(ph.boot({CTL: 'ctl.tlv', ITL: 'itl.tlv', SGN: 'cfg_other.sgn'}), None)
    eq(ph.reason('provision_failed'),
       'no configuration: config refused and none stored (see config_rejected)')
    ph = Phone(tmp_path + '/b', pin=True)         # a rogue CTL: no key to check a config
    eq(ph.boot({CTL: 'ctl_rogue.tlv', CFG: 'cfg1.xml'}), None)
    eq(ph.reason('provision_failed'),
       'no configuration: config refused and none stored (see config_rejected)')


def test_provision_failed_says_the_stored_config_was_refused(tmp_path):
    ph = Phone(tmp_path)
    assert ph.boot({CFG: 'cfg1.xml'}) is not None      # a plain cluster, mode 1
    ph.put('sast.der', 'sast.der')                     # then trust: the stored one is refused
    eq(ph.boot(None), None)
    eq(ph.reason('provision_failed'),
       'no configuration: TFTP unreachable and the stored one refused (see config_rejected)')


def test_provision_failed_says_the_config_was_not_there_or_not_reached(tmp_path):
    ph = Phone(tmp_path, pin=True)
    eq(ph.boot({CTL: 'ctl.tlv', ITL: 'itl.tlv'}), None)
    eq(ph.reason('provision_failed'),
       'no configuration: config not on TFTP (File not found) and none stored')
    eq(ph.boot({CTL: 'ctl.tlv', ITL: 'itl.tlv', SGN: 'unreachable'}), None)
    eq(ph.reason('provision_failed'), 'no configuration: TFTP unreachable and none stored')
    eq(ph.boot(None), None)
    eq(ph.reason('provision_failed'), 'no configuration: TFTP unreachable and none stored')


# -- the clock: a floor from what provisioning verified -------------------------------------

def test_verified_files_give_a_power_up_clock_its_floor(tmp_path):
    """A board's clock reads 2000-01-01 after power-up: the trust list and the signed config
    in force were signed no later than now, so the result carries the later of their
    timestamps (signed_ts) and boot moves the clock forward to it (a floor: no date verdicts
    from it). Offline, the stored ones give it."""
    from phone import clock
    clock._platform = lambda: 946684800
    ph = Phone(tmp_path, pin=True)
    r = _signed_first(ph)
    ts = max(ph.events('ctl_accepted')[0]['ts'], ph.events('config_accepted')[0]['ts'])
    assert ts > 1577836800, ts
    eq(r.signed_ts, ts)
    clock.floor(r.signed_ts)                   # what boot does
    eq(clock.now(), ts)
    eq(clock.source, 'floor')
    eq(clock.utc(), None)
    r = ph.boot(None)                          # offline: the stored files
    eq(r.signed_ts, ts)
    eq(Phone(tmp_path + '/other').boot({CFG: 'cfg1.xml'}).signed_ts, 0)   # nothing signed


# -- the phone's own identity ----------------------------------------------------------------

def test_the_phone_identity_is_handed_over_as_its_files(tmp_path):
    # Paths, not bytes (issue 16): phone.link reads them for each TLS context, so the 2 KB of
    # certificate and key are not held in the heap through every session.
    ph = Phone(tmp_path + '/with', pin=True)
    ph.put('phone.der', 'ccm.der')
    ph.put('phone.key', 'sast.der')
    eq(_signed_first(ph).identity, (ph.store.path('phone.der'), ph.store.path('phone.key')))
    eq(ph.events('no_identity'), [])
    ph = Phone(tmp_path + '/without', pin=True)
    ph.put('phone.der', 'ccm.der')
    eq(_signed_first(ph).identity, None)
    assert 'missing' in ph.reason('no_identity')
