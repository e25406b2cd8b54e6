# SCCP, the lab's side: what call managers and SRST routers send and read (server-side
# encoders and decoders), decode() of any message, message names, split(), the full Register
# (every field, short form) and FrameReader.read() for blocking streams. Everything of
# phone.sccp (the phone's side: what the agent loads, with the one table of message ids) is
# re-exported (with phone.sccpreg's field encoders), so the simulators and the tests use this
# one module. Never imported by the
# agent: on a board it would only cost RAM. Common subset of MicroPython and CPython.
import struct

from micropython import const

from phone import sccp as _phone
from phone.sccp import *  # noqa: F401,F403 - the phone's side, re-exported
from phone.sccp import _need, _text, _u32
from phone.sccpreg import _fixed, ip_bytes, mac_bytes, opening  # noqa: F401

# The registration dialogue's ids (docs/protocols.md, "The registration dialogue"). The agent
# uses them unnamed (phone.sccpreg builds the opening, phone.sccplink the lines): no names
# on a board. tests/firmware/test_sccp.py checks the agent's frames against this table.
# phone -> server
LINE_STAT_REQ = const(0x000B)
CONFIG_STAT_REQ = const(0x000C)
SOFT_KEY_SET_REQ = const(0x0025)
SOFT_KEY_TEMPLATE_REQ = const(0x0028)
REGISTER_AVAILABLE_LINES = const(0x002D)
# server -> phone (the agent reads ConfigStat for its lines and skips the rest)
SET_LAMP = const(0x0086)
LINE_STAT = const(0x0092)
CONFIG_STAT = const(0x0093)
SOFT_KEY_TEMPLATE_RES = const(0x0108)
SOFT_KEY_SET_RES = const(0x0109)
SELECT_SOFT_KEYS = const(0x0110)
BUTTON_LINE = const(9)       # ButtonTemplate's buttonDefinition of a line

# Reset types (Reset body), UnregisterAck status
RESET_RESET = const(1)
RESET_RESTART = const(2)
RESET_APPLY_CONFIG = const(3)
UNREG_OK = const(0)
UNREG_ERROR = const(1)
UNREG_NAK = const(2)

DEVICE_7941 = const(115)
DEVICE_7942 = const(434)
DEVICE_7945 = const(435)
DEVICE_7965 = const(436)

# Media payload capabilities (CapabilitiesRes)
G711_ALAW = const(2)
G711_ULAW = const(4)
G729 = const(11)

LABELS_36 = _phone._LABELS_36

# Wireshark's names, for the ids of phone.sccp's table
NAMES = {
    KEEPALIVE: 'KeepAlive', REGISTER: 'Register', IP_PORT: 'IpPort',
    TIME_DATE_REQ: 'TimeDateReq', BUTTON_TEMPLATE_REQ: 'ButtonTemplateReq',
    CAPABILITIES_RES: 'CapabilitiesRes', ALARM: 'Alarm', UNREGISTER: 'Unregister',
    REGISTER_TOKEN_REQ: 'RegisterTokenReq', REGISTER_ACK: 'RegisterAck',
    DEFINE_TIME_DATE: 'DefineTimeDate', BUTTON_TEMPLATE: 'ButtonTemplate',
    DISPLAY_TEXT: 'DisplayText', CAPABILITIES_REQ: 'CapabilitiesReq',
    REGISTER_REJECT: 'RegisterReject', RESET: 'Reset', KEEPALIVE_ACK: 'KeepAliveAck',
    DISPLAY_PROMPT_STATUS: 'DisplayPromptStatus', DISPLAY_NOTIFY: 'DisplayNotify',
    CLEAR_NOTIFY: 'ClearNotify', UNREGISTER_ACK: 'UnregisterAck',
    REGISTER_TOKEN_ACK: 'RegisterTokenAck', REGISTER_TOKEN_REJECT: 'RegisterTokenReject',
    DISPLAY_PRI_NOTIFY: 'DisplayPriNotify', LINE_STAT_REQ: 'LineStatReq',
    CONFIG_STAT_REQ: 'ConfigStatReq', SOFT_KEY_SET_REQ: 'SoftKeySetReq',
    SOFT_KEY_TEMPLATE_REQ: 'SoftKeyTemplateReq', REGISTER_AVAILABLE_LINES: 'RegisterAvailableLines',
    SET_LAMP: 'SetLamp', LINE_STAT: 'LineStat', CONFIG_STAT: 'ConfigStat',
    SOFT_KEY_TEMPLATE_RES: 'SoftKeyTemplateRes', SOFT_KEY_SET_RES: 'SoftKeySetRes',
    SELECT_SOFT_KEYS: 'SelectSoftKeys',
}

