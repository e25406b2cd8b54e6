"""phone.sha512's two engines (viper and pure Python) under MicroPython against CPython's
hashlib.sha512, on random data of every length from 0 to 300 bytes and a few long ones, fed
whole and in uneven pieces. The firmware runs as deployed (.mpy, x64 native code)."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess

from host_tools import micropython

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
        env=micropython.environ(), capture_output=True, text=True, timeout=120)
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
