# heap: 192K
# timeout: 120
# SIP under MicroPython: the framing of a TLS byte stream (phone.sip.Reader), and bad input:
# every malformed message gives SipError with its reason, and mutated messages never raise
# anything else (nor does answering their challenges, phone.sipreg).
import asyncio
import random

from fwtest import Pieces, eq, raises
from phone import sip, sipreg
from phone.sip import SipError

HEAD = (b'Via: SIP/2.0/TLS 192.0.2.50:5061;branch=z9hG4bK1\r\nFrom: <sip:1001@d>;tag=1\r\n'
        b'To: <sip:1001@d>;tag=2\r\nCall-ID: c@h\r\nCSeq: 101 REGISTER\r\n')


def resp(code=200, extra=b'', body=b''):
    return (b'SIP/2.0 %d Reason\r\n' % code + HEAD + extra
            + b'Content-Length: %d\r\n\r\n' % len(body) + body)


CHALLENGE = resp(401, b'WWW-Authenticate: Digest realm="d", nonce="abc", qop="auth,auth-int", '
                      b'opaque="o", algorithm=SHA-256\r\nWWW-Authenticate: Digest realm="d", '
                      b'nonce="n2"\r\nProxy-Authenticate: Digest realm="p", nonce="q"\r\n')
OK = resp(200, b'Contact: <sip:1001@192.0.2.50:5061;transport=tls>;expires=3600;'
               b'+sip.instance="<urn:uuid:00000000-0000-0000-0000-001122aabbcc>", '
               b'"x, y" <sip:1002@h>;expires=60\r\nExpires: 3600\r\nRetry-After: 5 (x)\r\n',
          b'v=0\r\n')
NOTIFY = (b'NOTIFY sip:1001@192.0.2.50:5061 SIP/2.0\r\n' + HEAD.replace(b'REGISTER', b'NOTIFY')
          + b'Event: check-sync\r\nContent-Length: 0\r\n\r\n')


def read_all(data, step=1 << 20, size=sip.MAX_MSG, reg=None):
    """Every id the reader returns until the end, with (status, cseq, hlen) of messages."""
    async def main():
        r = sip.Reader(Pieces(data, step), size=size, reg=reg)
        out = []
        while True:
            mid = await r.aread()
            if mid > sip.REQUEST:
                out.append((mid, r.msg.cseq, len(r.body())))
            else:
                out.append(mid)
            if mid < 0:
                return out
    return asyncio.run(main())


def test_reader_splits_a_stream_at_any_read_size():
    data = (OK + b'\r\n' + CHALLENGE + b'\r\n' + NOTIFY + resp(100) + b'\r\n')
    want = [(200, 101, len(OK) - 5), sip.PONG, (401, 101, len(CHALLENGE)), sip.PONG,
            sip.REQUEST, (100, 101, len(resp(100))), sip.PONG, -1]
    for step in (1, 2, 7, 64, 1 << 20):
        eq(read_all(data, step), want, 'reads of %d bytes' % step)


def test_reader_skips_bodies_longer_than_its_buffer():
    body = b'x' * 1000
    data = resp(200, body=body) + resp(180) + b'\r\n'
    for step in (1, 100, 1 << 20):
        got = read_all(data, step, size=256)
        eq(got, [(200, 101, len(data) - len(body) - len(resp(180)) - 2),
                 (180, 101, len(resp(180))), sip.PONG, -1])
    # the parsed message stays readable while its body is still coming
    async def main():
        r = sip.Reader(Pieces(resp(200, body=body) + resp(181), 300), size=256)
        eq(await r.aread(), 200)
        eq(bytes(r.body()[:15]), b'SIP/2.0 200 Rea')
        eq(r.msg.length, 1000)
        eq(await r.aread(), 181)
    asyncio.run(main())


def test_reader_pongs_and_stray_cr():
    # one PONG per run of CR/LF as it arrives: a run split between reads counts twice
    eq(read_all(b'\r\n'), [sip.PONG, -1])
    eq(read_all(b'\r\n\r\n\r\n', 1), [sip.PONG, sip.PONG, sip.PONG, -1])
    eq(read_all(b'\r\n\r\n\r\n'), [sip.PONG, -1])
    eq(read_all(b'\r'), [-1])                        # a CR alone, then the end
    eq(read_all(b'\r' + resp(200), 1), [(200, 101, len(resp(200))), -1])
    eq(read_all(b''), [-1])


def test_reader_refuses_what_it_cannot_frame():
    for data, size, why in (
            (resp(200)[:-3], 2048, 'stream ended inside a message'),
            (resp(200, body=b'abc')[:-1], 2048, 'stream ended inside a body'),
            (resp(200, b'X-Big: ' + b'y' * 300 + b'\r\n'), 256, 'headers over 256 bytes'),
            (b'SIP/2.0 200 OK\r\n' + b'a' * 3000, 2048, 'headers over 2048 bytes'),
            (resp(200).replace(b'Content-Length: 0\r\n', b''), 2048, 'no Content-Length'),
            (b'hello\r\n\r\n', 2048, 'bad start line')):
        for step in (1, 1 << 20):
            with raises(SipError, match=why):
                read_all(data, step, size=size)