# What the servers read (the phone's side: phone.sccp.PHONE_RX); anything else is skipped.
SERVER_RX = (KEEPALIVE, REGISTER, IP_PORT, TIME_DATE_REQ, BUTTON_TEMPLATE_REQ, CAPABILITIES_RES,
             ALARM, UNREGISTER, REGISTER_TOKEN_REQ, LINE_STAT_REQ, CONFIG_STAT_REQ,
             SOFT_KEY_SET_REQ, SOFT_KEY_TEMPLATE_REQ, REGISTER_AVAILABLE_LINES)

FALLBACK_TEXT = 'CM Fallback Service Operating'

_MAX_BUTTONS = const(42)
_REGISTER_LONG = const(124)   # body size of the long Register form


def name(msg_id):
    return NAMES.get(msg_id, '0x%04X' % msg_id)


def register(name, ip, device_type=DEVICE_7911, user_id=0, instance=1, max_streams=5,
             active_streams=0, protocol_version=11, phone_features=0, max_conferences=0,
             active_conferences=0, mac=None, max_lines=1, load_name='', long=True):
    """Register. The long form (124-byte body) carries MAC and firmware load name; the short
    form (36 bytes) stops after maxStreams."""
    body = _fixed(name, 16) + struct.pack('<II', user_id, instance) + ip_bytes(ip) \
        + struct.pack('<II', device_type, max_streams)
    if long:
        body += struct.pack('<IBBHII', active_streams, protocol_version, 0, phone_features,
                            max_conferences, active_conferences)
        body += mac_bytes(mac if mac is not None else name) + bytes(6)
        body += struct.pack('<II', 0, max_lines)          # ipV4AddressScope, maxNumberOfLines
        body += bytes(16) + bytes(4)                      # stationIpV6Addr, ipV6AddressScope
        body += _fixed(load_name, 32)
    return frame(REGISTER, body)


class FrameReader(_phone.FrameReader):
    """phone.sccp.FrameReader plus read() for blocking streams (sockets, files):

        r = FrameReader(sock, accept=PHONE_RX)
        mid = r.read()          # -1 at a clean end of stream
        body = r.body()         # memoryview into the buffer, valid until the next read
    """

    def _fill(self, view):
        n = len(view)
        got = 0
        while got < n:
            r = self.stream.readinto(view if got == 0 else view[got:])
            if r is None:          # non-blocking stream with nothing yet
                raise OSError(11)  # EAGAIN: use aread() for asyncio streams
            if r == 0:
                if got == 0 and view is self.hdr:
                    return False
                raise SccpError('truncated frame')
            got += r
        return True

    def read(self):
        """Next accepted frame's id, or -1 at a clean end of stream."""
        while True:
            if not self._fill(self.hdr):
                self.msg_id = -1
                return -1
            n = self._check()
            left = n
            while left:             # a skipped frame longer than the buffer comes in pieces
                k = left if left <= self.keep else self.keep
                self._fill(self._view(k))
                left -= k
            if self._accepted(n):
                return self.msg_id


