# Runs under MicroPython for bench/sha512.py: SHA-512 throughput of phone.sha512's engines
# and the time to verify SHA-512-signed trust lists (phone.ctl.load_trust: parse, hash,
# RSA). Prints "ready", waits for a line on stdin (the host may put this process under a CPU
# quota in between), then one JSON object per figure and {"done": true}.
#   _mp_sha512.py ARGS.json   {"hash_kb": {"native": N, "python": N}, "ctls": [path...],
#                              "reps": N}
import sys
import json
import time
import gc

from phone import ctl
from phone import sha512 as S

args = json.loads(open(sys.argv[1]).read())
print('ready')
sys.stdin.readline()
NATIVE = S.native
engines = (('native', NATIVE), ('python', None)) if NATIVE is not None else (('python', None),)
block = bytes(range(256)) * 16          # 4 KB
for name, eng in engines:
    S.native = eng
    kb = args['hash_kb'][name]
    best = None
    for _ in range(args['reps']):
        gc.collect()
        t0 = time.ticks_us()
        h = S.SHA512()
        for _ in range(kb // 4):
            h.update(block)
        h.digest()
        dt = time.ticks_diff(time.ticks_us(), t0)
        best = dt if best is None or dt < best else best
    print(json.dumps({'what': 'hash', 'engine': name, 'kb': kb, 'us': best}))
for path in args['ctls']:
    for name, eng in engines:
        S.native = eng
        times = []
        for _ in range(args['reps']):
            gc.collect()
            t0 = time.ticks_us()
            try:
                tl = ctl.load_trust(path)
                err = None
            except ctl.CtlError as ex:
                err = str(ex)
            times.append(time.ticks_diff(time.ticks_us(), t0))
            tl = None
        times.sort()
        print(json.dumps({'what': 'ctl', 'engine': name, 'path': path, 'us': times[len(times) // 2],
                          'error': err}))
print(json.dumps({'done': True}))
