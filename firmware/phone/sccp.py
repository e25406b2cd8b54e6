# SCCP (Skinny) messages, the phone's side: encode what a phone sends, decode what it reads,
# and framing over any stream. No I/O policy here (that is phone.sccplink's). The Register,
# built once per agent run, is phone.sccpreg's, so its code is not resident. The server's side (what call managers and
# SRST routers send, decode() for any message, names) is phone.sccp_lab: the agent never
# loads it, so it costs the board no RAM. Both are in the common subset of MicroPython and
# CPython: the lab's simulators import phone.sccp_lab, which includes this module.
#
# Frame: u32 LE length (= 4 + body), u32 LE header version (0), u32 LE message id, body.
# Bodies are little-endian, except IPv4 addresses (network order). Field layouts follow
# Wireshark's skinny dissector (tshark is the check for our bytes; docs/protocols.md, "SCCP").
import struct

from micropython import const


class SccpError(Exception):
    pass


HEADER_SIZE = const(12)
MAX_BODY = const(2048)       # a sane limit: the largest message we handle is ~300 bytes

# The message ids: the one table, for the agent (phone.sccplink), the lab (phone.sccp_lab re-exports
# it, with the names) and the tests. Public, so each costs the board a qstr and a module dict
# slot (~20 bytes): nothing more goes here than the ids of the messages we send or read.
# phone -> server
KEEPALIVE = const(0x0000)
REGISTER = const(0x0001)
IP_PORT = const(0x0002)
TIME_DATE_REQ = const(0x000D)
BUTTON_TEMPLATE_REQ = const(0x000E)
CAPABILITIES_RES = const(0x0010)
ALARM = const(0x0020)
UNREGISTER = const(0x0027)
REGISTER_TOKEN_REQ = const(0x0029)
# server -> phone
REGISTER_ACK = const(0x0081)
DEFINE_TIME_DATE = const(0x0094)
BUTTON_TEMPLATE = const(0x0097)
DISPLAY_TEXT = const(0x0099)
CAPABILITIES_REQ = const(0x009B)
REGISTER_REJECT = const(0x009D)
RESET = const(0x009F)
KEEPALIVE_ACK = const(0x0100)
DISPLAY_PROMPT_STATUS = const(0x0112)
DISPLAY_NOTIFY = const(0x0114)
CLEAR_NOTIFY = const(0x0115)     # not read by the agent (docs/decisions.md, issue 13)
UNREGISTER_ACK = const(0x0118)
REGISTER_TOKEN_ACK = const(0x011A)
REGISTER_TOKEN_REJECT = const(0x011B)
DISPLAY_PRI_NOTIFY = const(0x0120)

# What the agent reads (phone.sccplink's FrameReader accepts these; anything else is skipped).
# 0x0093 is ConfigStat, read by the registration dialogue (phone.sccp_lab names it).
PHONE_RX = (REGISTER_ACK, REGISTER_REJECT, CAPABILITIES_REQ, KEEPALIVE_ACK, DEFINE_TIME_DATE,
            RESET, UNREGISTER_ACK, REGISTER_TOKEN_ACK, REGISTER_TOKEN_REJECT, DISPLAY_TEXT,
            DISPLAY_NOTIFY, DISPLAY_PRI_NOTIFY, DISPLAY_PROMPT_STATUS, BUTTON_TEMPLATE, 0x0093)

DEVICE_7911 = const(307)

# Display labels a server may send as "\x1e" + code instead of text (Wireshark: DisplayLabels_36).
_LABELS_36 = {0o012: 'CM Fallback Service Operating', 0o014: 'Waiting To Rehome'}

MAX_CAPS = const(18)         # CapabilitiesRes: slots of its array
# CapabilitiesRes: (payloadCapability, maxFramesPerPacket): G.711 u-law, A-law, G.729
_CAPS = ((4, 40), (2, 40), (11, 60))


# ---------------------------------------------------------------- helpers

def frame(msg_id, body=b''):
    """One complete message: header + body."""
    return struct.pack('<III', 4 + len(body), 0, msg_id) + body


def _u32(b, off):
    # no allocation for lengths/ids that fit a small int
    return b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)


def _text(b, off, size):
    """char[size] -> str up to the first NUL; bytes >= 0x80 kept as latin-1 code points."""
    end = off
    stop = min(off + size, len(b))
    while end < stop and b[end]:
        end += 1
    out = bytearray()
    for c in bytes(b[off:end]):
        if c < 0x80:
            out.append(c)
        else:           # as UTF-8: chr() would intern each character for good (MicroPython)
            out.append(0xC0 | c >> 6)
            out.append(0x80 | c & 0x3F)
    return out.decode()


# ---------------------------------------------------------------- phone -> server encoders

_KEEPALIVE_FRAME = b'\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'


def keepalive():
    return _KEEPALIVE_FRAME    # preallocated: the keepalive loop allocates nothing


def capabilities_res(caps=_CAPS):
    """caps: (payloadCapability, maxFramesPerPacket) pairs; the array is fixed at 18 slots."""
    caps = caps[:MAX_CAPS]
    body = struct.pack('<I', len(caps))
    for payload, frames in caps:
        body += struct.pack('<II', payload, frames) + bytes(8)
    body += bytes(16 * (MAX_CAPS - len(caps)))
    return frame(CAPABILITIES_RES, body)


def button_template_req():
    return frame(BUTTON_TEMPLATE_REQ)


def time_date_req():
    return frame(TIME_DATE_REQ)


