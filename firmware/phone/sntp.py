# SNTP (RFC 4330) for phone.clock: one query to the NTP servers DHCP named (option 42). Boot
# imports it once, after provisioning, and drops it: the agent never needs it, and on a board
# without PSRAM its ~2 KB are the agent's. It imports nothing of phone.clock (which loads it):
# the clock's set_time is handed in.
import time


def query(servers, set_time, timeout_ms=800, events=None, port=123):
    """One SNTP query to each of `servers` (at most two) until one answers well: sets the
    clock with set_time (phone.clock's: source 'sntp', never below the floor). As
    unauthenticated as the DHCP that named the server, so only a start: DefineTimeDate over a
    pinned link overrides it, and no trust decision reads the date. Each try is bounded by
    timeout_ms. Returns the time set or None."""
    import socket
    for host in servers[:2]:
        s = None
        why = 'no answer within %d ms' % timeout_ms
        try:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            req = bytearray(48)
            req[0] = 0x23                          # LI 0, version 4, mode 3 (client)
            nonce = _nonce()
            req[40:48] = nonce                     # the answer must echo it (originate)
            s.sendto(req, socket.getaddrinfo(host, port)[0][-1])
            end = time.ticks_add(time.ticks_ms(), timeout_ms)
            for _ in range(4):                     # a few strays at most, then give up
                left = time.ticks_diff(end, time.ticks_ms())
                if left <= 0:
                    break
                s.settimeout(left / 1000)
                b = s.recv(68)
                if len(b) < 48 or bytes(b[24:32]) != nonce:
                    why = 'an answer that is not to our request'
                    continue
                t, why = _sntp_time(b)
                if t is not None:
                    t = set_time(t, 'sntp', events)     # never below the floor
                    if t is not None:
                        return t
                why = why or 'a time before 2020'
                break
        except OSError as e:
            if e.args and e.args[0] not in (11, 110, 116):   # EAGAIN, ETIMEDOUT: timed out
                why = 'OSError %s' % e.args[0]
        finally:
            if s is not None:
                s.close()
        if events is not None:
            events.emit('sntp_failed', server=host, reason=why)
    return None


def _nonce():
    try:
        import os
        return bytes(os.urandom(8))
    except (ImportError, AttributeError):
        import random
        return bytes(random.getrandbits(8) for _ in range(8))


def _sntp_time(b):
    """(Unix seconds, None) of a server's answer, or (None, why)."""
    if b[0] & 7 != 4:
        return None, 'not a server answer (mode %d)' % (b[0] & 7)
    if b[0] >> 6 == 3 or not 1 <= b[1] <= 15:
        return None, 'server not synchronized (leap %d, stratum %d)' % (b[0] >> 6, b[1])
    secs = b[40] << 24 | b[41] << 16 | b[42] << 8 | b[43]
    if not secs:
        return None, 'no transmit time'
    t = secs - 2208988800                     # NTP era 0 (1900); era 1 from 2036-02-07
    if secs < 0x80000000:
        t += 0x100000000
    return t, None
