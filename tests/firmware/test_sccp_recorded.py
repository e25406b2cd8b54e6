# heap: 96K
# Frames recorded from real Cisco call managers (fixtures/cucm/README.md says where from):
# every message a CUCM sent to a device in two public captures, read with the agent's own
# FrameReader in pieces of several sizes (the TCP segments split and joined anew). Read
# whole, the frames are the ones Wireshark's dissector found (fixtures/cucm/frames.json);
# read as the agent reads them (accept = PHONE_RX, the agent's buffer), each one the agent
# takes is decoded with the parser it uses and every other one is skipped by name, with no
# error.
import json

from fwtest import Pieces, eq
from phone import sccp

D = 'fixtures/cucm/'
KEEP = 256            # body bytes the agent buffers (phone.sccplink's _KEEP)
STEPS = (1, 7, 64, 100000)

# What the agent skips of these captures, by Wireshark's names: a call in progress (call
# state, soft keys, lamps, ringer, tones, call information, media channels) and the
# version answer; none of it matters to a phone that only registers and fails over.
SKIPPED = ('SetRinger', 'SetSpeakerMode', 'SetLamp', 'CallState', 'SelectSoftKeys',
           'DisplayPromptStatusV2', 'ActivateCallPlane', 'DialedNumber',
           'DisplayPriNotifyV2', 'CallInfoV2', 'StartTone', 'StopTone',
           'OpenReceiveChannel', 'StartMediaTransmission', 'VersionRes')

_U32 = (sccp.RESET, sccp.UNREGISTER_ACK, sccp.REGISTER_TOKEN_REJECT)
_DISPLAYS = (sccp.DISPLAY_TEXT, sccp.DISPLAY_NOTIFY, sccp.DISPLAY_PRI_NOTIFY,
             sccp.DISPLAY_PROMPT_STATUS)


def _manifest():
    with open(D + 'frames.json') as f:
        return json.load(f)


def _data(name):
    with open(D + name, 'rb') as f:
        return f.read()


def decode(mid, body):
    """What the agent makes of a message it reads (phone.sccplink), or True for one it reads
    without a body to parse."""
    if mid == sccp.REGISTER_ACK:
        return sccp.parse_register_ack(body)
    if mid == sccp.REGISTER_REJECT:
        return sccp.parse_register_reject(body)
    if mid in _U32:
        return sccp.parse_u32(body)
    if mid in _DISPLAYS:
        return sccp.parse_display(mid, body)
    if mid == sccp.DEFINE_TIME_DATE:
        assert len(body) >= 36, 'DefineTimeDate: body %d < 36' % len(body)   # phone.clock
        return True
    assert mid in sccp.PHONE_RX, mid
    return True


async def _all(data, step, **kw):
    r = sccp.FrameReader(Pieces(data, step), **kw)
    out = []
    while True:
        mid = await r.aread()
        if mid < 0:
            return r, out
        out.append((mid, bytes(r.body()), r.version))


async def test_every_frame_is_framed_as_wireshark_frames_it():
    for name, m in _manifest().items():
        data = _data(name)
        eq(len(data), m['bytes'], name)
        want = [(f[0], f[2] - 4, f[3]) for f in m['frames']]
        for step in STEPS:
            r, got = await _all(data, step)
            eq([(mid, len(body), v) for mid, body, v in got], want,
               '%s in pieces of %d' % (name, step))


async def test_the_agent_decodes_or_skips_by_name_every_frame():
    decoded = []
    for name, m in _manifest().items():
        data = _data(name)
        frames = m['frames']
        for f in frames:
            assert f[0] in sccp.PHONE_RX or f[1] in SKIPPED, \
                '%s: %s (0x%04X) neither read nor skipped by name' % (name, f[1], f[0])
        wanted = [f[0] for f in frames if f[0] in sccp.PHONE_RX]
        for step in STEPS:
            r, got = await _all(data, step, accept=sccp.PHONE_RX, keep=KEEP)
            eq([g[0] for g in got], wanted, '%s in pieces of %d' % (name, step))
            eq((r.frames, r.skipped), (len(frames), len(frames) - len(wanted)), name)
            for mid, body, _ in got:
                out = decode(mid, body)
                if step == 1:
                    decoded.append((name, mid, out))
    # what the registration capture's call manager said: keepalive 30 s, secondary 60 s,
    # protocol 18, in a 20-byte RegisterAck with header version 0
    acks = [d[2] for d in decoded if d[1] == sccp.REGISTER_ACK]
    eq(acks, [(30, 'Unused', 60, 18, 0x2880)])
    eq([d[1] for d in decoded], [sccp.REGISTER_ACK, sccp.CAPABILITIES_REQ])
