# The firmware tests must run under MicroPython, never CPython.
import sys
import gc

from fwtest import raises


def test_is_micropython():
    assert sys.implementation.name == 'micropython', sys.implementation.name
    import micropython  # only exists on MicroPython
    assert hasattr(micropython, 'const')


def test_heap_cap_is_enforced():
    # The runner caps the heap at 96K: a 200 KB buffer cannot exist, and the interpreter survives.
    with raises(MemoryError):
        bytearray(200 * 1024)
    gc.collect()
    assert len(bytearray(16 * 1024)) == 16 * 1024
    assert gc.mem_free() + gc.mem_alloc() <= 96 * 1024


def test_tmp_path_is_given(tmp_path):
    import os
    p = tmp_path + '/x'
    with open(p, 'w') as f:
        f.write('ok')
    assert os.stat(p)[6] == 2
