# Persisted state on flash: trust lists (CTL/ITL), the config (raw XML + parsed JSON), the
# pinned SRST certificate, the phone's own key and certificate. One flat folder.
#
# Every write is atomic: the bytes go to NAME.tmp, which is flushed, closed (os.sync() where
# the port has it) and then renamed over NAME. A download that is rejected is aborted, so it
# never replaces a good file. Opening the store removes leftover .tmp files unread.
#
# Rename over an existing file is atomic on the unix port (VfsPosix) and on LittleFS, but
# MicroPython's VfsFat removes the target first and then renames, which leaves a window with
# neither file. There (and on any filesystem we cannot identify) a replace is done in steps:
# NAME -> NAME.bak, NAME.tmp -> NAME, remove NAME.bak; opening the store finishes or rolls back
# an interrupted replace, so either the old or the new content is always found.
#
# The store emits nothing; it raises StoreError. `fs` (an os-like object, optionally with an
# `open`) is the one injection point, for tests.
import os

BASE = '/state'                 # the store's folder unless the board profile says ("store")
# The store's file names: the one definition, for the firmware and the host tools.
CTL = 'ctl.tlv'
ITL = 'itl.tlv'
CONFIG_RAW = 'config.xml'       # as downloaded
CONFIG = 'config.json'          # parsed, what boot reads
SRST_CERT = 'srst.der'          # the pinned SRST router certificate (DER)
PHONE_KEY = 'phone.key'         # the phone's own key and certificate (DER)
PHONE_CERT = 'phone.der'
SAST_PIN = 'sast.der'           # the SAST certificate pinned at flash time (optional)

TMP = '.tmp'
BAK = '.bak'


class StoreError(Exception):
    pass


def _err(what, name, e):
    return StoreError('store: cannot %s %s: %s' % (what, name, e))


def rename_replaces(path, fs=os):
    """True when rename over an existing file is atomic on the filesystem holding `path`:
    CPython on POSIX, the unix port's VfsPosix, LittleFS. False for FAT or unknown."""
    try:
        import vfs
        mounts = vfs.mount()
    except ImportError:
        import sys
        return sys.implementation.name != 'micropython'
    except (TypeError, OSError, AttributeError):
        return False
    if not path.startswith('/'):
        path = fs.getcwd().rstrip('/') + '/' + path
    best = None
    blen = -1
    for obj, mp in mounts:
        if (mp == '/' or path == mp or path.startswith(mp + '/')) and len(mp) > blen:
            best = obj
            blen = len(mp)
    return type(best).__name__ in ('VfsPosix', 'VfsLfs2', 'VfsLfs1')


class Writer:
    """Streams one file into NAME.tmp; commit() renames it over NAME, abort() drops it."""

    def __init__(self, store, name):
        self.store = store
        self.name = name
        self.final = store.path(name)
        self.tmp = self.final + TMP
        self.size = 0
        self.f = None
        self.closed = False
        try:
            self.f = store._open(self.tmp, 'wb')
        except OSError as e:
            raise _err('create', self.tmp, e)

    def write(self, data):
        if self.f is None:
            raise StoreError('store: %s is already finished' % self.name)
        try:
            n = self.f.write(data)
        except OSError as e:
            self.abort()
            raise _err('write', self.tmp, e)
        self.size += len(data) if n is None else n
        return n

    def close(self):
        """Finish writing without committing, e.g. to verify the temporary file (self.tmp)
        before commit() or abort()."""
        f = self.f
        if f is None:
            return
        self.f = None
        try:
            f.flush()
            f.close()
        except OSError as e:
            self.abort()
            raise _err('close', self.tmp, e)
        self.closed = True

    def commit(self):
        if self.f is None and not self.closed:
            raise StoreError('store: %s is already finished' % self.name)
        f = self.f
        self.closed = False
        try:
            if f is not None:
                f.flush()
                self.f = None
                f.close()
            self.store._sync()
            self.store._replace(self.tmp, self.final)
        except OSError as e:
            self.f = f
            self.abort()
            raise _err('commit', self.name, e)
        return self.size

    def abort(self):
        f = self.f
        self.f = None
        self.closed = False
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
        try:
            self.store.os.remove(self.tmp)
        except OSError:
            pass


