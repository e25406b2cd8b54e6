# The Register an SCCP phone sends, and the field encoders it needs: phone.sccplink loads this
# module once per agent run to build the frame and drops it (the frame is kept, the code is
# not: a board's heap holds nothing it will not run again). The lab's full Register
# (phone.sccp_lab.register, every field, the short form) uses the same encoders.
import struct

from micropython import const

from phone.sccp import (BUTTON_TEMPLATE_REQ, DEVICE_7911, IP_PORT, REGISTER, capabilities_res,
                        frame)

# Ids of the registration dialogue's opening (private: no names on a board; phone.sccp_lab
# has the table with their names)
_CONFIG_STAT_REQ = const(0x000C)
_SOFT_KEY_SET_REQ = const(0x0025)
_SOFT_KEY_TEMPLATE_REQ = const(0x0028)


def _fixed(text, size):
    """char[size], NUL padded, always NUL terminated."""
    if isinstance(text, str):
        text = text.encode()
    text = bytes(text[:size - 1])
    return text + bytes(size - len(text))


def ip_bytes(ip):
    """'192.0.2.5' or 4 bytes -> 4 bytes (network order)."""
    if isinstance(ip, str):
        parts = ip.split('.')
        if len(parts) != 4:
            raise ValueError('bad IPv4 address %r' % ip)
        return bytes([int(p) for p in parts])
    ip = bytes(ip)
    if len(ip) != 4:
        raise ValueError('bad IPv4 address')
    return ip


def mac_bytes(mac):
    """'SEP001122AABBCC' / '00:11:22:aa:bb:cc' / 6 bytes -> 6 bytes."""
    if isinstance(mac, str):
        m = mac.upper()
        if m.startswith('SEP'):
            m = m[3:]
        m = m.replace(':', '').replace('-', '').replace('.', '')
        if len(m) != 12:
            raise ValueError('bad MAC %r' % mac)
        return bytes([int(m[i:i + 2], 16) for i in range(0, 12, 2)])
    mac = bytes(mac)
    if len(mac) != 6:
        raise ValueError('bad MAC')
    return mac


def register(name, ip, device_type=DEVICE_7911, mac=None, load_name=''):
    """Register, the long form (124-byte body: MAC and firmware load name), as a phone sends
    it (phone.sccp_lab.register has every field and the short form)."""
    return frame(REGISTER, _fixed(name, 16) + struct.pack('<II', 0, 1) + ip_bytes(ip)
                 + struct.pack('<IIIBBHII', device_type, 5, 0, 11, 0, 0, 0, 0)
                 + mac_bytes(mac if mac is not None else name) + bytes(6)
                 + struct.pack('<II', 0, 1) + bytes(20) + _fixed(load_name, 32))


def opening():
    """The registration dialogue's fixed frames (docs/protocols.md, "The registration
    dialogue"), built with the Register and kept by the agent: what the phone writes right
    after RegisterAck, in one write: IpPort with no media port, CapabilitiesRes (the answer
    to the CapabilitiesReq that comes with RegisterAck), ButtonTemplateReq,
    SoftKeyTemplateReq, SoftKeySetReq, and ConfigStatReq, whose answer says how many lines
    to ask for. One write, not several: a second small write waits for the first's ACK
    (Nagle), which the server delays (40 ms on Linux). 380 bytes, kept: built at failover
    it would be one more block to find beside two sessions."""
    return (frame(IP_PORT, bytes(4)) + capabilities_res() + frame(BUTTON_TEMPLATE_REQ)
            + frame(_SOFT_KEY_TEMPLATE_REQ) + frame(_SOFT_KEY_SET_REQ) + frame(_CONFIG_STAT_REQ))
