# UDP plumbing of the network clients (phone.dhcp, phone.tftp): the port's socket addresses,
# the poll wait, and time.ticks_* (phone.compat's on CPython, where host code imports the
# clients). Never kept loaded: each client takes these names and drops this module at once,
# so they live exactly as long as the client holding them, and whoever unloads a client
# (phone.provision, phone.lease) needs to know nothing of this module.
import socket
import time

try:
    ticks_ms = time.ticks_ms
    ticks_diff = time.ticks_diff
    ticks_add = time.ticks_add
except AttributeError:  # CPython
    from phone.compat import ticks_add, ticks_diff, ticks_ms


def sockaddr(host, port):
    return socket.getaddrinfo(host, port)[0][-1]


def addr_ip(addr):
    """The IPv4 string of a socket address, whichever form the port uses (tuple on ESP32
    and CPython, raw sockaddr bytes on the unix port)."""
    if isinstance(addr, tuple):
        return addr[0]
    ip = socket.sockaddr(addr)[1]
    return '%d.%d.%d.%d' % (ip[0], ip[1], ip[2], ip[3])


def wait(poller, ipoll, ms):
    """Wait up to ms (0: just look) for the socket `poller` polls to be readable. ipoll: the
    poller's ipoll (MicroPython), bound once by the caller so no wait allocates, or None."""
    if ms < 0:
        ms = 0
    if ipoll is not None:
        for _ in ipoll(ms):
            return True
        return False
    return bool(poller.poll(ms))
