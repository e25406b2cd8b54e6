# heap: 128K
# The phone's certificate and key stay in its store (issue 16, the story at 80 KB): the
# agent's identity is the two files' paths and phone.link reads them for each TLS context it
# makes, so the 2 KB are not held in the heap through every session. A fleet's or a test's
# identity is the bytes themselves.
import asyncio

import fakes
from fakes import Owner
from fwtest import CaptureOut
from fwtest import eq
from phone import link as _link
from phone.events import Events
from phone.sccplink import SccpLink
from phone.settings import Settings
from phone.store import Store

CERT = b'\x30\x82' + b'C' * 883
KEY = b'\x30\x82' + b'K' * 1214
ANCHOR = (b'\x30\x82pinned', 'cm1')


def _stored(tmp_path):
    st = Store(tmp_path + '/state')
    st.write_bytes('phone.der', CERT)
    st.write_bytes('phone.key', KEY)
    return st


def test_a_context_presents_the_stored_certificate_and_key(tmp_path):
    st = _stored(tmp_path)
    ident = (st.path('phone.der'), st.path('phone.key'))
    fakes.install()
    ctx = _link.context('cm', ANCHOR, ident)
    eq(ctx.identity, (CERT, KEY))
    # what the cache keeps of the identity is the paths, never the bytes read
    for der, kept, c in _link._contexts.values():
        assert kept is ident, kept


def test_a_new_file_is_read_for_the_next_context(tmp_path):
    # A new anchor (another call manager, a new config) makes a new context: it reads the files
    # again, so a certificate renewed in the store is the one presented from then on.
    st = _stored(tmp_path)
    ident = (st.path('phone.der'), st.path('phone.key'))
    fakes.install()
    _link.context('cm', ANCHOR, ident)
    st.write_bytes('phone.der', CERT + b'2')
    ctx = _link.context('cm', (b'\x30\x82other', 'cm2'), ident)
    eq(ctx.identity, (CERT + b'2', KEY))


def test_bytes_are_presented_as_they_are(tmp_path):
    fakes.install()
    eq(_link.context('srst', ANCHOR, (CERT, KEY)).identity, (CERT, KEY))


def test_a_file_gone_fails_the_connect_with_its_reason(tmp_path):
    st = _stored(tmp_path)
    st.remove('phone.key')
    fakes.install()
    out = CaptureOut()
    owner = Owner(Events(out=out), Settings({}), (st.path('phone.der'), st.path('phone.key')))
    lk = SccpLink(owner, 'primary', '127.0.0.1', 9, ANCHOR, 'cm1')
    try:
        asyncio.run(lk.connect(timeout_ms=500))
    except _link.LinkError as e:
        eq(str(e), 'phone identity %s: OSError ENOENT' % st.path('phone.key'))
    else:
        assert False, 'connected without a key'
    eq(lk.mode, _link.DOWN)
