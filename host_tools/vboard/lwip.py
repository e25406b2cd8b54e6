"""The faithful board's "lwIP" DHCP client: what an ESP32's network stack does on its own.

Run by the virtual board inside the board's network namespace, one process per board, for
the board's whole life (`python -m host_tools.vboard.lwip IFNAME MAC PORTFILE`):

- `start` (network.LAN().active(True), ipconfig(dhcp4=True)) binds UDP 68 WITHOUT
  SO_REUSEADDR, as lwIP's DHCP pcb does, so the agent's own bind to 68 fails with
  EADDRINUSE, and runs DISCOVER/OFFER/REQUEST/ACK, then keeps the lease (renew at T1 unicast,
  rebind at T2, start over at expiry). It asks only for what lwIP asks for (options 1, 3, 28,
  6, 42): never option 150, and it sends no vendor class (60);
- `stop` (ipconfig(dhcp4=False), esp_netif_dhcpc_stop): DHCPRELEASE when bound (lwIP 2.1's
  dhcp_stop is dhcp_release_and_stop), the address back to 0.0.0.0, UDP 68 free;
- `off` (a reset or power cycle of the board): the same without the RELEASE;
- `set IP MASK GW` (a static ipconfig(addr4=..., gw4=...)): stops the client, sets it;
- `get`: "STATE IP MASK GW DNS" (STATE: stopped, init, bound).

Control is text over UDP on 127.0.0.1 in the namespace; the port chosen is written to
PORTFILE. The interface address and default route are set with `ip` (root in the namespace);
without an address the interface keeps 0.0.0.0/0 and a default route through it, which is
what a unix-port client needs to receive the broadcast answers.
"""
from __future__ import annotations

import os
import random
import select
import socket
import struct
import subprocess
import sys
import time

_MAGIC = b"\x63\x82\x53\x63"
_DISCOVER, _OFFER, _REQUEST, _DECLINE, _ACK, _NAK, _RELEASE = 1, 2, 3, 4, 5, 6, 7
# lwIP's dhcp.c parameter request list (subnet mask, router, broadcast, DNS) plus NTP, which
# ESP-IDF enables (LWIP_DHCP_GET_NTP_SRV): what an ESP32 asks. No 150, no 66.
_PRL = bytes([1, 3, 28, 6, 42])
_HOSTNAME = b"mpy-esp32"       # MicroPython's default network.hostname() on the ESP32 port
_RETRY_S = (4, 8, 16, 32, 64)


def _ip(b: bytes) -> str:
    return socket.inet_ntoa(b)