class Store:
    def __init__(self, base=BASE, fs=None, replace=None):
        """Open (create) the store in folder `base` and recover from an interrupted write.
        replace: True/False forces rename-over / stepwise replace; None detects it."""
        self.os = fs or os
        self._open = getattr(fs, 'open', None) or open
        self.base = base.rstrip('/') or '/'
        self._mkdirs()
        self.replace = rename_replaces(self.base, self.os) if replace is None else replace
        self.recovered = self.recover()     # [(action, file)]: for the caller to report

    # -- names -----------------------------------------------------------------------------
    def path(self, name):
        if (not isinstance(name, str) or not name or '/' in name or name[0] == '.'
                or name.endswith(TMP) or name.endswith(BAK) or len(name) > 64):
            raise StoreError('store: bad file name %r' % (name,))
        return self.base + '/' + name

    def _exists(self, p):
        try:
            self.os.stat(p)
            return True
        except OSError:
            return False

    def exists(self, name):
        return self._exists(self.path(name))

    # -- reading ---------------------------------------------------------------------------
    def read_bytes(self, name):
        """The whole file, or None when it is not stored."""
        p = self.path(name)
        try:
            f = self._open(p, 'rb')
        except OSError:
            return None
        try:
            return f.read()
        except OSError as e:
            raise _err('read', name, e)
        finally:
            f.close()

    # -- writing ---------------------------------------------------------------------------
    def begin(self, name):
        """A Writer streaming into NAME.tmp (for downloads): write(), then commit()/abort()."""
        return Writer(self, name)

    def write_bytes(self, name, data):
        w = Writer(self, name)
        w.write(data)
        return w.commit()

    def remove(self, name):
        p = self.path(name)
        try:
            self.os.remove(p)
        except OSError as e:
            if self._exists(p):
                raise _err('remove', name, e)
        self._sync()

    # -- atomic replace and recovery -------------------------------------------------------
    def _sync(self):
        s = getattr(self.os, 'sync', None)
        if s is not None:
            s()

    def _replace(self, tmp, final):
        o = self.os
        if self.replace or not self._exists(final):
            o.rename(tmp, final)
        else:
            bak = final + BAK
            if self._exists(bak):
                o.remove(bak)
            o.rename(final, bak)
            o.rename(tmp, final)
            o.remove(bak)
        self._sync()

    def recover(self):
        """Roll an interrupted stepwise replace back (NAME.bak without NAME) or forward
        (NAME.bak beside NAME), then drop every .tmp file unread."""
        done = []
        names = self._list()
        o = self.os
        try:
            for n in names:
                if n.endswith(BAK):
                    p = self.base + '/' + n
                    if n[:-len(BAK)] in names:
                        o.remove(p)
                        done.append(('dropped', n))
                    else:
                        o.rename(p, p[:-len(BAK)])
                        done.append(('restored', n[:-len(BAK)]))
            for n in names:
                if n.endswith(TMP):
                    o.remove(self.base + '/' + n)
                    done.append(('dropped', n))
        except OSError as e:
            raise _err('recover', self.base, e)
        if done:
            self._sync()
        return done

    def _list(self):
        try:
            return self.os.listdir(self.base)
        except OSError as e:
            raise _err('list', self.base, e)

    def _mkdirs(self):
        p = ''
        for part in self.base.split('/'):
            if part:
                p += '/' + part if (p or self.base[0] == '/') else part
                try:
                    self.os.mkdir(p)
                except OSError:
                    pass
        try:
            ok = self.os.stat(self.base)[0] & 0x4000
        except OSError:
            ok = False
        if not ok:
            raise StoreError('store: cannot use %s as the store folder' % self.base)
