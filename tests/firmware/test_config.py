# phone.config under MicroPython (96K heap): real-shaped cnf.xml files, streaming, tolerance.
# Files are streamed, never read whole: after compiling, the heap's largest free run is ~3 KB.
import gc
import io
import os
import time

from fwtest import eq, raises
from phone import config
from phone.config import ConfigError

FX = 'fixtures/'
SEP = FX + 'SEP001122334455.cnf.xml'
DEFAULT = FX + 'XMLDefault.cnf.xml'
LARGE = FX + 'SEP00112233AABB-large.cnf.xml'


def P(xml, bufsize=1024):
    return config.parse(io.BytesIO(xml.encode()), bufsize)


class Cut:
    """The first n bytes of a file (a truncated download); samples the live heap per read."""

    def __init__(self, f, n=1 << 30, sample=False):
        self.f, self.n, self.sample, self.peak, self.reads = f, n, sample, 0, 0

    def readinto(self, b):
        if self.sample:
            gc.collect()
            self.peak = max(self.peak, gc.mem_alloc())
        self.reads += 1
        k = self.f.readinto(memoryview(b)[0:min(len(b), self.n)]) if self.n else 0
        self.n -= k
        return k


def size(path):
    return os.stat(path)[6]


def test_sep_file():
    c = config.parse_file(SEP)
    eq(c.root, 'device')
    eq([(m['priority'], m['name'], m['host'], m['port']) for m in c.call_managers],
       [(0, 'CM_cucm1', '203.0.113.10', 2000), (1, 'CM_cucm2', '203.0.113.11', 2000)])
    s = c.srst
    eq((s['name'], s['option'], s['secure'], s['servers']),
       ('branch-7', 'Enable', True, [['192.0.2.1', 2000]]))
    eq((len(s['cert']), s['cert'][0]), (839, 0x30))
    eq((c.security_mode, c.monitor_s), (3, 60))
    assert c.wants_srst_standby()
    eq(c.source_size, size(SEP))


def test_xmldefault_priorities_sorted_and_defaults():
    c = config.parse_file(DEFAULT)
    eq(c.root, 'Default')
    eq([(m['priority'], m['host'], m['port']) for m in c.call_managers],
       [(0, 'cucm1.example.net', 2000), (1, '203.0.113.11', 2000), (2, '203.0.113.12', 2002)])
    eq((c.srst, c.security_mode, c.monitor_s), (None, 1, 120))
    assert not c.wants_srst_standby()


def test_large_file_streams_under_heap_cap():
    # ~48 KB of XML, more than the free heap: a PEM certificate in CDATA after ~16 KB, a hex
    # certHash, big unknown bodies, long attributes, DOCTYPE.
    n = size(LARGE)
    assert n > 40 * 1024, n
    gc.collect()
    base = gc.mem_alloc()
    t0 = time.ticks_ms()
    c = config.parse_file(LARGE)
    ms = time.ticks_diff(time.ticks_ms(), t0)
    eq([m['host'] for m in c.call_managers], ['203.0.113.10', '203.0.113.11', '203.0.113.12'])
    eq([m['name'] for m in c.call_managers], ['CM_node0', 'CM_node1', 'CM_node2'])
    eq(c.srst['servers'], [['192.0.2.1', 2000], ['192.0.2.2', 2001]])
    eq(c.srst['cert'], config.parse_file(SEP).srst['cert'])
    eq((c.security_mode, c.monitor_s, c.srst['name']), (2, 90, 'big-branch'))
    del c
    gc.collect()
    with open(LARGE, 'rb') as f:
        s = Cut(f, sample=True)
        config.parse(s)
    live = s.peak - base
    print('large config: %d bytes, %d reads, parse %d ms, peak live heap +%d bytes'
          % (n, s.reads, ms, live))
    assert live < 12 * 1024, live


def test_same_result_for_any_chunk_size():
    want = config.parse_file(SEP).to_dict()
    for n in (128, 129, 200, 333, 4096):
        eq(config.parse_file(SEP, n).to_dict(), want, 'bufsize %d' % n)


def test_tolerated_features():
    # BOM, declaration, DOCTYPE, PI and comments holding markup, attributes with '>' and
    # either quote, entities, CDATA, whitespace, unknown <name>s, any order, empty elements
    for n in (40, 64, 1024):
        c = config.parse_file(FX + 'tolerant.cnf.xml', n)
        eq([(m['priority'], m['name'], m['host'], m['port']) for m in c.call_managers],
           [(0, 'first', 'first', 2100), (1, None, '203.0.113.2', 2000),
            (None, 'nopriority', 'nopriority', 2000)])
        s = c.srst
        eq(s['name'], 'A & B <AB> &bogus;')
        eq(s['option'], 'User <Specific> & co')
        eq((s['servers'], s['secure'], s['cert']), ([['192.0.2.9', 2000]], True, None))
        eq((c.monitor_s, c.security_mode), (45, 2))   # device level wins over devicePool
        assert not c.wants_srst_standby()