class Client:
    def __init__(self, ifname: str, mac: bytes) -> None:
        self.ifname, self.mac = ifname, mac
        self.state = "stopped"
        self.sock: socket.socket | None = None
        self.xid = 0
        self.ip = self.mask = self.gw = self.dns = self.server = "0.0.0.0"
        self.offer: tuple[str, str] | None = None   # (ip, server) being requested
        self.next_at = 0.0
        self.tries = 0
        self.t1 = self.t2 = self.expiry = 0.0
        self.phase = "discover"   # discover, request, bound, renew, rebind

    # -- commands -----------------------------------------------------------------------
    def start(self) -> None:
        if self.state != "stopped":
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, self.ifname.encode())
        except OSError:
            pass
        s.bind(("0.0.0.0", 68))           # no SO_REUSEADDR: the port is the stack's
        self.sock = s
        self.state = "init"
        self._begin_discover()

    def power_off(self) -> None:
        """A reset: the client and whatever address the interface had (static too) are gone."""
        self.stop(release=False)
        self._clear_address()

    def stop(self, release: bool) -> None:
        if self.state == "stopped":
            return
        if release and self.phase in ("bound", "renew", "rebind") and self.sock is not None:
            self._send(_RELEASE, ciaddr=self.ip, dest=self.server, server_id=self.server)
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.state = "stopped"
        self._clear_address()

    def set_static(self, ip: str, mask: str, gw: str) -> None:
        self.stop(release=True)
        self.ip, self.mask, self.gw = ip, mask, gw
        bits = bin(struct.unpack("!I", socket.inet_aton(mask))[0]).count("1")
        _run("ip", "addr", "flush", "dev", self.ifname, "scope", "global")
        _run("ip", "addr", "del", "0.0.0.0/0", "dev", self.ifname)
        if ip != "0.0.0.0":
            _run("ip", "addr", "add", f"{ip}/{bits}", "dev", self.ifname)
            if gw != "0.0.0.0":
                _run("ip", "route", "replace", "default", "via", gw, "dev", self.ifname)
        else:
            self._clear_address()

    def status(self) -> str:
        state = "bound" if self.state != "stopped" and self.phase in ("bound", "renew",
                                                                        "rebind") else self.state
        return f"{state} {self.ip} {self.mask} {self.gw} {self.dns}"

    # -- protocol -----------------------------------------------------------------------
    def _begin_discover(self) -> None:
        self.phase, self.tries, self.offer = "discover", 0, None
        self.xid = random.getrandbits(32)
        self._send(_DISCOVER)
        self.next_at = time.monotonic() + _RETRY_S[0]

    def _send(self, kind: int, ciaddr: str = "0.0.0.0", dest: str = "255.255.255.255",
              requested: str | None = None, server_id: str | None = None) -> None:
        assert self.sock is not None
        # The broadcast flag: lwIP takes a unicast OFFER/ACK at the link layer before it has
        # the address; a unix socket only sees it broadcast.
        flags = 0x8000 if ciaddr == "0.0.0.0" else 0
        hdr = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, self.xid, 0, flags,
                          socket.inet_aton(ciaddr), b"\0" * 4, b"\0" * 4, b"\0" * 4,
                          self.mac, b"", b"")
        opt = bytearray(_MAGIC) + bytes([53, 1, kind])
        opt += bytes([61, 7, 1]) + self.mac
        if kind != _RELEASE:
            opt += bytes([57, 2]) + struct.pack("!H", 1500)
            opt += bytes([12, len(_HOSTNAME)]) + _HOSTNAME
        if requested:
            opt += bytes([50, 4]) + socket.inet_aton(requested)
        if server_id:
            opt += bytes([54, 4]) + socket.inet_aton(server_id)
        if kind in (_DISCOVER, _REQUEST):
            opt += bytes([55, len(_PRL)]) + _PRL
        opt += b"\xff"
        try:
            self.sock.sendto(hdr + bytes(opt), (dest, 67))
        except OSError:
            pass

    def on_packet(self, data: bytes) -> None:
        if len(data) < 240 or data[0] != 2 or data[236:240] != _MAGIC:
            return
        xid = struct.unpack("!I", data[4:8])[0]
        if xid != self.xid or data[28:34] != self.mac:
            return
        opts = _options(data[240:])
        kind = opts.get(53, b"\0")[0]
        yiaddr = _ip(data[16:20])
        server = _ip(opts[54]) if len(opts.get(54, b"")) == 4 else None
        if kind == _OFFER and self.phase == "discover" and server:
            self.offer = (yiaddr, server)
            self.phase, self.tries = "request", 0
            self._send(_REQUEST, requested=yiaddr, server_id=server)
            self.next_at = time.monotonic() + _RETRY_S[0]
        elif kind == _ACK and self.phase in ("request", "renew", "rebind"):
            self._bind(yiaddr, server or self.server, opts)
        elif kind == _NAK and self.phase in ("request", "renew", "rebind"):
            self._clear_address()
            self._begin_discover()

    def _bind(self, ip: str, server: str, opts: dict[int, bytes]) -> None:
        now = time.monotonic()
        lease = struct.unpack("!I", opts[51])[0] if len(opts.get(51, b"")) == 4 else 86400
        t1 = struct.unpack("!I", opts[58])[0] if len(opts.get(58, b"")) == 4 else lease // 2
        t2 = struct.unpack("!I", opts[59])[0] if len(opts.get(59, b"")) == 4 else lease * 7 // 8
        self.t1, self.t2, self.expiry = now + t1, now + t2, now + lease
        mask = _ip(opts[1]) if len(opts.get(1, b"")) == 4 else "255.255.255.0"
        gw = _ip(opts[3][:4]) if len(opts.get(3, b"")) >= 4 else "0.0.0.0"
        dns = _ip(opts[6][:4]) if len(opts.get(6, b"")) >= 4 else "0.0.0.0"
        changed = (ip, mask, gw) != (self.ip, self.mask, self.gw)
        self.ip, self.mask, self.gw, self.dns, self.server = ip, mask, gw, dns, server
        self.phase = "bound"
        self.next_at = self.t1
        if changed:
            bits = bin(struct.unpack("!I", socket.inet_aton(mask))[0]).count("1")
            _run("ip", "addr", "flush", "dev", self.ifname, "scope", "global")
            _run("ip", "addr", "del", "0.0.0.0/0", "dev", self.ifname)
            _run("ip", "addr", "add", f"{ip}/{bits}", "dev", self.ifname)
            if gw != "0.0.0.0":
                _run("ip", "route", "replace", "default", "via", gw, "dev", self.ifname)

    def _clear_address(self) -> None:
        self.ip = self.mask = self.gw = "0.0.0.0"
        self.phase = "discover"
        _run("ip", "addr", "flush", "dev", self.ifname, "scope", "global")
        _run("ip", "addr", "add", "0.0.0.0/0", "dev", self.ifname)
        _run("ip", "route", "replace", "default", "dev", self.ifname)

    def tick(self) -> None:
        if self.state == "stopped" or time.monotonic() < self.next_at:
            return
        now = time.monotonic()
        if self.phase in ("bound", "renew", "rebind") and now >= self.expiry:
            self._clear_address()
            self._begin_discover()
        elif self.phase == "bound" or (self.phase == "renew" and now < self.t2):
            self.phase = "renew"
            self._send(_REQUEST, ciaddr=self.ip, dest=self.server)
            self.next_at = now + max(1.0, (self.t2 - now) / 2)
        elif self.phase in ("renew", "rebind"):
            self.phase = "rebind"
            self._send(_REQUEST, ciaddr=self.ip)
            self.next_at = now + max(1.0, (self.expiry - now) / 2)
        else:   # discover / request: retransmit with lwIP-like backoff, then start over
            self.tries += 1
            if self.phase == "request" and self.tries >= 3:
                self._begin_discover()
                return
            if self.phase == "request" and self.offer:
                self._send(_REQUEST, requested=self.offer[0], server_id=self.offer[1])
            else:
                self._send(_DISCOVER)
            self.next_at = now + _RETRY_S[min(self.tries, len(_RETRY_S) - 1)]


