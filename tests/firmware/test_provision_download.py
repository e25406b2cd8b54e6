# Provisioning's downloads (phone.provision.Provisioner.download): which file names it asks
# which TFTP server for. A server that answers "file not found" for the per-device name
# (CTLSEP<MAC>.tlv, SEP<MAC>.cnf.xml) is asked for the next name before the next server is
# tried: the next server is there for when the first does not answer.
import phone
from fakestore import Store
from fwtest import CaptureOut, eq
from phone import provision
from phone.events import Events
from phone.settings import Settings


class TftpError(Exception):
    down = False

    def __init__(self, code):
        super().__init__(code, 'File not found' if code == 1 else 'timeout')
        self.code = code
        self.local = False


class Servers:
    """Stands in for phone.tftp: a Client whose servers hold the given file names."""

    def __init__(self, files):
        self.files = files              # server -> names it has (None: it does not answer)
        self.asked = []
        self.TftpError = TftpError
        outer = self

        class Client:
            def __init__(self, **kw):
                self.answer_ms = kw.get('answer_ms')
                self.heard = False

            def fetch(self, servers, name, sink, next_on_not_found=True):
                first = None
                for s in servers:
                    outer.asked.append((s, name))
                    have = outer.files[s]
                    if have is not None and name in have:
                        sink.write(name.encode())
                        return
                    e = TftpError(None if have is None else 1)
                    first = first or (e if e.code is not None else None)
                    if e.code == 1 and not next_on_not_found:
                        break
                raise first or e

        self.Client = Client


WANTED = (('CTL', ('CTLSEP001122AABBCC.tlv', 'CTLFile.tlv'), 'ctl.tlv'),)


def download(files):
    fake = Servers(files)
    phone.tftp = fake                   # what `from phone import tftp` finds; dropped after
    p = provision.Provisioner(Store(keep=True), Settings())
    out = p.download(Events(out=CaptureOut()), ['10.0.0.1', '10.0.0.2'], WANTED)
    return fake.asked, out


def test_not_found_asks_the_same_server_for_the_next_name():
    asked, out = download({'10.0.0.1': ('CTLFile.tlv',), '10.0.0.2': ('CTLSEP001122AABBCC.tlv',)})
    eq(asked, [('10.0.0.1', 'CTLSEP001122AABBCC.tlv'), ('10.0.0.1', 'CTLFile.tlv')])
    eq(out[0][2], 'CTLFile.tlv')
    eq(out[0][1].data, b'CTLFile.tlv')


def test_the_last_name_is_asked_of_every_server():
    asked, out = download({'10.0.0.1': (), '10.0.0.2': ('CTLFile.tlv',)})
    eq(asked, [('10.0.0.1', 'CTLSEP001122AABBCC.tlv'), ('10.0.0.1', 'CTLFile.tlv'),
               ('10.0.0.2', 'CTLFile.tlv')])
    eq(out[0][2], 'CTLFile.tlv')


def test_a_silent_first_server_is_passed_for_the_next_one():
    asked, out = download({'10.0.0.1': None, '10.0.0.2': ('CTLSEP001122AABBCC.tlv',)})
    eq(asked, [('10.0.0.1', 'CTLSEP001122AABBCC.tlv'), ('10.0.0.2', 'CTLSEP001122AABBCC.tlv')])
    eq(out[0][2], 'CTLSEP001122AABBCC.tlv')