# Each with its reason: the first line of defence is a message a server never sends.
BAD = (
    (b'SIP/2.0 200 OK\r\n' + HEAD + b'Content-Length: 0\r\n', 'no blank line'),
    (b'', 'no blank line'),
    (b'\r\n\r\n', 'no blank line'),
    (b'SIP/2.0 20 OK\r\n' + HEAD + b'Content-Length: 0\r\n\r\n', 'bad status line'),
    (b'SIP/2.0 2000 OK\r\n' + HEAD + b'Content-Length: 0\r\n\r\n', 'bad status line'),
    (b'SIP/2.0 099 OK\r\n' + HEAD + b'Content-Length: 0\r\n\r\n', 'bad status line'),
    (b'SIP/2.0 7x0 OK\r\n' + HEAD + b'Content-Length: 0\r\n\r\n', 'bad status line'),
    (b'SIP/3.0 200 OK\r\n' + HEAD + b'Content-Length: 0\r\n\r\n', 'bad start line'),
    (b'HTTP/1.1 200 OK\r\n' + HEAD + b'Content-Length: 0\r\n\r\n', 'bad start line'),
    (b'NOTIFY  sip:x SIP/2.0\r\n' + HEAD + b'Content-Length: 0\r\n\r\n', 'bad start line'),
    (b'SIP/2.0 200 \xff\xfe\r\n' + HEAD + b'Content-Length: 0\r\n\r\n', 'line 1 is not UTF-8'),
    (resp(200, b'Server: \xc3\x28\r\n'), 'line 7 is not UTF-8'),
    (resp(200, b'\x80: x\r\n'), 'line 7 is not UTF-8'),
    (resp(200, b'NoColon\r\n'), 'bad header line 7'),
    (resp(200, b': empty name\r\n'), 'bad header line 7'),
    (resp(200, b'Bad Name: x\r\n'), 'bad header line 7'),
    (b'SIP/2.0 200 OK\r\n  folded: first\r\n' + HEAD + b'Content-Length: 0\r\n\r\n',
     'continuation line before any header'),
    (resp(200).replace(b'Content-Length: 0', b'Content-Length: -1'), 'bad Content-Length'),
    (resp(200).replace(b'Content-Length: 0', b'Content-Length: 1_0'), 'bad Content-Length'),
    (resp(200).replace(b'Content-Length: 0', b'Content-Length: +5'), 'bad Content-Length'),
    (resp(200).replace(b'Content-Length: 0', b'Content-Length: 0x10'), 'bad Content-Length'),
    (resp(200).replace(b'Content-Length: 0', b'Content-Length:'), 'bad Content-Length'),
    (resp(200).replace(b'Content-Length: 0', b'Content-Length: 99999999999999999999999'),
     'bad Content-Length'),
    (resp(200).replace(b'Content-Length: 0', b'Content-Length: 65537'),
     'Content-Length 65537 over 65536'),
    (resp(200, b'l: 5\r\n'), 'two Content-Length: 5 and 0'),
    (resp(200).replace(b'Content-Length: 0\r\n', b''), 'no Content-Length header'),
    (resp(200).replace(b'CSeq: 101 REGISTER\r\n', b''), 'no CSeq header'),
    (resp(200).replace(b'Call-ID: c@h\r\n', b''), 'no Call-ID header'),
    (resp(200).replace(b'From: <sip:1001@d>;tag=1\r\n', b''), 'no From header'),
    (resp(200).replace(b'To: <sip:1001@d>;tag=2\r\n', b''), 'no To header'),
    (resp(200).replace(b'Via: SIP/2.0/TLS 192.0.2.50:5061;branch=z9hG4bK1\r\n', b''),
     'no Via header'),
    (resp(200, b'CSeq: 102 REGISTER\r\n'), 'two CSeq headers'),
    (resp(200, b'i: other\r\n'), 'two Call-ID headers'),
    (resp(200).replace(b'CSeq: 101 REGISTER', b'CSeq: REGISTER'), 'bad CSeq'),
    (resp(200).replace(b'CSeq: 101 REGISTER', b'CSeq: 1 2 REGISTER'), 'bad CSeq'),
    (resp(200).replace(b'CSeq: 101 REGISTER', b'CSeq: -1 REGISTER'), 'bad CSeq'),
    (resp(200).replace(b'Call-ID: c@h', b'Call-ID:'), 'bad Call-ID'),
    (resp(200, b'Via: HTTP/1.1 proxy\r\n'), 'bad Via'),
    (resp(200, b'Via: ' + b', '.join([b'SIP/2.0/TLS h'] * 40) + b'\r\n'), 'more than 32 items'),
    (resp(200, b'Via: SIP/2.0/TLS h\r\n' * 40), 'bad Via'),
    (resp(200, b'Expires: soon\r\n'), 'bad Expires'),
    (resp(200, b'Expires: 3600 s\r\n'), 'bad Expires'),
    (resp(423, b'Min-Expires: \r\n'), 'bad Min-Expires'),
    (resp(503, b'Retry-After: x\r\n'), 'bad Retry-After'),
    (resp(503, b'Retry-After: 10 minutes\r\n'), 'bad Retry-After'),
    (resp(503, b'Retry-After: (soon)\r\n'), 'bad Retry-After'),
    (resp(200, b'Flow-Timer: 1.5\r\n'), 'bad Flow-Timer'),
    (resp(200, b'Contact: <sip:1001@h;expires=60\r\n'), 'bad Contact'),
    (resp(200, b'Contact: <>;expires=60\r\n'), 'bad Contact'),
    (resp(200, b'Contact: <sip:1001@h>;expires=never\r\n'), 'bad Contact expires'),
    (resp(200, b'Contact: <sip:1001@h>;+sip.instance="<urn:uuid:1>\r\n'), 'bad quoted string'),
    (resp(200, b'Contact: "unterminated <sip:1001@h>\r\n'), 'bad quoted string'),
    (resp(200, b'X-Many: 1\r\n' * 70), 'more than 64 headers'),
    (resp(401, b'WWW-Authenticate: x\r\n' * 40), 'more than 32 challenges'),
)

