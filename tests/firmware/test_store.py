# phone.store under MicroPython: atomic replace, recovery, and the real FAT and LittleFS code
# of the port (VfsFat / VfsLfs2 on a file-backed block device).
import os

from blockfile import BlockFile
from fwtest import eq, raises
from phone import store as S
from phone.store import Store, StoreError


def mount(tmp, kind, n=64):
    import vfs
    cls = vfs.VfsFat if kind == 'fat' else vfs.VfsLfs2
    bd = BlockFile(tmp + '/' + kind + '.img', n)
    cls.mkfs(bd)
    mp = '/' + kind + str(n)
    vfs.mount(cls(bd), mp)
    return mp


def listing(st):
    return sorted(os.listdir(st.base))


# What the store holds, read beside it (the firmware needs none of these)
def names(st):
    """Stored files (no temporary or backup names)."""
    return sorted(n for n in os.listdir(st.base) if not (n.endswith(S.TMP) or n.endswith(S.BAK)))


def size(st, name):
    try:
        return os.stat(st.path(name))[6]
    except OSError:
        return None


def free(st):
    s = os.statvfs(st.base)
    return s[1] * s[4]


def test_write_read_exists(tmp_path):
    st = Store(tmp_path + '/state')
    eq((st.exists(S.CTL), st.read_bytes(S.CTL), size(st, S.CTL)), (False, None, None))
    eq(st.write_bytes(S.CTL, b'one'), 3)
    eq(st.read_bytes(S.CTL), b'one')
    st.write_bytes(S.CTL, b'two!')
    eq((st.read_bytes(S.CTL), size(st, S.CTL), st.exists(S.CTL)), (b'two!', 4, True))
    eq(st.path(S.CTL), tmp_path + '/state/' + S.CTL)
    st.write_bytes(S.SRST_CERT, bytearray(b'\x30\x00'))
    eq(names(st), [S.CTL, S.SRST_CERT])
    eq(listing(st), [S.CTL, S.SRST_CERT])
    eq(st.read_bytes(S.SRST_CERT), b'\x30\x00')
    st.remove(S.SRST_CERT)
    st.remove(S.SRST_CERT)              # removing a missing file is fine
    eq(names(st), [S.CTL])
    assert free(st) > 0
    eq(st.recovered, [])


def test_stream_commit_and_abort(tmp_path):
    st = Store(tmp_path)
    st.write_bytes(S.ITL, b'good')
    w = st.begin(S.ITL)
    w.write(b'half a downl')
    eq(listing(st), [S.ITL, S.ITL + '.tmp'])
    eq(st.read_bytes(S.ITL), b'good')    # readers still see the old file
    w.abort()                            # e.g. the signature did not verify
    eq((st.read_bytes(S.ITL), listing(st)), (b'good', [S.ITL]))
    w = st.begin(S.ITL)
    w.write(b'never ')
    w.write(memoryview(b'committed'))
    w.close()                            # finished, not committed (to be verified)
    eq((st.read_bytes(S.ITL), listing(st)), (b'good', [S.ITL, S.ITL + '.tmp']))
    w.abort()
    eq((st.read_bytes(S.ITL), listing(st)), (b'good', [S.ITL]))
    w = st.begin(S.ITL)
    w.write(b'new ')
    w.write(memoryview(b'contentXX')[0:7])
    eq(w.commit(), 11)
    eq((st.read_bytes(S.ITL), listing(st)), (b'new content', [S.ITL]))
    with raises(StoreError, match='finished'):
        w.write(b'x')
    with raises(StoreError, match='finished'):
        w.commit()


def test_bad_names_and_folder(tmp_path):
    st = Store(tmp_path)
    for bad in ('', 'a/b', '.hidden', 'x.tmp', 'x.bak', 'n' * 65, None):
        with raises(StoreError, match='bad file name'):
            st.write_bytes(bad, b'x')
    with open(tmp_path + '/plain', 'w') as f:
        f.write('a file, not a folder')
    with raises(StoreError, match='store folder'):
        Store(tmp_path + '/plain/state')
    Store(tmp_path + '/a/b/c').write_bytes('x', b'1')   # parents are created


def test_leftover_tmp_removed_never_read(tmp_path):
    st = Store(tmp_path)
    st.write_bytes(S.CTL, b'old')
    for n in (S.CTL + '.tmp', S.PHONE_KEY + '.tmp'):
        with open(tmp_path + '/' + n, 'wb') as f:
            f.write(b'half')
    st = Store(tmp_path)
    eq(sorted(st.recovered), [('dropped', S.CTL + '.tmp'), ('dropped', S.PHONE_KEY + '.tmp')])
    eq((listing(st), st.read_bytes(S.CTL), st.exists(S.PHONE_KEY)), ([S.CTL], b'old', False))


def test_stepwise_replace_and_recovery(tmp_path):
    st = Store(tmp_path, replace=False)
    st.write_bytes(S.CONFIG, b'v1')
    st.write_bytes(S.CONFIG, b'v2')
    eq((st.read_bytes(S.CONFIG), listing(st)), (b'v2', [S.CONFIG]))
    p = st.path(S.CONFIG)

    def put(path, data):
        with open(path, 'wb') as f:
            f.write(data)

    # power lost after NAME -> NAME.bak: roll back to the old file
    os.rename(p, p + '.bak')
    put(p + '.tmp', b'v3')
    st = Store(tmp_path, replace=False)
    eq(st.recovered, [('restored', S.CONFIG), ('dropped', S.CONFIG + '.tmp')])
    eq((st.read_bytes(S.CONFIG), listing(st)), (b'v2', [S.CONFIG]))
    # power lost after NAME.tmp -> NAME: keep the new file
    put(p + '.bak', b'v2')
    put(p, b'v3')
    st = Store(tmp_path)
    eq(st.recovered, [('dropped', S.CONFIG + '.bak')])
    eq((st.read_bytes(S.CONFIG), listing(st)), (b'v3', [S.CONFIG]))


def test_fat_and_littlefs(tmp_path):
    eq(Store(tmp_path).replace, True)            # unix port: VfsPosix
    for kind, atomic in (('fat', False), ('lfs', True)):
        st = Store(mount(tmp_path, kind) + '/state')
        eq(st.replace, atomic, kind)
        st.write_bytes(S.CTL, b'A' * 600)
        st.write_bytes(S.CTL, b'B' * 700)        # rename over an existing file
        st.write_bytes(S.PHONE_CERT, b'cert')
        eq((st.read_bytes(S.CTL), names(st)), (b'B' * 700, [S.CTL, S.PHONE_CERT]))
        eq(listing(st), [S.CTL, S.PHONE_CERT])


def test_full_flash_keeps_the_old_file(tmp_path):
    for kind, n in (('fat', 64), ('lfs', 32)):
        st = Store(mount(tmp_path, kind, n) + '/s')
        st.write_bytes(S.CTL, b'good')
        chunk = b'x' * 512
        with raises(StoreError, match='ctl.tlv'):
            w = st.begin(S.CTL)
            for _ in range(80):                   # 40 KB into a 16 or 32 KB filesystem
                w.write(chunk)                    # a failed write aborts
            w.commit()
        eq((st.read_bytes(S.CTL), listing(st)), (b'good', [S.CTL]), kind)
