# Boot a board folder up to the end of provisioning (phone.boot.provision), as main.py does,
# and report heap figures; run from the board folder (board.json, settings.json, state/):
#   micropython provision_run.py [sample]
# With "sample", every event triggers gc.collect() and records gc.mem_alloc(): the live heap
# at each step (this slows provisioning a little). Prints the firmware's events, then
#   {"ev": "result", "ok": true, "ms": .., "live_peak": .., "live_peak_at": "..",
#    "after": .., "heap_total": .., "samples": N}
import gc
import sys
import time

gc.collect()
SAMPLE = 'sample' in sys.argv[1:]
peak = [0, '']
count = [0]
trace = []


def _listen(ev, t, fields):
    gc.collect()
    a = gc.mem_alloc()
    count[0] += 1
    if len(trace) < 64:
        trace.append((ev, a))
    if a > peak[0]:
        peak[0] = a
        peak[1] = ev


def main():
    from phone import boot, events
    if SAMPLE:
        events.default.listeners.append(_listen)
    t0 = time.ticks_ms()
    r = boot.provision()
    ms = time.ticks_diff(time.ticks_ms(), t0)
    gc.collect()
    events.emit('result', ok=r is not None, ms=ms, live_peak=peak[0], live_peak_at=peak[1],
                after=gc.mem_alloc(), heap_total=gc.mem_alloc() + gc.mem_free(),
                samples=count[0], trace=trace)


main()