# Bad challenges: parse() keeps a challenge's text, phone.sipreg.challenge() reads it.
BAD_AUTH = (
    (b'realm="d", nonce="n"', 'auth parameter before a scheme'),
    (b'Digest realm="d", ="n"', 'bad auth parameter'),
    (b'Digest realm="d, nonce="n"', 'bad quoted string'),
    (b'Digest realm="d", nonce="n"x', 'bad quoted string'),
)


def test_each_malformed_message_has_its_reason():
    for data, why in BAD:
        try:
            sip.parse(data)
        except SipError as e:
            assert why in str(e), '%r does not say %r' % (str(e), why)
        else:
            raise AssertionError('no SipError (%r) for %r' % (why, data[-80:]))
    for value, why in BAD_AUTH:
        m = sip.parse(resp(401, b'WWW-Authenticate: ' + value + b'\r\n'))
        with raises(SipError, match=why):
            sipreg.challenge(m)


SYNTAX = b'":;,<>= \t\r\n\\'


def _mutate(b, rnd):
    for _ in range(1 + rnd(3)):
        k = rnd(8)
        at = rnd(len(b)) if b else 0
        if k == 0 and b:                              # change a byte
            b = b[:at] + bytes([rnd(256)]) + b[at + 1:]
        elif k == 1:                                  # cut
            b = b[:at]
        elif k == 2:                                  # insert bytes, often syntax
            b = b[:at] + bytes(SYNTAX[rnd(len(SYNTAX))] for _ in range(1 + rnd(4))) + b[at:]
        elif k == 3:                                  # delete a run
            b = b[:at] + b[at + 1 + rnd(8):]
        elif k == 4:                                  # duplicate a run
            b = b[:at] + b[at:at + 1 + rnd(40)] + b[at:]
        elif k == 5:                                  # a high byte (UTF-8 or not)
            b = b[:at] + bytes([0x80 + rnd(128)]) + b[at:]
        elif k == 6:                                  # a digit run (numbers, huge ones)
            b = b[:at] + b'9' * (1 + rnd(25)) + b[at:]
        else:                                         # a long run
            b = b[:at] + b'a' * rnd(600) + b[at:]
    return b


def test_mutated_messages_raise_only_sip_error():
    random.seed(15)

    def rnd(n):
        return random.getrandbits(16) % n if n > 1 else 0

    r = sipreg.Reg('1001', 'd', '192.0.2.50', 5061, '00:11:22:aa:bb:cc', password='p')
    seeds = (OK, CHALLENGE, NOTIFY, resp(423, b'Min-Expires: 60\r\n'),
             resp(503, b'Retry-After: 5;duration=1\r\n'))
    counts = [0, 0, 0]
    for i in range(1500):
        data = _mutate(seeds[i % len(seeds)], rnd)
        try:
            m = sip.parse(data, reg=r if i & 1 else None)
            counts[0] += 1
            try:
                if m.auth and sipreg.challenge(m)[0] is not None:
                    r.answer(m)
                    r.register()
                sip.reply(m, 200, 'OK', 't')
            except SipError:
                counts[2] += 1
        except SipError as e:
            counts[1] += 1
            assert str(e), 'a reason'
        if i % 10 == 0:     # and the stream reader, over the same bytes in pieces
            try:
                read_all(data, 1 + rnd(64), size=512)
            except SipError:
                pass
    assert counts[0] > 100 and counts[1] > 100, counts
