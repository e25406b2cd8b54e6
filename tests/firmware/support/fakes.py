# What the agent and link tests share: a TLS stand-in that wraps nothing (so the servers speak
# plain SCCP and the faults are theirs), a small SCCP server on loopback with fault modes
# (phone.sccp_lab) and an owner for a link driven alone. Reading the events: fwtest.
#
#     fakes.install()                 # phone.link uses FakeSsl from now on
#     cm = await fakes.Server('ok').start()
import time

import asyncio

from phone import link as _link
from phone import sccp_lab as sccp


class FakeContext:
    """A TLS context that wraps nothing, and remembers: `made`, every context; `wrapped`,
    every socket wrapped, with its context; `identity`, the certificate it presents. A test
    may set `on_wrap(sock)`, called before a socket is wrapped."""
    made = []
    wrapped = []
    on_wrap = None

    def __init__(self, protocol):
        self.identity = None
        FakeContext.made.append(self)

    def load_verify_locations(self, cadata=None):
        pass

    def load_cert_chain(self, cert, key):
        self.identity = (cert, key)

    def wrap_socket(self, sock, server_hostname=None, do_handshake_on_connect=True):
        if FakeContext.on_wrap is not None:
            FakeContext.on_wrap(sock)
        FakeContext.wrapped.append((sock, self))
        return sock                       # plain SCCP underneath


class FakeSsl:
    PROTOCOL_TLS_CLIENT = 0
    CERT_REQUIRED = 2
    CERT_OPTIONAL = 1
    CERT_NONE = 0
    SSLContext = FakeContext


async def listen(server, port=0, host='127.0.0.1'):
    """Start `server.serve` on loopback (`host`: another 127.x address for a second host),
    at `port` or the first free one of 20 from a pseudo-random base; sets server.server and
    server.port and returns `server`."""
    base = port or 20000 + time.ticks_us() % 20000
    for i in range(1 if port else 20):
        try:
            server.server = await asyncio.start_server(server.serve, host, base + i)
            server.port = base + i
            return server
        except OSError:
            pass
    raise OSError('no free port')


def install():
    """phone.link makes its contexts with FakeSsl, from a clean slate."""
    _link.ssl = FakeSsl
    _link._contexts.clear()
    FakeContext.made = []
    FakeContext.wrapped = []
    FakeContext.on_wrap = None


def context_of(link):
    """The context that wrapped `link`'s socket (the test peeks into its asyncio stream)."""
    for sock, ctx in FakeContext.wrapped:
        if link._w is not None and sock is link._w.s:
            return ctx
    return None


class Server:
    """An SCCP server on loopback with a fault mode:
    ok           KeepAlive, Register (RegisterAck + CapabilitiesReq), Unregister answered
    close        every connection closed at once (a link that fails while being made)
    ack_close    RegisterAck + CapabilitiesReq, then the session is closed
    big_display  RegisterAck, then a 64 KB DisplayText, then close
    reject       RegisterReject to every Register
    garbage      answers KeepAlive with bytes that are no SCCP frame
    reset        a Reset (restart) to every KeepAlive (a standby link, never registered)
    reset_ack    a Reset (restart) right after every RegisterAck
    Counts: accepted, registers, unregisters; registered: the device names, in order.
    close() stops listening; stop() also ends every session (the server gone), and start()
    on the same port brings it back; drop(device) ends one phone's session."""

    def __init__(self, mode='ok'):
        self.mode = mode
        self.server = None
        self.port = 0
        self.accepted = 0
        self.registers = 0
        self.unregisters = 0
        self.registered = []
        self.writers = []
        self.devices = {}                 # device -> its session's stream

    async def start(self, port=0):
        return await listen(self, port)

    async def serve(self, r, w):
        self.accepted += 1
        self.writers.append(w)
        try:
            if self.mode == 'close':
                return
            fr = sccp.FrameReader(r)
            while True:
                mid = await fr.aread()
                if mid < 0:
                    break
                if mid == sccp.KEEPALIVE:
                    if self.mode == 'garbage':
                        w.write(b'\xff' * 64)
                    elif self.mode == 'reset':
                        w.write(sccp.keepalive_ack() + sccp.reset(sccp.RESET_RESTART))
                    else:
                        w.write(sccp.keepalive_ack())
                elif mid == sccp.REGISTER:
                    self.registers += 1
                    dev = sccp.parse_register(fr.body())['name']
                    self.devices[dev] = w
                    self.registered.append(dev)
                    if self.mode == 'reject':
                        w.write(sccp.register_reject('Unknown device'))
                    else:
                        w.write(sccp.register_ack(5, 10))
                        w.write(sccp.capabilities_req())
                    if self.mode == 'big_display':
                        await w.drain()
                        w.write(sccp.frame(sccp.DISPLAY_TEXT, b'A' * 65536))
                    if self.mode == 'reset_ack':
                        w.write(sccp.reset(sccp.RESET_RESTART))
                    if self.mode in ('ack_close', 'big_display'):
                        await w.drain()
                        return
                elif mid == sccp.UNREGISTER:
                    self.unregisters += 1
                    w.write(sccp.unregister_ack())
                await w.drain()
        except Exception:
            pass
        finally:
            await close_writer(w)

    def close(self):
        self.server.close()

    async def stop(self):
        self.server.close()
        await self.server.wait_closed()
        for w in self.writers:
            await close_writer(w)
        self.writers = []

    async def drop(self, dev):
        await close_writer(self.devices.pop(dev))


async def close_writer(w):
    w.close()                             # MicroPython closes the socket in wait_closed()
    try:
        await asyncio.wait_for_ms(w.wait_closed(), 1000)
    except Exception:
        pass


def provisioned(mac, cm, srst, identity=(b'cert', b'key'), monitor_s=60):
    """What provisioning leaves an agent on loopback: the call manager `cm` as (name, host,
    port, anchor), the SRST router `srst` as (host, port, anchor) or None."""
    from phone.platform import parse_mac
    from phone.provision import Provisioned
    p = Provisioned()
    p.ip = '127.0.0.1'
    p.mac = parse_mac(mac)
    p.call_managers = [cm]
    p.srst = srst
    p.srst_why = None if srst is not None else 'no SRST in the config'
    p.identity = identity
    p.monitor_s = monitor_s
    p.secure = True
    return p

class Prov:
    """The part of a provision.Provisioned a link alone reads: the phone's certificate."""

    def __init__(self, identity):
        self.identity = identity


class Owner:
    """What a link asks of its owner (docs/signalling.md), for a link driven without an agent:
    it records what the link tells it."""

    def __init__(self, events, cfg, identity=None):
        self.events = events
        self.cfg = cfg
        self.prov = Prov(identity)
        self.platform = None
        self.downs = []
        self.resets = []

    def link_down(self, link, reason):
        self.downs.append((link.role, reason))

    def reset_requested(self, link, kind):
        self.resets.append((link.role, kind))
