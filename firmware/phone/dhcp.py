# Getting a lease (RFC 2131/2132): the full DISCOVER/OFFER/REQUEST/ACK exchange, on the unix
# port and on boards alike (on an ESP32 the platform's own lwIP client is stopped first: it
# holds UDP 68 and keeps options 150/66 to itself), and DHCPINFORM from an address already
# held (lab tools). What a Cisco phone needs from DHCP is its address and the TFTP server
# list: option 150 > option 66 > siaddr > the configured server. It asks as a real Cisco
# phone does (docs/network.md): option 60 the phone's vendor class (many servers give option
# 150 only to it), 12 its SEP<MAC> name, 61 its client id, 55 a phone's request list.
#
# The messages, the one send/wait/retransmit loop and the RENEWING/REBINDING REQUEST are
# phone.dhcpcore: keeping a lease (phone.lease) loads that module alone.
from phone import dhcpcore as _c
from phone.dhcpcore import (ACK, DISCOVER, INFORM, NAK, OFFER, REQUEST, TOTAL_MS, DhcpError,
                            Ignored, addr_ip, ip_bytes, ip_str, sockaddr, terms,
                            text66, ticks_add, ticks_diff, ticks_ms)


def is_dotted_quad(s):
    try:
        ip_bytes(s)
        return True
    except ValueError:
        return False


def ip_list(v):
    return [ip_str(v, i) for i in range(0, len(v), 4)]


def _jitter(span):
    try:
        import random
        return random.getrandbits(16) % (2 * span + 1) - span
    except ImportError:
        return 0


def resolve_name(name):
    """Default resolver for option 66 names: the platform's getaddrinfo."""
    return addr_ip(sockaddr(name, 69))


# ---------------------------------------------------------------------------------------
# The lease and the TFTP server preference
# ---------------------------------------------------------------------------------------
class Lease:
    def __init__(self):
        self.ip = None
        self.mask = None
        self.router = None
        self.routers = []
        self.dns = []
        self.ntp = []               # option 42 (for phone.clock's SNTP)
        self.domain = None
        self.tftp_servers = []
        self.opt150 = []
        self.opt66 = None
        self.siaddr = None
        self.lease_s = None
        self.t1_s = None
        self.t2_s = None
        self.server_id = None
        self.kind = 'ack'           # 'ack' (full exchange) or 'inform'
        self.acquired_ms = 0
        self.unknown = []

    def as_dict(self):
        return {'ip': self.ip, 'mask': self.mask, 'router': self.router, 'dns': self.dns,
                'domain': self.domain, 'tftp_servers': self.tftp_servers, 'opt150': self.opt150,
                'opt66': self.opt66, 'siaddr': self.siaddr, 'lease_s': self.lease_s,
                't1_s': self.t1_s, 't2_s': self.t2_s, 'server_id': self.server_id,
                'kind': self.kind}


def tftp_order(opt150, opt66, siaddr, configured=None, resolve=None, events=None):
    """The TFTP servers to try, best first, without duplicates:
    option 150 (in its order) > option 66 (name resolved, or dotted quad) > siaddr >
    the configured server(s). Names that do not resolve are left out (event)."""
    out = []

    def add(ip):
        if ip and ip != '0.0.0.0' and ip not in out:
            out.append(ip)

    for ip in opt150 or ():
        add(ip)
    if opt66:
        # One name or address; tolerate a comma/space separated list (seen in the field).
        for name in opt66.replace(',', ' ').split():
            if is_dotted_quad(name):
                add(name)
                continue
            try:
                add((resolve or resolve_name)(name))
            except Exception as e:  # OSError, IndexError, anything a resolver raises
                if events is not None:
                    events.emit('dhcp_resolve_failed', name=name, error=repr(e))
    add(siaddr)
    if configured:
        for ip in ([configured] if isinstance(configured, str) else configured):
            add(ip)
    return out


def lease_from(reply, configured=None, resolve=None, events=None, fallback=None, ip=None):
    """Build a Lease from an ACK. `fallback` (the OFFER) supplies the TFTP options when the
    ACK lacks them; `ip` overrides yiaddr (INFORM answers carry none)."""
    o = reply.opts
    L = Lease()
    L.ip = ip or reply.yiaddr
    L.acquired_ms = ticks_ms()
    if 1 in o:
        L.mask = ip_str(o[1])
    if 3 in o:
        L.routers = ip_list(o[3])
        L.router = L.routers[0]
    if 6 in o:
        L.dns = ip_list(o[6])
    v = o.get(42)
    if v and not len(v) % 4:    # a malformed list costs only the clock its source
        L.ntp = ip_list(v)
    if 15 in o:
        try:
            L.domain = o[15].decode().rstrip('\x00')
        except UnicodeError:    # not text: no domain
            pass
    L.lease_s, L.t1_s, L.t2_s, L.server_id = terms(reply)
    L.unknown = reply.unknown
    src = reply
    if 150 not in o and 66 not in o and fallback is not None:
        src = fallback
    if 150 in src.opts:
        L.opt150 = ip_list(src.opts[150])
    if 66 in src.opts:
        L.opt66 = text66(src.opts[66])
    sia = src.siaddr if src.siaddr != '0.0.0.0' else None
    L.siaddr = sia
    L.tftp_servers = tftp_order(L.opt150, L.opt66, sia, configured, resolve, events)
    return L