def body_length(header):
    """Validate a 12-byte header; return the body length. Raises SccpError."""
    if len(header) < HEADER_SIZE:
        raise SccpError('truncated header')
    n = _u32(header, 0)
    if n < 4 or n - 4 > MAX_BODY:
        raise SccpError('bad length %d' % n)
    return n - 4


def parse_header(header):
    """-> (body_length, header_version, msg_id)"""
    return body_length(header), _u32(header, 4), _u32(header, 8)


def split(data):
    """Parse a buffer holding complete frames -> list of (msg_id, body bytes). For tests and
    simulators; raises SccpError on a truncated or bad frame."""
    out = []
    i = 0
    while i < len(data):
        n = body_length(data[i:i + HEADER_SIZE])
        if i + HEADER_SIZE + n > len(data):
            raise SccpError('truncated frame')
        out.append((_u32(data, i + 8), bytes(data[i + HEADER_SIZE:i + HEADER_SIZE + n])))
        i += HEADER_SIZE + n
    return out


def ip_str(b):
    return '%d.%d.%d.%d' % (b[0], b[1], b[2], b[3])


def device_name(mac):
    """'00:11:22:aa:bb:cc' -> 'SEP001122AABBCC'."""
    return 'SEP' + ''.join(['%02X' % c for c in mac_bytes(mac)])


def register_token_req(name, ip, device_type=DEVICE_7911, user_id=0, instance=1):
    ipb = ip_bytes(ip)
    return frame(REGISTER_TOKEN_REQ, _fixed(name, 16) + struct.pack('<II', user_id, instance)
                 + ipb + struct.pack('<I', device_type) + ipb)


# ---------------------------------------------------------------- server -> phone encoders

def register_ack(keepalive=30, secondary_keepalive=60, date_template='M/D/YA',
                 max_protocol=11, features=0):
    return frame(REGISTER_ACK, struct.pack('<I', keepalive) + _fixed(date_template, 7)[:6]
                 + bytes(2) + struct.pack('<IBBH', secondary_keepalive, max_protocol, 0, features))


def register_reject(text):
    return frame(REGISTER_REJECT, _fixed(text, 32))


def capabilities_req():
    return frame(CAPABILITIES_REQ)


def keepalive_ack():
    return frame(KEEPALIVE_ACK)


def button_template(buttons=((1, 9),)):
    """buttons: (instanceNumber, buttonDefinition) pairs (9 = line)."""
    buttons = buttons[:_MAX_BUTTONS]
    body = struct.pack('<III', 0, len(buttons), len(buttons))
    for inst, definition in buttons:
        body += bytes([inst & 0xFF, definition & 0xFF])
    body += bytes(2 * (_MAX_BUTTONS - len(buttons)))
    return frame(BUTTON_TEMPLATE, body)


def define_time_date(year, month, day, hour, minute, second, millis=0, weekday=0,
                     system_time=0):
    """weekday: 0 = Sunday (SYSTEMTIME convention); system_time: Unix seconds."""
    return frame(DEFINE_TIME_DATE, struct.pack('<9I', year, month, weekday, day, hour, minute,
                                               second, millis, system_time))


def reset(kind=RESET_RESET):
    return frame(RESET, struct.pack('<I', kind))


def unregister_ack(status=UNREG_OK):
    return frame(UNREGISTER_ACK, struct.pack('<I', status))


def register_token_ack():
    return frame(REGISTER_TOKEN_ACK)


def register_token_reject(wait_seconds=0):
    return frame(REGISTER_TOKEN_REJECT, struct.pack('<I', wait_seconds))


def display_notify(text, timeout=0):
    return frame(DISPLAY_NOTIFY, struct.pack('<I', timeout) + _fixed(text, 32))


def display_prompt_status(text, timeout=0, line=0, call_ref=0):
    return frame(DISPLAY_PROMPT_STATUS,
                 struct.pack('<I', timeout) + _fixed(text, 32) + struct.pack('<II', line, call_ref))


def clear_notify():
    return frame(CLEAR_NOTIFY)


