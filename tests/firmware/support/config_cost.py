# What phone.config costs a parse, under MicroPython (figures in docs/decisions.md, issue 13):
#   config_cost.py peak FILE     live heap above the start, gc.collect() at every read (a
#                                sample: the reads are where the buffers are all live); and
#                                what the returned Config keeps
#   config_cost.py time FILE N   parse_file N times: the fastest and the median, in ms
#   config_cost.py ok FILE       one parse_file, "OK" (for a search of the smallest heap cap)
# Run with the .mpy build on MICROPYPATH, as the firmware tests do:
#   MICROPYPATH=.frozen:$(.venv/bin/python -c 'from host_tools import fwbuild;
#   print(fwbuild.compiled())') .venv/bin/micropython -X heapsize=1M config_cost.py ...
import gc
import sys
import time

gc.collect()
from phone import config  # noqa: E402


class Sampled:
    def __init__(self, f):
        self.f, self.peak, self.reads = f, 0, 0

    def readinto(self, b):
        gc.collect()
        self.peak = max(self.peak, gc.mem_alloc())
        self.reads += 1
        return self.f.readinto(b)


def main(mode, path, n='50'):
    if mode == 'peak':
        with open(path, 'rb') as f:
            gc.collect()
            base = gc.mem_alloc()
            s = Sampled(f)
            c = config.parse(s)
            gc.collect()
            print('peak %d reads %d kept %d' % (s.peak - base, s.reads, gc.mem_alloc() - base))
            c = None
    elif mode == 'time':
        ts = []
        for _ in range(int(n)):
            gc.collect()
            t0 = time.ticks_us()
            config.parse_file(path)
            ts.append(time.ticks_diff(time.ticks_us(), t0))
        ts.sort()
        print('time min %.2f ms median %.2f ms' % (ts[0] / 1000, ts[len(ts) // 2] / 1000))
    else:
        config.parse_file(path)
        print('OK')


main(*sys.argv[1:])
