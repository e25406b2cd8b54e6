# MicroPython (unix port) script of bench/cpu_handshake.py, never imported by CPython.
#   micropython _mp_handshake.py ARGS.json
#   ARGS: {"host": ip, "port": n, "anchor": path, "cn": str, "cert": path, "key": path,
#          "reps": n, "idle_ms": n}
# The phone's mutual TLS exactly as the agent opens it (phone.link.context: pinned server
# certificate, the phone's certificate and 2048-bit key), `reps` times, idle_ms apart.
# Prints "ready", waits for a line on stdin (the host applies the CPU quota in between),
# then one JSON line per handshake ({"tcp_us": .., "tls_us": ..} or {"error": ..}), then
# {"done": true}.
import gc
import json
import socket
import sys
import time

from phone import link


def rd(p):
    with open(p, 'rb') as f:
        return f.read()


def main():
    with open(sys.argv[1]) as f:
        a = json.load(f)
    anchor = (rd(a['anchor']), a['cn'])
    ident = (rd(a['cert']), rd(a['key']))
    addr = socket.getaddrinfo(a['host'], a['port'])[0][-1]
    print('ready')
    sys.stdin.readline()
    ctx = link.context('cm', anchor, ident)       # made once, as at the agent's boot
    for _ in range(a['reps']):
        gc.collect()
        time.sleep_ms(a['idle_ms'])
        s = socket.socket()
        t0 = time.ticks_us()
        try:
            s.connect(addr)
            t1 = time.ticks_us()
            t = ctx.wrap_socket(s, server_side=False)
            t2 = time.ticks_us()
            print(json.dumps({'tcp_us': time.ticks_diff(t1, t0),
                              'tls_us': time.ticks_diff(t2, t1)}))
            t.close()
        except Exception as e:
            print(json.dumps({'error': '%s: %s' % (type(e).__name__, e)}))
            s.close()
    print(json.dumps({'done': True}))


main()