class Client(_c.Client):
    """phone.dhcpcore.Client with the exchanges that get a lease: acquire() (DISCOVER ->
    OFFER -> REQUEST -> ACK) and inform() (DHCPINFORM from an address already held)."""

    def _backoff(self, attempt):
        ms = self.first_ms << attempt if attempt < 16 else self.max_ms
        if ms > self.max_ms:
            ms = self.max_ms
        return ms + _jitter(self.first_ms // 8)

    def run(self, g):
        """Drive an exchange generator with blocking waits; returns its result."""
        try:
            ms = next(g)
            while True:
                ms = g.send(self.readable(ms))
        except StopIteration as e:
            return e.value

    # -- the full exchange ------------------------------------------------------------
    def acquire(self, total_ms=TOTAL_MS):
        """DISCOVER -> OFFER -> REQUEST -> ACK. Returns a Lease; raises DhcpError when no
        server gave one within the bounds (tries per stage, rounds, total_ms)."""
        self._setup()
        try:
            lease = self.run(self.acquiring(total_ms))
        finally:
            self.close()
        if lease is None:
            raise DhcpError('no DHCP lease after %d ms (%d sent, %d ignored)'
                            % (ticks_diff(ticks_ms(), self.t_start), self.stats['sent'],
                               self.stats['ignored']))
        return lease

    def acquiring(self, total_ms=TOTAL_MS):
        """acquire() as an exchange generator on an open socket (_setup()): the Lease, or
        None (event dhcp_failed)."""
        self.t_start = ticks_ms()
        deadline = ticks_add(self.t_start, total_ms)
        for rnd in range(self.rounds):
            offer = yield from self._select(rnd, deadline)
            if offer is None:
                break
            ack = yield from self._request(offer, deadline)
            if ack is None:
                continue
            lease = lease_from(ack, self.tftp_server, self.resolve, self.events, fallback=offer)
            lease.acquired_ms = self.t_sent
            self.events.emit('dhcp_lease', ip=lease.ip, mask=lease.mask, router=lease.router,
                             dns=lease.dns, tftp_servers=lease.tftp_servers,
                             lease_s=lease.lease_s, server=lease.server_id,
                             ms=ticks_diff(ticks_ms(), self.t_start))
            return lease
        self.events.emit('dhcp_failed', reason='no lease', stats=self.stats,
                         ms=ticks_diff(ticks_ms(), self.t_start))
        return None

    def _select(self, rnd, deadline):
        self.xid = _c.new_xid()

        def accept(r):
            if r.mtype != OFFER:
                return '%s while selecting' % r.type_name()
            if r.yiaddr == '0.0.0.0':
                return 'offer without an address'
            if 54 not in r.opts:
                return 'offer without a server identifier'
            return None

        def note(attempt, wait):
            self.events.emit('dhcp_discover', xid=self.xid, attempt=attempt, round=rnd + 1,
                             wait_ms=wait)

        r = yield from self._exchange(DISCOVER, 'selecting', accept, deadline, self.tries,
                                      self._backoff, note)
        if r is not None:
            self.events.emit('dhcp_offer', ip=r.yiaddr, server=r.server_id(),
                             siaddr=r.siaddr, has150=150 in r.opts, has66=66 in r.opts)
        return r

    def _request(self, offer, deadline):
        sid = offer.server_id()
        ip = offer.yiaddr

        def accept(r):
            if r.mtype not in (ACK, NAK):
                return '%s while requesting' % r.type_name()
            if r.server_id() not in (None, sid):
                return 'answer from server %s, we requested from %s' % (r.server_id(), sid)
            if r.mtype == ACK and r.yiaddr != ip:
                return 'ACK for %s, we requested %s' % (r.yiaddr, ip)
            return None

        def note(attempt, wait):
            self.events.emit('dhcp_request', ip=ip, server=sid, attempt=attempt, wait_ms=wait)

        r = yield from self._exchange(REQUEST, 'requesting', accept, deadline, self.tries,
                                      self._backoff, note, requested=ip, server_id=sid)
        if r is not None and r.mtype == NAK:
            self._nak(r, sid)
            return None
        return r

    # -- INFORM -------------------------------------------------------------------------
    def inform(self, ip, total_ms=TOTAL_MS):
        """DHCPINFORM from an address the platform already has: returns a Lease (kind
        'inform', lease_s None) with the options, or raises DhcpError."""
        self.t_start = ticks_ms()
        deadline = ticks_add(self.t_start, total_ms)
        self.xid = _c.new_xid()
        self._setup()

        def accept(r):
            if r.mtype != ACK:
                return '%s after INFORM' % r.type_name()
            return None

        def note(attempt, wait):
            self.events.emit('dhcp_inform', ip=ip, attempt=attempt, wait_ms=wait)

        try:
            r = self.run(self._exchange(INFORM, 'inform', accept, deadline, self.tries,
                                        self._backoff, note, ciaddr=ip, broadcast=False))
        finally:
            self.close()
        if r is None:
            self.events.emit('dhcp_failed', reason='no answer to INFORM', stats=self.stats)
            raise DhcpError('no answer to DHCPINFORM from %s' % ip)
        lease = lease_from(r, self.tftp_server, self.resolve, self.events, ip=ip)
        lease.kind = 'inform'
        lease.lease_s = None
        self.events.emit('dhcp_lease', ip=ip, mask=lease.mask, router=lease.router,
                         dns=lease.dns, tftp_servers=lease.tftp_servers,
                         server=lease.server_id, kind='inform',
                         ms=ticks_diff(ticks_ms(), self.t_start))
        return lease


def acquire(mac, events=None, total_ms=TOTAL_MS, **kw):
    """Full exchange with a fresh Client: returns a Lease or raises DhcpError."""
    return Client(mac, events, **kw).acquire(total_ms)


def inform(ip, mac, events=None, total_ms=TOTAL_MS, **kw):
    """DHCPINFORM from `ip`: returns a Lease (kind 'inform') or raises DhcpError."""
    return Client(mac, events, **kw).inform(ip, total_ms)
