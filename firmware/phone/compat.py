# CPython stand-ins for MicroPython's time.ticks_* (host tools import the network clients).
# Only imported on CPython, so the board never loads it.
import time


def ticks_ms():
    return int(time.monotonic() * 1000)


def ticks_diff(a, b):
    return a - b


def ticks_add(a, b):
    return a + b