# The registration dialogue (layouts: Wireshark's skinny dissector). The phone's side:
def ip_port(port=0):
    return frame(IP_PORT, struct.pack('<I', port))


def line_stat_req(line):
    return frame(LINE_STAT_REQ, struct.pack('<I', line))


def register_available_lines(n):
    return frame(REGISTER_AVAILABLE_LINES, struct.pack('<I', n))


# The server's answers
_SOFT_KEYS = ('Redial', 'NewCall', 'Hold', 'Trnsfer', 'CFwdAll', 'CFwdBusy', 'CFwdNoAnswer',
              'BackSpace', 'EndCall', 'Resume', 'Answer', 'Info', 'Confrn', 'Park', 'Join',
              'MeetMe', 'PickUp', 'GPickUp')
_SOFT_KEY_SETS = const(16)
_SET_KEYS = const(16)


def soft_key_template_res(labels=_SOFT_KEYS):
    """labels: the soft keys, events 1, 2, ... (softKeyLabel char[16], softKeyEvent u32)."""
    body = struct.pack('<III', 0, len(labels), len(labels))
    for i, label in enumerate(labels):
        body += _fixed(label, 16) + struct.pack('<I', i + 1)
    return frame(SOFT_KEY_TEMPLATE_RES, body)


def soft_key_set_res(sets=((1, 2, 5, 6),)):
    """sets: per soft key set, the template indexes of its keys (16 sets of 16 keys)."""
    body = struct.pack('<III', 0, _SOFT_KEY_SETS, _SOFT_KEY_SETS)
    for i in range(_SOFT_KEY_SETS):
        keys = list(sets[i]) if i < len(sets) else []
        keys = (keys + [0] * _SET_KEYS)[:_SET_KEYS]
        body += bytes(keys) + b''.join([struct.pack('<H', k) for k in keys])
    return frame(SOFT_KEY_SET_RES, body)


def select_soft_keys(line=0, call_ref=0, soft_key_set=0, valid_mask=0xFFFF):
    return frame(SELECT_SOFT_KEYS, struct.pack('<IIII', line, call_ref, soft_key_set, valid_mask))


def set_lamp(stimulus=0x0F, instance=0, mode=1):
    """stimulus 0x0F: the voicemail lamp; mode 1: off."""
    return frame(SET_LAMP, struct.pack('<III', stimulus, instance, mode))


def config_stat(name, user='', server='', lines=1, speed_dials=0, instance=1):
    return frame(CONFIG_STAT, _fixed(name, 16) + struct.pack('<II', 0, instance)
                 + _fixed(user, 40) + _fixed(server, 40) + struct.pack('<II', lines, speed_dials))


def line_stat(line, number='', label='', display_name=''):
    return frame(LINE_STAT, struct.pack('<I', line) + _fixed(number, 24)
                 + _fixed(display_name, 40) + _fixed(label, 40) + struct.pack('<I', 0xF))


def parse_define_time_date(body):
    """-> (year, month, day, hour, minute, second, millis, weekday, system_time)"""
    _need(body, 36, 'DefineTimeDate')
    y, mo, wd, d, h, mi, s, ms, st = struct.unpack_from('<9I', body, 0)
    return y, mo, d, h, mi, s, ms, wd, st


def parse_register(body):
    """Server side: Register (short or long form) -> dict."""
    _need(body, 36, 'Register')
    uid, inst = struct.unpack_from('<II', body, 16)
    dtype, streams = struct.unpack_from('<II', body, 28)
    r = {'name': _text(body, 0, 16), 'user_id': uid, 'instance': inst,
         'ip': ip_str(bytes(body[24:28])), 'device_type': dtype, 'max_streams': streams}
    if len(body) >= 48:
        act, proto, _, feat, conf = struct.unpack_from('<IBBHI', body, 36)
        r.update(active_streams=act, protocol_version=proto, phone_features=feat,
                 max_conferences=conf)
    if len(body) >= _REGISTER_LONG:
        r['active_conferences'] = _u32(body, 48)
        r['mac'] = ':'.join(['%02x' % c for c in bytes(body[52:58])])
        r['max_lines'] = _u32(body, 68)
        r['load_name'] = _text(body, 92, 32)
    return r


