"""phone.sha512's two engines (viper and pure Python) under MicroPython against CPython's
hashlib.sha512, on random data of every length from 0 to 300 bytes and a few long ones, fed
whole and in uneven pieces. The firmware runs as deployed (.mpy, x64 native code)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess

from host_tools import fwbuild, micropython

LENGTHS = list(range(0, 301)) + [511, 512, 513, 1023, 4096, 8191, 8192, 20000]

SCRIPT = r"""
import sys, json
from phone import sha512 as S
data = open(sys.argv[1], 'rb').read()
lengths = json.loads(open(sys.argv[2]).read())
nat = S.native
print('native_loaded', nat is not None)
for name, engine in (('native', nat), ('python', None)):
    if name == 'native' and nat is None:
        continue
    S.native = engine
    for n in lengths:
        if name == 'python' and n > 600:
            continue
        print(name, 'whole', n, S.sha512(memoryview(data)[:n]).hexdigest())
        h = S.SHA512()
        i = 0
        step = 1
        while i < n:
            h.update(data[i:min(n, i + step)])
            i += step
            step = step * 3 % 200 + 1
        print(name, 'pieces', n, h.hexdigest())
"""


def test_both_engines_match_hashlib(tmp_path):
    data = os.urandom(max(LENGTHS))
    (tmp_path / "data.bin").write_bytes(data)
    (tmp_path / "run.py").write_text(SCRIPT)
    (tmp_path / "lengths.json").write_text(json.dumps(LENGTHS))  # long argv crashes the port
    proc = subprocess.run(
        micropython.command([str(tmp_path / "run.py"), str(tmp_path / "data.bin"),
                             str(tmp_path / "lengths.json")], heap="256K"),
        env=fwbuild.environ(), capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.split("\n")
    assert "native_loaded True" in lines, "phone.sha512n did not load on the x64 unix port"
    got = set(lines)
    for name in ("native", "python"):
        for n in LENGTHS:
            if name == "native" or n <= 600:
                want = hashlib.sha512(data[:n]).hexdigest()
                for how in ("whole", "pieces"):
                    assert f"{name} {how} {n} {want}" in got, (name, how, n)


def test_viper_module_compiles_for_the_esp32_and_ships_as_source_without_an_arch(tmp_path):
    """The ESP32 port's .mpy carries Xtensa code (mpy-cross -march=xtensawin must accept the
    viper module); a board reporting no native arch gets the module's source instead (it
    cannot be compiled for it), fails to import it and phone.sha512 runs pure Python."""
    from host_tools import FIRMWARE, boards, deploy
    board = boards.load("olimex-esp32-poe-iso-wrover")
    esp32 = deploy.build_items(FIRMWARE, board, deploy.MpyFormat(6, 3, "xtensawin"), tmp_path / "x")
    targets = {i.target: i.data for i in esp32}
    assert "/phone/sha512n.mpy" in targets and "/phone/sha512.mpy" in targets
    # .mpy header: magic 'M', version 6, then flags; arch in the top bits of byte 2
    assert targets["/phone/sha512n.mpy"][2] >> 2 == deploy.ARCHS.index("xtensawin")
    plain = deploy.build_items(FIRMWARE, board, deploy.MpyFormat(6, 3, None), tmp_path / "n")
    names = {i.target for i in plain}
    assert "/phone/sha512n.py" in names and "/phone/sha512n.mpy" not in names
    assert "/phone/sha512.mpy" in names


# -- the viper code with a 32-bit machine word ------------------------------------------------
# The unix port runs phone.sha512n with 64-bit registers; the ESP32 with 32-bit ones. Here
# the same source runs on CPython with viper's types emulated for a 32-bit target: `uint`
# values wrap at 2**32 after every operation (so a missing carry, or a result that relied on
# bits above 31, gives a wrong digest), ptr8/ptr32 index a buffer as bytes / 32-bit words.

_W = 0xFFFFFFFF


class _U32(int):
    def __new__(cls, v):
        return int.__new__(cls, int(v) & _W)

    def _op(f):  # noqa: N805
        return lambda a, b: _U32(f(int(a), int(b)))

    __add__ = __radd__ = _op(lambda a, b: a + b)
    __sub__ = _op(lambda a, b: a - b)
    __and__ = __rand__ = _op(lambda a, b: a & b)
    __or__ = __ror__ = _op(lambda a, b: a | b)
    __xor__ = __rxor__ = _op(lambda a, b: a ^ b)
    __lshift__ = _op(lambda a, b: a << b)
    __rshift__ = _op(lambda a, b: a >> b)


class _Ptr:
    def __init__(self, obj, size, off=0):
        self.mv = memoryview(obj.mv.obj if isinstance(obj, _Ptr) else obj).cast("B")
        self.size, self.off = size, off

    def __getitem__(self, i):
        at = self.off + i * self.size
        return int.from_bytes(self.mv[at:at + self.size], "little")   # an int, as viper's

    def __setitem__(self, i, v):
        at = self.off + i * self.size
        self.mv[at:at + self.size] = (int(v) & ((1 << 8 * self.size) - 1)).to_bytes(
            self.size, "little")


class _Addr:
    """uint(ptr): an address; + n moves it; ptr32(address) points there."""
    def __init__(self, ptr, off):
        self.ptr, self.off = ptr, off

    def __add__(self, n):
        return _Addr(self.ptr, self.off + n)


def _uint(v):
    return _Addr(v, v.off) if isinstance(v, _Ptr) else _U32(v)


def _ptr(size):
    def cast(obj):
        if isinstance(obj, _Addr):
            return _Ptr(obj.ptr, size, obj.off)
        return obj if isinstance(obj, _Ptr) else _Ptr(obj, size)
    return cast


def _emulated_sha512n():
    """phone/sha512n.py's source, run with 32-bit viper types: a module-like namespace."""
    import ast
    import inspect
    import types
    from host_tools import FIRMWARE
    src = (FIRMWARE / "phone" / "sha512n.py").read_text()
    tree = ast.parse(src)
    ptrs = {"ptr8": 1, "ptr32": 4}
    # annotated arguments are converted on entry, as viper does; the decorator goes
    for fn in [n for n in tree.body if isinstance(n, ast.FunctionDef)]:
        fn.decorator_list = []
        conv = []
        for a in fn.args.args:
            kind = a.annotation.id if isinstance(a.annotation, ast.Name) else None
            a.annotation = None
            if kind in ptrs:
                conv.append(ast.parse(f"{a.arg} = {kind}({a.arg})").body[0])
        fn.returns = None
        fn.body = conv + fn.body
    mod = types.ModuleType("sha512n_32bit")
    mod.__dict__.update(uint=_uint, ptr8=_ptr(1), ptr32=_ptr(4), micropython=types.SimpleNamespace())
    code = compile(ast.Module([n for n in tree.body if not isinstance(n, ast.Import)], []),
                   "sha512n.py (32-bit)", "exec")
    exec(code, mod.__dict__)
    assert inspect.isfunction(mod.blocks)
    # viper reads module globals (K) at call time: the functions see this namespace
    return mod


def test_viper_source_is_right_with_a_32_bit_machine_word():
    from host_tools import fw  # noqa: F401  (puts firmware/ on sys.path)
    from phone import sha512 as S
    emulated = _emulated_sha512n()
    keep = S.native
    S.native = emulated
    try:
        data = os.urandom(700)
        for n in (0, 1, 111, 112, 127, 128, 129, 255, 256, 700):
            h = S.sha512(data[:n])
            assert h.engine == "native"
            assert h.hexdigest() == hashlib.sha512(data[:n]).hexdigest(), n
        assert S.sha512(b"\xff" * 256).digest() == hashlib.sha512(b"\xff" * 256).digest()
    finally:
        S.native = keep
