# heap: 112K
# What the running agent keeps loaded (docs/decisions.md "Heap after issues 11 and 12"): the
# lease keeper (phone.lease) only for a step, phone.limited only on a limited board (from
# its first failover), phone.standby only on the others, the settings checks (phone.setcheck)
# only while settings are checked, the Register's builder (phone.sccpreg) only while the frame
# is built.
# The heap is 112K, not the harness's 96K: this module loads provisioning's module (for
# Provisioned) beside the agent, and the keeper's two loads of phone.dhcpcore then met a full
# heap depending on where the conservative GC found stale pointers (24.9 KB or 16.9 KB free
# after the keeper's start, for code that differed by 0.8 KB). What the agent needs is
# measured by tests/host/test_provision_heap.py and the faithful boards, not here.
import asyncio
import sys
import time

from fwtest import eq
from phone.agent import Agent
from phone.events import Events
from phone.platform import Platform
from phone.provision import Provisioned
from phone.settings import Settings


class _Null:
    def write(self, s):
        return len(s)


def _agent(profile=None):
    p = {'name': 't', 'chip': 'unix', 'network': {'kind': 'HOST'}}
    p.update(profile or {})
    log = []
    ev = Events(out=_Null())
    ev.listeners.append(lambda name, t, f: log.append((name, f)))
    return Agent(Platform(p, mac=b'\x02\x00\x00\x00\x00\x01'), Provisioned(), ev,
                 Settings()), log


def test_lease_keeper_is_not_resident_between_steps():
    a, log = _agent()
    # a 2-minute lease that started now: the first step says dhcp_bound and waits for T1
    st = ('192.0.2.10', '192.0.2.1', 120, None, None, time.ticks_ms())

    async def main():
        t = asyncio.create_task(a._keep_lease(st))
        await asyncio.sleep_ms(200)
        loaded = 'phone.lease' in sys.modules
        t.cancel()
        await asyncio.sleep_ms(10)
        return loaded

    eq(asyncio.run(main()), False, 'phone.lease loaded while waiting for T1')
    bound = [f for n, f in log if n == 'dhcp_bound']
    eq(len(bound), 1, 'dhcp_bound events')
    assert 59000 <= bound[0]['renew_in_ms'] <= 60000, bound


def test_keeper_state_goes_on_where_it_stopped():
    from phone import lease
    a, log = _agent()
    k = lease.Keeper(a.platform, ('192.0.2.10', '192.0.2.1', 0xFFFFFFFF, None, None, 0),
                     a.events, a.cfg, None, None)
    eq(asyncio.run(k.step()), None, 'infinite lease: nothing more to do')
    st = ('192.0.2.10', '192.0.2.1', 120, 30, 90, time.ticks_ms(), 3, None, True,
          (bytearray(8), bytearray(8)), 12000)
    k = lease.Keeper(a.platform, st, a.events, a.cfg, None, None)
    eq(k.state(), st)
    eq(k.renewals, 3)


def test_each_board_carries_its_own_half_only():
    # a full board: phone.standby (standby link, TLS probes), never phone.limited
    _agent()
    eq('phone.standby' in sys.modules, True, 'phone.standby on a full board')
    eq('phone.limited' in sys.modules, False, 'phone.limited loaded on a full board')
    from phone import drop
    drop('standby')
    # a limited board: never phone.standby; phone.limited only from its first failover
    a, _ = _agent({'limited': True})
    eq('phone.standby' in sys.modules, False, 'phone.standby loaded on a limited board')
    eq('phone.limited' in sys.modules, False, 'phone.limited loaded before a failover')


def test_settings_checks_are_dropped_after_checking():
    from phone import settings
    s = Settings({'retry_min_ms': 500})
    eq(s.retry_min_ms, 500)
    eq('phone.setcheck' in sys.modules, False, 'phone.setcheck left loaded')
    eq(hasattr(settings, 'check') or hasattr(settings, 'LIMITS'), False,
       'checks resident in phone.settings')


def test_register_builder_is_not_resident():
    # The Register is built once per agent run (SccpLink.registration); its builder,
    # phone.sccpreg, is dropped after: a board keeps the frame, not the code.
    a, _ = _agent()
    a.prov.ip = '192.0.2.10'
    a.prov.mac = b'\x02\x00\x00\x00\x00\x01'
    reg, opening = a.link_class.registration(a)
    eq(len(reg), 12 + 124, 'Register frame length (long form)')
    eq(reg[8:9], b'\x01', 'message id Register')
    # the registration dialogue's opening: IpPort, ButtonTemplateReq, SoftKeyTemplateReq,
    # SoftKeySetReq, ConfigStatReq
    eq(len(opening), 16 + 12 + 292 + 4 * 12, 'the dialogue opening')
    eq(opening[-4:-3], b'\x0c', 'message id ConfigStatReq, last')
    import phone
    eq('phone.sccpreg' in sys.modules, False, 'phone.sccpreg left loaded')
    eq(hasattr(phone, 'sccpreg'), False, 'phone.sccpreg left on the package')


def test_renewal_that_would_not_fit_is_not_begun():
    # An import cut short by MemoryError keeps part of itself for good: a renewal whose
    # phone.dhcpcore would not fit is put off (dhcp_keeper_failed) without loading anything.
    import sys
    from phone import lease
    a, log = _agent()
    st = ('192.0.2.10', '192.0.2.1', 120, None, None, time.ticks_ms() - 61000, 0, None, True,
          None, 10 ** 9)
    k = lease.Keeper(a.platform, st, a.events, a.cfg, None, None)
    eq(asyncio.run(k.step()), a.cfg.retry_max_ms, 'retry after')
    eq('phone.dhcpcore' in sys.modules, False, 'phone.dhcpcore loaded')
    failed = [f for n, f in log if n == 'dhcp_keeper_failed']
    eq(len(failed), 1, 'dhcp_keeper_failed events')
    assert 'a renewal needs' in failed[0]['reason'], failed
    eq(k.due, False, 'due after a put-off renewal')


def test_lease_keeper_outlives_a_report_that_finds_no_heap():
    # The keeper's step did not fit, and neither did its dhcp_keeper_failed event: the keeper
    # still waits retry_max_ms and tries again (ended, it would never renew the lease).
    from phone import lease

    class NoHeap:
        def __init__(self, *args):
            raise MemoryError('memory allocation failed, allocating 256 bytes')
    lease.Keeper = NoHeap
    a, log = _agent()

    def emit(ev, **f):
        if ev == 'dhcp_keeper_failed':
            raise MemoryError('memory allocation failed, allocating 96 bytes')
        log.append((ev, f))
    a.events.emit = emit
    st = ('192.0.2.10', '192.0.2.1', 120, None, None, time.ticks_ms())

    async def main():
        t = asyncio.create_task(a._keep_lease(st))
        await asyncio.sleep_ms(200)
        alive = not t.done()
        t.cancel()
        await asyncio.sleep_ms(10)
        return alive

    eq(asyncio.run(main()), True, 'lease keeper still running')
    eq('phone.lease' in sys.modules, False, 'phone.lease left loaded')