def parse_capabilities_res(body):
    """-> list of (payloadCapability, maxFramesPerPacket)"""
    _need(body, 4, 'CapabilitiesRes')
    n = min(_u32(body, 0), MAX_CAPS)
    _need(body, 4 + 16 * n, 'CapabilitiesRes')
    return [struct.unpack_from('<II', body, 4 + 16 * i) for i in range(n)]


def parse_button_template(body):
    """-> list of (instanceNumber, buttonDefinition)"""
    _need(body, 12, 'ButtonTemplate')
    n = min(_u32(body, 8), _MAX_BUTTONS)
    _need(body, 12 + 2 * n, 'ButtonTemplate')
    return [(body[12 + 2 * i], body[13 + 2 * i]) for i in range(n)]


def parse_register_token_req(body):
    _need(body, 32, 'RegisterTokenReq')
    return {'name': _text(body, 0, 16), 'ip': ip_str(bytes(body[24:28])),
            'device_type': _u32(body, 28)}


def decode(msg_id, body):
    """Any message we know -> dict with 'id' and 'msg' (the name) plus its fields; unknown ids
    -> dict with just those. For simulators, logs and tests (allocates; the firmware's loops
    use the parse_* functions on the ids they care about)."""
    d = {'id': msg_id, 'msg': name(msg_id)}
    if msg_id == REGISTER:
        d.update(parse_register(body))
    elif msg_id == REGISTER_ACK:
        ka, tpl, sec, proto, feat = parse_register_ack(body)
        d.update(keepalive=ka, date_template=tpl, secondary_keepalive=sec, max_protocol=proto,
                 features=feat)
    elif msg_id == REGISTER_REJECT:
        d['text'] = parse_register_reject(body)
    elif msg_id in (RESET, UNREGISTER_ACK, REGISTER_TOKEN_REJECT, UNREGISTER):
        key = {RESET: 'kind', UNREGISTER_ACK: 'status', REGISTER_TOKEN_REJECT: 'wait',
               UNREGISTER: 'reason'}[msg_id]
        d[key] = parse_u32(body, name(msg_id)) if (msg_id != UNREGISTER or len(body) >= 4) else 0
    elif msg_id == DEFINE_TIME_DATE:
        t = parse_define_time_date(body)
        d.update(year=t[0], month=t[1], day=t[2], hour=t[3], minute=t[4], second=t[5],
                 millis=t[6], weekday=t[7], system_time=t[8])
    elif msg_id in (DISPLAY_TEXT, DISPLAY_NOTIFY, DISPLAY_PRI_NOTIFY, DISPLAY_PROMPT_STATUS,
                    CLEAR_NOTIFY):
        d['text'] = parse_display(msg_id, body)
    elif msg_id == CAPABILITIES_RES:
        d['caps'] = parse_capabilities_res(body)
    elif msg_id == BUTTON_TEMPLATE:
        d['buttons'] = parse_button_template(body)
    elif msg_id == REGISTER_TOKEN_REQ:
        d.update(parse_register_token_req(body))
    elif msg_id in (LINE_STAT_REQ, REGISTER_AVAILABLE_LINES, IP_PORT, LINE_STAT):
        key = {LINE_STAT_REQ: 'line', REGISTER_AVAILABLE_LINES: 'lines', IP_PORT: 'port',
               LINE_STAT: 'line'}[msg_id]
        d[key] = parse_u32(body, name(msg_id))
    elif msg_id == CONFIG_STAT:
        _need(body, 108, 'ConfigStat')
        d.update(name=_text(body, 0, 16), lines=_u32(body, 104))
    return d
