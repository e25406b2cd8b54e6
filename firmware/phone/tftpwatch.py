# After a boot from the store (no TFTP answer: phone.provision), the agent watches for TFTP
# to answer again: now and then (its backoff, jittered and announced) one read request for
# the phone's configuration file to each TFTP server, the transfer ended at its first answer
# with an ERROR. Any answer from a server (data, an OACK, even "file not found") means TFTP is
# back, and the phone restarts so that provisioning fetches, verifies and applies what TFTP
# serves now: as a phone applies a new configuration, by restarting (docs/decisions.md). In
# FALLBACK the restart waits for the re-home (the WAN stable for connectionMonitorDuration)
# and takes its place. Loaded by the Agent only after such a boot; `self` is that Agent.
import asyncio
import socket

from micropython import const

from phone.events import why
from phone.states import FALLBACK, REHOME, jitter

_POLL_MS = const(50)
_EAGAIN = (11, 110)


async def watch(self):
    servers, port = self.prov.tftp
    if not servers:
        return
    delay = self.cfg.retry_min_ms
    while self.running and not self._reset_kind and not self._refresh:
        # A heap too full for a report or a request costs that try, never the watch: a watch
        # that ended would leave a phone booted from its store on the old configuration.
        try:
            self.events.emit('tftp_watch', file=_name(self), servers=servers, retry_ms=delay)
        except MemoryError:
            pass
        await asyncio.sleep_ms(jitter(delay))
        try:
            if self._refresh or await ask(self):
                return
        except Exception as e:
            try:
                self.events.emit('agent_error', where='tftp_watch', reason=why(e),
                                 retry_ms=delay)
            except MemoryError:
                pass
        delay = self._grow(delay)


async def ask(self):
    """One read request to each TFTP server now (the watch's, and the agent's at the re-home
    decision, so that a re-home after a boot from the store never waits for the watch's
    backoff). True when one answered: `_refresh` is set, and outside FALLBACK the phone
    restarts at once."""
    servers, port = self.prov.tftp
    name = _name(self)
    rrq = b'\x00\x01' + name.encode() + b'\x00octet\x00'
    for srv in servers:
        if await _answers(srv, port, rrq, self.cfg.tftp_timeout_ms):
            self.events.emit('tftp_back', server=srv, file=name,
                             then='restart at the re-home' if self.state in (FALLBACK, REHOME)
                             else 'restart now')
            self._refresh = True
            if self.state not in (FALLBACK, REHOME):
                self._reset_kind = 'tftp'
                self._wake.set()
            return True
    return False


def _name(self):
    return self.platform.device_name() + ('.cnf.xml.sgn' if self.prov.secure else '.cnf.xml')


async def _answers(server, port, rrq, timeout_ms):
    """True when `server` answers a read request within timeout_ms (its transfer is then
    ended with an ERROR); False on silence or an ICMP error."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setblocking(False)
        try:
            s.setsockopt(0, 11, 1)      # IP_RECVERR (Linux): an ICMP error reaches recvfrom
        except OSError:
            pass
        dest = socket.getaddrinfo(server, port)[0][-1]
        s.sendto(rrq, dest)
        waited = 0
        while waited < timeout_ms:
            try:
                data, peer = s.recvfrom(600)
            except OSError as e:
                if e.args and e.args[0] in _EAGAIN:
                    await asyncio.sleep_ms(_POLL_MS)
                    waited += _POLL_MS
                    continue
                return False            # ICMP: not there yet
            if len(data) >= 4:
                try:
                    s.sendto(b'\x00\x05\x00\x00\x00', peer)    # ERROR 0: we stop here
                except OSError:
                    pass
                return True
        return False
    except OSError:
        return False
    finally:
        s.close()