def unregister(reason=0):
    return frame(UNREGISTER, struct.pack('<I', reason))


# ---------------------------------------------------------------- decoders
# Each takes the body (bytes, bytearray or memoryview) and checks its size.

def _need(body, n, what):
    if len(body) < n:
        raise SccpError('%s: body %d < %d bytes' % (what, len(body), n))


def parse_register_ack(body):
    """-> (keepalive_s, date_template, secondary_keepalive_s, max_protocol, features). Older
    call managers send the first 12 bytes only (keepalive, date template): the secondary
    keepalive is then the keepalive, the protocol and features 0."""
    _need(body, 12, 'RegisterAck')
    ka = _u32(body, 0)
    if len(body) < 20:
        return ka, _text(body, 4, 6), ka, 0, 0
    sec, proto, _, feat = struct.unpack_from('<IBBH', body, 12)
    return ka, _text(body, 4, 6), sec, proto, feat


def parse_register_reject(body):
    return _text(body, 0, 32)


def parse_u32(body, what='message'):
    """Reset (type), UnregisterAck (status), RegisterTokenReject (seconds), Unregister (reason)."""
    _need(body, 4, what)
    return _u32(body, 0)


def parse_display(msg_id, body):
    """Text of DisplayText / DisplayNotify / DisplayPriNotify / DisplayPromptStatus, with
    "\\x1e"+code labels expanded. ClearNotify -> ''."""
    if msg_id == DISPLAY_TEXT:
        off = 0
    elif msg_id == DISPLAY_NOTIFY or msg_id == DISPLAY_PROMPT_STATUS:
        off = 4
    elif msg_id == DISPLAY_PRI_NOTIFY:
        off = 8
    else:
        return ''
    _need(body, off + 1, 'display message 0x%04X' % msg_id)
    raw = _text(body, off, 32)
    if '\x1e' not in raw and '\x80' not in raw:
        return raw
    out = []
    i = 0
    while i < len(raw):
        c = raw[i]
        if c in '\x1e\x80' and i + 1 < len(raw):
            code = ord(raw[i + 1])
            out.append(_LABELS_36.get(code, '[label %d]' % code) if c == '\x1e'
                       else '[label %d]' % code)
            i += 2
        else:
            out.append(c)
            i += 1
    return ''.join(out)


# ---------------------------------------------------------------- framing

class FrameReader:
    """Reads frames from any stream with readinto() into one preallocated buffer.

        r = FrameReader(stream, accept=(...))
        mid = await r.aread()   # -1 at a clean end of stream
        body = r.body()         # memoryview into the buffer, valid until the next read

    Frames whose id is not in `accept` (None = accept all) are read and skipped (counted in
    `skipped`). A length below 4 or a body over `max_body` raises SccpError, as does a stream
    that ends inside a frame. The buffer holds `keep` body bytes (default max_body): an
    accepted frame must fit (else SccpError), a skipped one may be longer and is read through
    in pieces, so a phone that reads only short messages needs only a short buffer. In steady state (frames of sizes already seen, full reads) a
    read allocates nothing. For asyncio streams (await readinto); phone.sccp_lab.FrameReader
    adds read() for blocking ones.
    Timeouts belong to the caller (socket timeout, asyncio.wait_for); a timeout or error
    inside a frame leaves the stream out of step, so the connection must then be dropped."""

    def __init__(self, stream, accept=None, max_body=MAX_BODY, keep=None):
        self.stream = stream
        self.accept = accept
        self.max_body = max_body
        self.keep = keep = max_body if keep is None else min(keep, max_body)
        self.buf = bytearray(HEADER_SIZE + keep)
        self.mv = memoryview(self.buf)
        self.hdr = self.mv[:HEADER_SIZE]
        self._views = {0: self.mv[HEADER_SIZE:HEADER_SIZE]}
        self.msg_id = -1
        self.size = 0
        self.version = 0
        self.frames = 0
        self.skipped = 0

    def _view(self, n):
        v = self._views.get(n)
        if v is None:
            v = self.mv[HEADER_SIZE:HEADER_SIZE + n]
            if len(self._views) < 24:
                self._views[n] = v
        return v

    def body(self):
        return self._view(self.size)

    def _check(self):
        n = _u32(self.buf, 0)
        if n < 4 or n - 4 > self.max_body:
            raise SccpError('bad length %d' % n)
        n -= 4
        if n > self.keep:
            mid = _u32(self.buf, 8)
            if self.accept is None or mid in self.accept:
                raise SccpError('message 0x%04X: body of %d bytes, %d kept' % (mid, n, self.keep))
        return n

    def _accepted(self, n):
        mid = _u32(self.buf, 8)
        self.frames += 1
        if self.accept is None or mid in self.accept:
            self.msg_id = mid
            self.size = n
            self.version = _u32(self.buf, 4)
            return True
        self.skipped += 1
        return False

    async def _afill(self, view):
        n = len(view)
        got = 0
        while got < n:
            r = await self.stream.readinto(view if got == 0 else view[got:])
            if r is None:          # TLS record not complete yet: wait again
                continue
            if r == 0:
                if got == 0 and view is self.hdr:
                    return False
                raise SccpError('truncated frame')
            got += r
        return True

    async def aread(self):
        while True:
            if not await self._afill(self.hdr):
                self.msg_id = -1
                return -1
            n = self._check()
            left = n
            while left:
                k = left if left <= self.keep else self.keep
                await self._afill(self._view(k))
                left -= k
            if self._accepted(n):
                return self.msg_id