def _options(buf: bytes) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    i = 0
    while i < len(buf):
        code = buf[i]
        if code == 0:
            i += 1
            continue
        if code == 255 or i + 1 >= len(buf):
            break
        n = buf[i + 1]
        out[code] = bytes(buf[i + 2:i + 2 + n])
        i += 2 + n
    return out


def _run(*cmd: str) -> None:
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)


def _mac(text: str) -> bytes:
    h = "".join(c for c in text if c in "0123456789abcdefABCDEF")
    if len(h) != 12:
        raise SystemExit(f"lwip: bad MAC {text!r}")
    return bytes.fromhex(h)


def serve(ifname: str, mac: bytes, portfile: str) -> int:
    ctl = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ctl.bind(("127.0.0.1", 0))
    tmp = portfile + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(ctl.getsockname()[1]))
    os.replace(tmp, portfile)
    client = Client(ifname, mac)
    while True:
        socks = [ctl] + ([client.sock] if client.sock is not None else [])
        ready, _, _ = select.select(socks, [], [], 0.25)
        for s in ready:
            if s is ctl:
                data, peer = ctl.recvfrom(512)
                words = data.decode("ascii", "replace").split()
                reply = "ok"
                try:
                    if not words or words[0] == "get":
                        pass
                    elif words[0] == "start":
                        client.start()
                    elif words[0] == "stop":
                        client.stop(release=True)
                    elif words[0] == "off":
                        client.power_off()
                    elif words[0] == "set" and len(words) == 4:
                        client.set_static(*words[1:])
                    elif words[0] == "quit":
                        client.stop(release=False)
                        ctl.sendto(b"ok", peer)
                        return 0
                    else:
                        reply = "error unknown command"
                except OSError as e:
                    reply = f"error {e.errno or 0} {e.strerror or e}"
                ctl.sendto((reply if reply != "ok" else client.status()).encode(), peer)
            elif client.sock is not None:
                try:
                    client.on_packet(client.sock.recv(2048))
                except OSError:
                    pass
        client.tick()


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m host_tools.vboard.lwip IFNAME MAC PORTFILE", file=sys.stderr)
        return 2
    try:
        return serve(argv[0], _mac(argv[1]), argv[2])
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
