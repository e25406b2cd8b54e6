# MicroPython (unix port) script of bench/cpu_calibration.py, never imported by CPython.
#   micropython _mp_cpubench.py ARGS.json
#   ARGS: {"bench": path of a perf_bench module (bm_setup(params) -> (run, result)),
#          "params": [...], "reps": n,
#          "bursts": optional [[idle_ms, loops], ...]}
# Prints "ready", then waits for a line on stdin (the host puts this process under its CPU
# quota in between, so the interpreter's own start-up is not slowed), then one JSON line per
# repetition ({"us": wall time of run(), "norm": result()[0]}) and per burst
# ({"burst": i, "us": ...}: after idle_ms asleep, `loops` fresh runs of the benchmark), and
# {"done": true}; {"error": ...} if the benchmark fails.
import gc
import json
import sys
import time


def main():
    with open(sys.argv[1]) as f:
        a = json.load(f)
    ns = {'__name__': 'perf_bench'}
    with open(a['bench']) as f:
        exec(f.read(), ns)
    setup = ns['bm_setup']
    print('ready')
    sys.stdin.readline()
    for _ in range(a.get('reps', 1)):
        gc.collect()
        run, result = setup(tuple(a['params']))
        t0 = time.ticks_us()
        run()
        us = time.ticks_diff(time.ticks_us(), t0)
        print(json.dumps({'us': us, 'norm': result()[0]}))
    for i, (idle_ms, loops) in enumerate(a.get('bursts', ())):
        run, result = setup((loops,))
        gc.collect()
        time.sleep_ms(idle_ms)
        t0 = time.ticks_us()
        run()
        print(json.dumps({'burst': i, 'us': time.ticks_diff(time.ticks_us(), t0)}))
    print(json.dumps({'done': True}))


try:
    main()
except Exception as e:  # the host reads one line, not a traceback
    print(json.dumps({'error': '%s: %s' % (type(e).__name__, e)}))
