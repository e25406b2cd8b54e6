# Runs under the MicroPython unix port (NOT CPython): the "ROM" of the virtual board.
# Started as `micropython -i board_main.py FOLDER MODE`; the host side (vboard/board.py) owns
# the serial endpoint and starts this process again at every reset.
#   1. make the board folder the root of the filesystem, with no way out through '..';
#   2. run boot.py, then main.py unless MODE is 'raw' (a soft reset in the raw REPL skips
#      main.py, as on a real board);
#   3. return, so `-i` drops into the unix port's REPL (friendly and raw REPL).
# NUL-framed sentinels, stripped by the host: "up" (filesystem ready, Ctrl-C may now arrive),
# "ready" (boot done, the REPL follows) and "exit:N" (boot code called sys.exit(N): under `-i`
# a SystemExit from the script would not end the process, so the host ends it and treats N
# like the REPL's exit code: 0 soft reset, 3 hard reset).
import sys
import os
import gc as _vboard_gc
import micropython as _vboard_mp


def _vboard_setup(folder):
    # The folder, mounted natively at '/', is the board's filesystem: imports and execfile()
    # use it directly. VfsPosix alone would follow '..' out of the folder, so `open` and the
    # path functions of `os` seen by board code (and mpremote's fs commands) are wrapped to
    # resolve paths clamped at '/'. The wrappers are called from Python, never from inside
    # the C VFS layer: a filesystem written in Python there breaks the unix port when a
    # KeyboardInterrupt lands in it (uncaught NLR, endless loops).
    import builtins
    real_os, real_open = os, open
    root = folder.rstrip('/')
    plain = os.VfsPosix()  # root-less, for rename: a rooted VfsPosix mixes up its two paths
    os.umount('/')
    os.mount(os.VfsPosix(root), '/')
    os.chdir('/')

    def norm(path):
        if not isinstance(path, str):
            path = str(path, 'utf-8') if isinstance(path, (bytes, bytearray)) else path
        parts = [] if path.startswith('/') else [p for p in real_os.getcwd().split('/') if p]
        for p in path.split('/'):
            if p == '..':
                if parts:
                    parts.pop()
            elif p and p != '.':
                parts.append(p)
        return '/' + '/'.join(parts)

    class BoardOS:
        pass

    board_os = BoardOS()
    for name in dir(real_os):
        if not name.startswith('__'):
            setattr(board_os, name, getattr(real_os, name))
    board_os.__name__ = 'os'

    def one(fn):
        return lambda path: fn(norm(path))

    def maybe(fn):
        return lambda path=None: fn() if path is None else fn(norm(path))

    for name in ('stat', 'mkdir', 'rmdir', 'remove', 'unlink', 'chdir', 'statvfs'):
        if hasattr(real_os, name):
            setattr(board_os, name, one(getattr(real_os, name)))
    board_os.listdir = maybe(real_os.listdir)
    board_os.ilistdir = maybe(real_os.ilistdir)
    board_os.rename = lambda old, new: plain.rename(root + norm(old), root + norm(new))

    def board_open(path, *args, **kw):
        return real_open(norm(path) if isinstance(path, str) else path, *args, **kw)

    builtins.open = board_open
    sys.modules['os'] = board_os
    sys.modules['uos'] = board_os
    sys.path[:] = ['', '.frozen', '/lib']  # the ESP32 port's default
    if os.getenv('VBOARD_ROMFS'):
        sys.path.insert(2, '/rom')    # the image's modules, after the frozen ones
    return board_os


def _vboard_files(mode):
    # Decided before "up", while no Ctrl-C can arrive: after it, only straight-line code runs
    # outside boot.py/main.py.
    def exists(name):
        try:
            os.stat(name)
            return True
        except OSError:
            return False
    return exists('boot.py'), mode != 'raw' and exists('main.py')


def _vboard_settle():
    # After a Ctrl-C in boot code the unix port can be left with the KeyboardInterrupt still
    # pending and the heap still locked (it landed inside a GC finaliser, say). Raised later in
    # the REPL's own C code either is fatal ("uncaught NLR"). Surface and drop them here,
    # without allocating: backward jumps raise a pending exception; an 8-byte probe that
    # fails with free memory left means a locked heap (unlock it).
    n = 0
    while n < 32:
        n += 1
        try:
            j = 0
            while j < 3:
                j += 1
            bytearray(8)
            return
        except KeyboardInterrupt:
            pass
        except MemoryError:
            if _vboard_gc.mem_free() < 1024:
                return  # simply full: nothing of ours to fix
            _vboard_mp.heap_unlock()


def _vboard_exec(name):
    try:
        execfile(name, globals())  # board-like: the REPL sees main.py's globals
    except SystemExit as e:
        code = e.value if isinstance(e.value, int) else (0 if e.value is None else 1)
        sys.stdout.write('\x00vboard:exit:%d\x00' % code)
        import time
        while True:  # the host kills this process and resets the board
            time.sleep(1)
    except BaseException as e:  # KeyboardInterrupt included: traceback, then the REPL
        _vboard_settle()
        sys.print_exception(e)
        return False
    return True


def _vboard_esp32():
    # A faithful board (--board virtual:PROFILE): the ESP32 port's modules, installed while
    # host paths are still reachable (host_tools/vboard/esp32/vboard_esp32.py).
    where = os.getenv('VBOARD_ESP32')
    if where:
        sys.path.insert(0, where)
        import vboard_esp32
        vboard_esp32.install()
        del sys.modules['vboard_esp32']
        sys.path.pop(0)


_vboard_esp32()
os = _vboard_setup(sys.argv[1])
_vboard_boot, _vboard_main = _vboard_files(sys.argv[2])
sys.argv[:] = []
# Collect now, while no Ctrl-C can arrive: a KeyboardInterrupt raised inside a GC finaliser
# (boot.py's gc.collect() right after "up", say) corrupts the unix port's state.
_vboard_gc.collect()
sys.stdout.write('\x00vboard:up\x00')
try:
    # As on the ESP32 port: main.py runs only if boot.py (when present) ended normally.
    if (not _vboard_boot or _vboard_exec('boot.py')) and _vboard_main:
        _vboard_exec('main.py')
except KeyboardInterrupt:  # Ctrl-C between boot.py and main.py
    pass
_vboard_settle()
del _vboard_esp32, _vboard_setup, _vboard_files, _vboard_exec, _vboard_settle, _vboard_boot, _vboard_main
del _vboard_gc, _vboard_mp
sys.stdout.write('\x00vboard:ready\x00')
