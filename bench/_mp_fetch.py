# MicroPython (unix port) script of bench/tftp.py, never imported by CPython: fetch one file
# `reps` times with phone.tftp, one Client for all, timed with ticks_us around each fetch.
#   micropython _mp_fetch.py ARGS.json
#   ARGS: {"server": ip, "file": name, "out": path, "reps": n, "tftp": {Client kwargs}}
# Prints one JSON line per transfer ({"us":.., "stats": {...}}), or {"error": ..}.
import gc
import json
import sys
import time

from phone import tftp


_FIELDS = ('bytes', 'blocks', 'retransmits', 'timeouts', 'blksize', 'windowsize', 'tsize',
           'negotiated')


class _Quiet:
    def emit(self, ev, **fields):
        pass


def main():
    with open(sys.argv[1]) as f:
        a = json.load(f)
    c = tftp.Client(events=_Quiet(), **a['tftp'])
    for _ in range(a['reps']):
        gc.collect()
        try:
            with open(a['out'], 'wb') as sink:
                t0 = time.ticks_us()
                st = c.get(a['server'], a['file'], sink)
                us = time.ticks_diff(time.ticks_us(), t0)
        except tftp.TftpError as e:
            print(json.dumps({'error': str(e), 'code': e.code}))
            return
        stats = {k: getattr(st, k, None) for k in _FIELDS}
        print(json.dumps({'us': us, 'stats': stats, 'heap_free': gc.mem_free()}))


main()