def test_truncated_xml_rejected():
    end = size(SEP) - 1             # the file ends with '</device>\n'
    for n in list(range(0, end, 61)) + [end - 1, end - 5]:
        with open(SEP, 'rb') as f:
            with raises(ConfigError):
                config.parse(Cut(f, n), 256)
    with open(SEP, 'rb') as f:
        config.parse(Cut(f, end), 256)      # complete once </device> is there


def test_unbalanced_and_garbage_rejected():
    for bad, why in (('<device><a></b></device>', '</b> does not close <a>'),
                     ('<device></device></device>', 'any element'),
                     ('<device/><device/>', 'second root'),
                     ('<device><a x="1></a></device>', 'truncated'),
                     ('<device><!-- open', 'comment'),
                     ('no xml at all', 'no XML element'),
                     ('', 'empty'),
                     ('<device><deviceSecurityMode>x</deviceSecurityMode></device>', 'number'),
                     ('<device><devicePool><srstInfo><name>' + 'n' * 300
                      + '</name></srstInfo></devicePool></device>', 'too long'),
                     ('<device><t ' + 'a="b" ' * 200 + '/></device>', 'longer than')):
        with raises(ConfigError, match=why):
            P(bad)


def test_limits_reached_not_passed():
    # 64 open elements, a 64-byte name, 256 bytes of text: accepted
    eq(P('<a>' * 64 + '</a>' * 64).root, 'a')
    eq(P('<device><%s/></device>' % ('n' * 64)).root, 'device')
    c = P('<device><devicePool><srstInfo><name>%s</name></srstInfo></devicePool></device>'
          % ('n' * 256))
    eq(c.srst['name'], 'n' * 256)


def srst_xml(inner):
    return ('<device><deviceSecurityMode>3</deviceSecurityMode><devicePool><srstInfo>'
            '<ipAddr1>192.0.2.1</ipAddr1>%s</srstInfo></devicePool></device>' % inner)


def test_cert_hash_checked():
    import binascii
    import hashlib
    der = config.parse_file(SEP).srst['cert']
    b64 = binascii.b2a_base64(der).decode().strip()
    good = binascii.b2a_base64(hashlib.sha256(der).digest()).decode().strip()
    bad = binascii.b2a_base64(hashlib.sha256(der + b'x').digest()).decode().strip()
    c = P(srst_xml('<certificate>%s</certificate><certHash>%s</certHash>' % (b64, good)))
    eq(c.srst['cert'], der)
    assert c.wants_srst_standby()
    with raises(ConfigError, match='certHash'):
        P(srst_xml('<certHash>%s</certHash><certificate>%s</certificate>' % (bad, b64)))
    with raises(ConfigError, match='certificate'):
        P(srst_xml('<certificate>%s</certificate>' % b64[:-8]))
    with raises(ConfigError, match='certificate'):
        P(srst_xml('<certificate>not base64 at all!</certificate>'))


def test_missing_cert_is_none():
    for inner in ('', '<certificate/>', '<certificate> </certificate>', '<certHash>AAAA</certHash>'):
        c = P(srst_xml(inner))
        eq((c.srst['cert'], c.srst['cert_sha256']), (None, None))
        assert not c.wants_srst_standby()


def test_json_roundtrip():
    for path in (SEP, DEFAULT):
        c = config.parse_file(path)
        d = config.loads(c.dumps())
        eq(d.to_dict(), c.to_dict())
        eq(d.srst and d.srst['cert'], c.srst and c.srst['cert'])
    for bad in ('{"root": 1}', 'not json', '[]'):
        with raises(ConfigError):
            config.loads(bad)


def copy_in(st, name, path):
    buf = bytearray(512)
    w = st.begin(name)
    with open(path, 'rb') as f:
        n = f.readinto(buf)
        while n:
            w.write(memoryview(buf)[0:n])
            n = f.readinto(buf)
    w.commit()


def test_stored_copy(tmp_path):
    from phone.store import CONFIG, CONFIG_RAW, Store
    st = Store(tmp_path + '/state')
    eq(config.load(st), None)
    copy_in(st, CONFIG_RAW, SEP)
    eq(config.load(st).security_mode, 3)    # parsed, and the JSON saved
    assert st.exists(CONFIG)
    # boot uses the JSON while it matches the raw XML
    js = st.read_bytes(CONFIG)
    st.write_bytes(CONFIG, js.replace(b'"security_mode": 3', b'"security_mode": 2'))
    eq(config.load(st).security_mode, 2)
    copy_in(st, CONFIG_RAW, DEFAULT)
    eq(config.load(st).root, 'Default')     # raw XML changed: parsed again
    eq(config.loads(st.read_bytes(CONFIG)).root, 'Default')
