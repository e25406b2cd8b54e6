# phone.config's refusals, message for message (byte offsets too), as the parser gave them
# before it was split into a scanner and element handlers (issue 13): the two are the same to
# the byte. 256K: an 8 KB certificate text is collected in one piece, which the heap left
# after compiling this file at 96K does not always hold (test_config.py has the 96K figures).
# heap: 256K
import io

from fwtest import eq
from phone import config
from phone.config import ConfigError


def _dev(inner):
    return b'<device>' + inner + b'</device>'


def _pool(inner):
    return _dev(b'<devicePool>' + inner + b'</devicePool>')


# Every way parse() refuses a file, at a small and the default chunk size; a pair: the
# messages at 40 and 1024 differ. Long runs are streamed (Repeat), never made whole.
UTF8 = 'text that is not UTF-8 in the config'


class Repeat:
    """A stream of `head`, `n` times `fill`, then `tail`."""

    def __init__(self, head, fill, n, tail):
        self.spec = (head, fill, n, tail)

    def stream(self):
        head, fill, n, tail = self.spec
        self.parts, self.at = [[head, 1], [fill, n], [tail, 1]], 0
        return self

    def readinto(self, b):
        k = 0
        while self.parts and k < len(b):
            p = self.parts[0]
            if not p[1]:
                self.parts.pop(0)
                continue
            m = min(len(b) - k, len(p[0]) - self.at)
            b[k:k + m] = p[0][self.at:self.at + m]
            k += m
            self.at += m
            if self.at == len(p[0]):
                self.at = 0
                p[1] -= 1
        return k


def exact_cases():
    yield b'', 'empty config file'
    yield b'no xml at all', 'no XML element in the config file'
    yield b'  \n', 'no XML element in the config file'
    yield _dev(b'<!-- open'), 'truncated inside a comment (byte 24)'
    yield _dev(b'<![CDATA[abc'), 'truncated inside CDATA (byte 27)'
    yield b'<!DOCTYPE device', 'truncated inside a declaration (byte 16)'
    yield b'<?xml version="1.0"', 'truncated inside a processing instruction (byte 18)'
    yield _dev(b'<a x="1></a>'), 'truncated inside a tag (byte 8)'
    yield _dev(b"<a x='1></a>"), 'truncated inside a tag (byte 8)'
    yield b'<device><a', 'truncated inside a tag (byte 8)'
    yield (_dev(b'<t ' + b'a="b" ' * 200 + b'/>'),
           ('tag longer than 40 bytes (byte 8)', 'tag longer than 1024 bytes (byte 8)'))
    yield _dev(b'<a></b>'), '</b> does not close <a> (byte 11)'
    yield b'<device></device></device>', '</device> does not close any element (byte 17)'
    yield b'<device/><device/>', 'a second root element (byte 9)'
    yield b'<device/>text<b/>', 'a second root element (byte 13)'
    yield _dev(b'<>'), 'bad tag (byte 8)'
    yield _dev(b'< a>'), 'bad tag (byte 8)'
    yield _dev(b'<a<b>'), 'bad tag (byte 8)'
    yield (_dev(b'<' + b'n' * 65 + b'/>'),
           ('tag longer than 40 bytes (byte 8)', 'element name longer than 64 bytes (byte 8)'))
    yield b'<a>' * 65 + b'</a>' * 65, 'elements nested too deep (byte 192)'
    yield b'<device><a>', 'truncated: <a> is not closed (byte 11)'
    yield b'<device><a>text', 'truncated: <a> is not closed (byte 15)'
    yield (b'<device><deviceSecurityMode>3',
           'truncated: <deviceSecurityMode> is not closed (byte 29)')
    yield (_pool(b'<srstInfo><name>' + b'n' * 300 + b'</name></srstInfo>'),
           ('<name> text is too long (byte 280)', '<name> text is too long (byte 36)'))
    yield (Repeat(b'<device><devicePool><srstInfo><certificate>', b'A', 9000,
                  b'</certificate></srstInfo></devicePool></device>'),
           ('<certificate> text is too long (byte 8230)',
            '<certificate> text is too long (byte 8192)'))
    yield (Repeat(b'<device><devicePool><srstInfo><certificate><![CDATA[', b'&', 2000,
                  b']]></certificate></srstInfo></devicePool></device>'),
           ('<certificate> text is too long (byte 1664)',
            '<certificate> text is too long (byte 1022)'))
    yield (_dev(b'<deviceSecurityMode>x</deviceSecurityMode>'),
           '<deviceSecurityMode> is not a number: x')
    yield (_pool(b'<deviceSecurityMode>x</deviceSecurityMode>'),
           '<deviceSecurityMode> is not a number: x')
    yield (_dev(b'<connectionMonitorDuration>1e3</connectionMonitorDuration>'),
           '<connectionMonitorDuration> is not a number: 1e3')
    yield (_pool(b'<callManagerGroup><members><member priority="0"><callManager><name>a</name>'
                 b'<ports><ethernetPhonePort>20x</ethernetPhonePort></ports></callManager>'
                 b'</member></members></callManagerGroup>'),
           '<ethernetPhonePort> is not a number: 20x')
    yield (_pool(b'<srstInfo><ipAddr2>192.0.2.2</ipAddr2><port2>p</port2></srstInfo>'),
           '<port2> is not a number: p')
    yield (_pool(b'<srstInfo><certificate>AAAA</certificate></srstInfo>'),
           'SRST <certificate> is not a base64/PEM DER certificate')
    yield (_pool(b'<srstInfo><certificate>MAMCAQE=</certificate><certHash>AAAA</certHash>'
                 b'</srstInfo>'), 'SRST certificate does not match <certHash>')
    yield _dev(b'</\xff>'), UTF8
    yield b'<\xff></a>', UTF8                 # the open element's name, in the message
    yield b'<\xff/>', UTF8                    # the root's name
    yield _dev(b'<deviceSecurityMode>\xff</deviceSecurityMode>'), UTF8
    yield _pool(b'<srstInfo><name>caf\xc3</name></srstInfo>'), UTF8


def test_every_error_message_exact():
    for xml, want in exact_cases():
        for k, n in enumerate((40, 1024)):
            try:
                config.parse(io.BytesIO(xml) if isinstance(xml, bytes) else xml.stream(), n)
                got = 'accepted'
            except ConfigError as e:
                got = str(e)
            eq(got, want[k] if isinstance(want, tuple) else want, '%r at %d' % (xml, n))
