# The agent's state machine (its states: phone.states):
#   BOOT -> PROVISION -> PRIMARY (+ standby TLS to SRST) -> FALLBACK (registered to SRST,
#   probing the primary) -> REHOME -> PRIMARY.
# What depends on the board is in one of two halves, loaded on that kind of board only:
# phone.standby (a standby TLS session to the SRST router, TLS probes in FALLBACK) and
# phone.limited (a `limited` profile, no PSRAM: room for one Mbed TLS session; no standby,
# the SRST session is opened at failover after the primary's is closed, and in FALLBACK the
# primary is watched with plain TCP connects; docs/failover.md).
# BOOT and PROVISION run before this module is imported (main.py, phone.provision), so the
# provisioning code can leave the heap before the TLS links need it; the Agent starts from
# their result (a provision.Provisioned) and reports BOOT/PROVISION as done.
# All state lives in the Agent object, so several agents can share one interpreter (fleets).
# Every transition emits a `state` event; the host measures its figures from the events.
# The agent speaks no protocol itself: its links do (phone.link and a protocol's half, chosen
# by signalling(); the contract between them: docs/signalling.md).
import asyncio
import gc
import time

from phone import drop
from phone import events as _events
from phone import link as _link
from phone.settings import Settings
from phone.states import BOOT, FALLBACK, PRIMARY, PROVISION, REHOME, TRYING, jitter


# LED colours per state (boards with an LED): green primary, amber SRST, blue trying.
_LED = {PRIMARY: (0, 40, 0), FALLBACK: (40, 20, 0), REHOME: (40, 20, 0),
        TRYING: (0, 0, 40), PROVISION: (0, 0, 40), BOOT: (0, 0, 40)}


class Agent:
    def __init__(self, platform, prov, events=None, settings=None):
        self.platform = platform
        self.prov = prov                    # provision.Provisioned
        self.events = events if events is not None else _events.default
        self.cfg = settings if settings is not None else Settings()
        self.state = PROVISION              # BOOT and PROVISION happened before (main.py)
        self.running = False
        self.link_class = signalling(prov)  # the links' class: the phone's protocol
        self.primary = None                 # link to the call manager we use
        self.srst = None                    # link to the SRST router (standby or registered)
        self._wake = asyncio.Event()        # serve loop: a link went down, a reset came
        self._kick = asyncio.Event()        # standby keeper: time to look again
        self._probe = None
        self._reset_kind = 0
        self._tasks = []
        self._reg = None                    # what the phone registers as (the link class's)
        self._reg_at = None                 # ticks of the last registration (either link)
        self._sb_up = None                  # ticks the standby link last came up
        self._back = False                  # _address_back() was called
        self._no_addr = False               # the lease is lost, no address yet (phone.lease)
        self._limited = bool(platform.profile.get('limited'))
        self._rh_fails = 0                  # limited: re-homes in a row that failed
        self._lim = None                    # limited: phone.limited, loaded at the first failover
        self._sb = None                     # other boards: phone.standby (its standby half)
        self._trying = None                 # the primary link a registration is opening
        self._refresh = False               # TFTP answers again: restart at the re-home
        self._watch = None                  # phone.tftpwatch after a boot from the store
        self._stable = False                # a restart in place of a re-home (not delayed)
        # Booted from the store (TFTP silent or unreachable): the WAN is likely down, and the
        # first registration races the SRST router (phone.bootrace).
        self._race = bool(getattr(prov, 'offline', False)) and prov.srst is not None
        if not self._limited:
            from phone import standby
            self._sb = standby

    # -- events and state ----------------------------------------------------------------
    def set_state(self, state, **why):
        if state != self.state:
            old = self.state
            self.state = state
            self.events.emit('state', state=state, prev=old, **why)
            self.platform.led(_LED.get(state, (0, 0, 0)))

    # -- what the links tell their owner (docs/signalling.md) -----------------------------
    def link_down(self, link, reason):
        self._wake.set()
        self._kick.set()

    def reset_requested(self, link, kind):
        # Only a server the phone is registered with may restart it: a Reset on a standby
        # session or a probe (a server we merely watch) would let it reboot the phone at will.
        if link.mode != _link.REGISTERED:
            self.events.emit('reset_ignored', link=link.role, kind=kind, mode=link.mode)
            return
        self._reset_kind = kind
        self._wake.set()

    async def _sleep_or_wake(self, ms, ev=None, cond=None):
        """Sleep `ms`; end early only when `cond()` holds (looked at whenever `ev` is set) or
        the agent stops or restarts. A wake event left set by something already dealt with
        (the link_down of a link that failed while being made) cannot cut a backoff short: the
        event only says "look again", the condition decides."""
        ev = ev or self._wake
        end = time.ticks_add(time.ticks_ms(), ms)
        while self.running and not self._reset_kind and (cond is None or not cond()):
            left = time.ticks_diff(end, time.ticks_ms())
            if left <= 0:
                return
            ev.clear()
            try:
                await asyncio.wait_for_ms(ev.wait(), left)
            except asyncio.TimeoutError:
                return
            except MemoryError:
                # No heap for the wait's task: sleep out the rest unwoken (sleep_ms allocates
                # nothing). A backoff that raised instead, in a handler that backs off, would
                # retry at once: a storm at the moment the heap is tightest.
                await asyncio.sleep_ms(left)
                return

    def _address_back(self):
        """The address is back (phone.lease): a TRYING backoff ends now."""
        self._back = True
        self._no_addr = False
        self._wake.set()

    async def _refreshing(self):
        """Re-home time after a boot from the store: TFTP is asked now (phone.tftpwatch);
        if it answers, the phone restarts instead of re-homing, and provisioning brings what
        TFTP serves."""
        if self._watch is not None and not self._refresh:
            await self._watch.ask(self)
        if self._refresh:
            self._reset_kind = 'tftp'
            self._stable = True     # the re-home's own wait: no restart_delayed on top
        return self._refresh

    def _backed_off(self):
        b, self._back = self._back, False
        return b

    def _grow(self, delay):
        return min(delay * 2, self.cfg.retry_max_ms)

    # -- main ----------------------------------------------------------------------------
    async def run(self):
        """Serve until stop(); a Reset from a server restarts the board (apply-config too:
        the new configuration is read by the provisioning at the next boot)."""
        self.running = True
        t_start = time.ticks_ms()
        prov = self.prov
        self._reg = self.link_class.registration(self)
        if prov.srst is None:
            self.events.emit('standby_disabled', reason=prov.srst_why)
        elif self._limited:
            self.events.emit('standby_disabled', reason='limited board: one TLS session',
                             fallback='SRST session opened at failover (pinned)')
        gc.collect()
        self.events.emit('agent_start', heap_free=gc.mem_free(), heap_used=gc.mem_alloc(),
                         limited=self._limited)
        if not self._limited:
            self._tasks.append(asyncio.create_task(self._sb.keeper(self)))
        if getattr(prov, 'lease', None):
            self._tasks.append(asyncio.create_task(self._keep_lease(prov.lease)))
        if getattr(prov, 'offline', False):
            from phone import tftpwatch
            if prov.tftp[0]:
                self._watch = tftpwatch
                self._tasks.append(asyncio.create_task(tftpwatch.watch(self)))
        try:
            await self._serve()
        finally:
            for t in self._tasks:
                t.cancel()
            self._tasks = []
            await self._close_all()
        if self._reset_kind:
            # A server that sends Reset at every registration would reboot the phone in a
            # loop as fast as it boots: a restart comes at least retry_max_ms after start.
            up = time.ticks_diff(time.ticks_ms(), t_start)
            if up < self.cfg.retry_max_ms and not self._stable:
                self.events.emit('restart_delayed', kind=self._reset_kind,
                                 ms=self.cfg.retry_max_ms - up)
                await asyncio.sleep_ms(self.cfg.retry_max_ms - up)
            self.events.emit('restarting', kind=self._reset_kind)
            self.platform.reset()

    async def _serve(self):
        delay = self.cfg.retry_min_ms
        while self.running and not self._reset_kind:
            try:
                delay = await self._serve_step(delay)
            except MemoryError as e:
                # A link that could not even be made: report it, keep serving, try again.
                gc.collect()
                self.events.emit('out_of_memory', where='serve', reason=str(e),
                                 heap_free=gc.mem_free())
                await self._sleep_or_wake(jitter(delay))
                delay = self._grow(delay)
            except Exception as e:
                # Anything else is a bug or a case nobody foresaw: never the end of the agent.
                # Report it, start again from no link at all (the state says so), back off.
                self.events.emit('agent_error', where='serve', reason=_link.why(e),
                                 retry_ms=delay)
                await self._recover()
                await self._sleep_or_wake(jitter(delay))
                delay = self._grow(delay)

    async def _recover(self):
        links = (self.primary, self.srst, self._probe)
        self.primary = self.srst = self._probe = None
        for l in links:
            if l is not None:
                try:
                    await l.close('agent error')
                except Exception:
                    pass
        self.set_state(TRYING, reason='agent error')

    async def _serve_step(self, delay):
        p = self.primary
        if p is not None and self.state == PRIMARY:
            if p.mode == _link.REGISTERED:
                await self._sleep_or_wake(60000, cond=lambda: p.mode != _link.REGISTERED)
            # Lost, even if it went before this loop ever saw it registered; not a failover
            # when the address went (phone.lease took the links down: nothing can be reached).
            if (p.mode != _link.REGISTERED and self.running and not self._reset_kind
                    and not self._no_addr):
                await self._failover(p.reason)
            return delay
        if self.srst is not None and self.srst.mode == _link.REGISTERED:
            if self._limited:
                if self._lim is None:
                    # Not before it is needed: in PRIMARY its 2.3 KB are the DHCP renewal's.
                    from phone import limited
                    self._lim = limited
                if await self._lim.watch_primary(self) and not await self._refreshing():
                    await self._lim.rehome(self)
            elif await self._sb.monitor_primary(self) and not await self._refreshing():
                await self._sb.rehome(self)
            return delay
        # Neither registered. Without an address (the lease lost, phone.lease asking for a new
        # one) no server can be reached: wait for it rather than try links that cannot work
        # (and leave the heap to the DHCP exchange; a board without PSRAM has no room for both).
        if self._no_addr:
            self.set_state(TRYING)
            self.events.emit('retrying', retry_ms=self.cfg.retry_max_ms, reason='no address')
            await self._sleep_or_wake(self.cfg.retry_max_ms, cond=lambda: not self._no_addr)
            return delay
        # The backoff starts again after a registration that held; one
        # that a server dropped at once (closed right after RegisterAck, say) is waited out
        # like a failure, or such a server would get a registration loop.
        if self._reg_at is not None:
            held = time.ticks_diff(time.ticks_ms(), self._reg_at)
            self._reg_at = None
            if held >= self.cfg.retry_max_ms:
                delay = self.cfg.retry_min_ms
            else:
                self.set_state(TRYING)
                self.events.emit('retrying', retry_ms=delay,
                                 reason='registration lost after %d ms' % held)
                await self._sleep_or_wake(jitter(delay), cond=self._backed_off)
                delay = self._grow(delay)
                if not self.running or self._reset_kind:
                    return delay
        if self._race:
            self._race = False
            if self._sb is not None:
                from phone import bootrace
                try:
                    if await bootrace.run(self):
                        return delay
                finally:
                    bootrace = None
                    drop('bootrace')
        # Try the call managers, then the SRST router.
        if await self._register_primary():
            gc.collect()
            return delay
        if self.prov.srst is not None and await self._register_srst('no call manager reachable'):
            return delay
        self.set_state(TRYING)
        self.events.emit('retrying', retry_ms=delay)
        await self._sleep_or_wake(jitter(delay), cond=self._backed_off)
        return self._grow(delay)

    # -- primary -------------------------------------------------------------------------
    async def _register_primary(self, over=None):
        """Register with the first call manager that answers. `over`: an open link to use."""
        for name, host, port, anchor in self.prov.call_managers:
            if anchor is None and self.prov.secure:
                # Never plain text when the config says secure.
                self.events.emit('cm_untrusted', cm=name, reason='no certificate for it in the trust list')
                continue
            link = over
            if link is None:
                link = self.link_class(self, 'primary', host, port, anchor, name)
            self._trying = link
            try:
                t0 = time.ticks_ms()
                ack = await link.register(self._reg)    # opens a new link: Register first
            except _link.LinkError as e:
                self._trying = None
                self.events.emit('register_failed', link='primary', cm=name, host=host, port=port,
                                 reason=str(e))
                await link.close('register failed')
                if self._limited:
                    gc.collect()            # a connect cut short leaves its socket to the GC
                if over is not None:
                    return False
                continue
            except BaseException:
                # MemoryError (a re-home in a full heap), a cancel: the link is no one's, but
                # its reader and keepalive tasks would keep it and its TLS session alive,
                # registered, and every probe after it would fail for want of that heap.
                self._trying = None
                await link.close('register failed')
                raise
            self._trying = None
            self.primary = link
            self._reg_at = time.ticks_ms()
            self.events.emit('registered', link='primary', cm=name, host=host, port=port,
                             keepalive_s=ack[0], secondary_keepalive_s=ack[1],
                             ms=time.ticks_diff(time.ticks_ms(), t0))
            if self.srst is not None and self.srst.mode == _link.STANDBY:
                self.srst.standby(link.secondary_keepalive_ms)
            self.set_state(PRIMARY)
            self._kick.set()                # the standby keeper may start now
            return True
        return False

    # -- failover ------------------------------------------------------------------------
    async def _failover(self, reason):
        t0 = time.ticks_ms()
        if self._limited:
            self.events.emit('primary_lost', reason=reason,
                             then='close it, then TLS to the SRST router (one TLS session)')
        else:
            self.events.emit('primary_lost', reason=reason)
        await self.primary.close('lost')
        # Dropped, not only closed: the dead link's table and event are heap the re-home needs.
        self.primary = None
        if self.prov.srst is None:
            self.events.emit('no_fallback', reason=self.prov.srst_why)
            self.set_state(TRYING, reason='primary lost')
            return
        if not await self._register_srst(reason, t0):
            self.set_state(TRYING)

    async def _register_srst(self, reason, t0=None):
        t0 = time.ticks_ms() if t0 is None else t0
        over_standby = self.srst is not None and self.srst.mode == _link.STANDBY
        if not over_standby:
            host, port, anchor = self.prov.srst
            if self.srst is not None:
                await self.srst.close('replaced')
            self.srst = self.link_class(self, 'srst', host, port, anchor)
        t1 = time.ticks_ms()
        try:
            ack = await self.srst.register(self._reg)   # a new link: Register first
        except _link.LinkError as e:
            self.events.emit('register_failed', link='srst', host=self.srst.host,
                             port=self.srst.port, reason=str(e))
            await self.srst.close('register failed')
            if self._limited:
                gc.collect()            # a connect cut short leaves its socket to the GC
            return False
        now = time.ticks_ms()
        self._reg_at = now
        self._sb_up = None                  # the standby session is a registration now
        self.events.emit('registered', link='srst', host=self.srst.host, port=self.srst.port,
                         over_standby=over_standby, keepalive_s=ack[0],
                         register_ms=time.ticks_diff(now, t1),
                         failover_ms=time.ticks_diff(now, t0), reason=reason)
        self.set_state(FALLBACK)
        return True

    async def _keep_lease(self, st):
        """A lease the agent got itself: renewed, rebound, or given up (phone.lease). The
        module is loaded for one step and dropped while the next one is awaited: between
        renewals the agent holds the keeper's state (plain values) and this timer only."""
        while True:
            k = None
            try:
                from phone import lease
                k = lease.Keeper(self.platform, st, self.events, self.cfg, self._address_lost,
                                 self._address_back)
                ms = await k.step()
                st = k.state()
            except MemoryError as e:        # the module itself did not fit
                ms = self.cfg.retry_max_ms
                gc.collect()
                try:                        # the report may not fit either: the keeper goes on
                    self.events.emit('dhcp_keeper_failed', reason=repr(e), retry_ms=ms,
                                     heap_free=gc.mem_free())
                except MemoryError:
                    pass
            finally:
                k = lease = None
                drop('lease')
            if ms is None:
                return
            await asyncio.sleep_ms(ms)

    async def _address_lost(self, reason):
        """The DHCP lease is gone (phone.lease): no link may go on using the address. The
        serve loop then finds nothing registered and retries from TRYING with its backoff;
        phone.lease wakes it when the address is back."""
        for l in (self.primary, self.srst, self._probe):
            if l is not None:
                await l.close(reason)
        # Dropped, not only closed: their buffers and streams are heap the DISCOVER needs.
        self.primary = self.srst = self._probe = None
        self._no_addr = True
        self.set_state(TRYING, reason=reason)
        self._wake.set()

    async def _close_all(self):
        for l in (self.primary, self.srst, self._probe):
            if l is not None:
                await l.close('shutdown')

    def stop(self):
        self.running = False
        self._wake.set()
        self._kick.set()


# -- the signalling seam ------------------------------------------------------------------
def signalling(prov):
    """The link class for the phone's protocol (docs/signalling.md): the one place the agent
    meets a protocol: SIP when the provisioned config is a SIP phone's (prov.sip), else SCCP.
    Only the chosen protocol's modules are loaded."""
    if getattr(prov, 'sip', None):
        from phone.siplink import SipLink
        return SipLink
    from phone.sccplink import SccpLink
    return SccpLink


# -- after provisioning: the agent under its supervisor -----------------------------------
def main(plat, prov, cfg):
    """phone.boot's last step, once provisioning is unloaded. This module is loaded before
    the TLS contexts, and so is the protocol's link (signalling()): their code lies below the
    contexts and the heap above stays in one piece for the sessions (loaded after them, the
    whole story needed more heap: docs/decisions.md, "Heap after issues 11 and 12")."""
    signalling(prov)
    _link.contexts(prov, shared=bool(plat.profile.get('limited')))  # ~3 KB blocks first
    from phone import clock     # the protocol's link loaded it
    clock.after_provisioning(prov, _events.default)
    supervise(lambda: Agent(plat, prov, settings=cfg), _events.default, cfg,
              watchdog(plat.profile))


# -- the supervisor ------------------------------------------------------------------------
def supervise(make, ev, cfg, wdt=None):
    """Run the agent `make()` returns until it ends normally (stop, or a Reset, which
    restarts the board). Anything escaping it is an event `agent_crashed` and a new agent
    after a backoff (retry_min_ms doubling to retry_max_ms; back to retry_min_ms after an
    agent that ran retry_max_ms). `wdt`: a machine.WDT, fed while an agent runs and
    between runs, so only a wedged interpreter lets it reset the board."""
    delay = cfg.retry_min_ms
    while True:
        t0 = time.ticks_ms()
        try:
            asyncio.run(_guarded(make(), wdt))
            return
        except KeyboardInterrupt:
            ev.emit('stopped', reason='interrupted')
            return
        except Exception as e:      # MemoryError included; SystemExit (a reset) goes through
            if time.ticks_diff(time.ticks_ms(), t0) >= cfg.retry_max_ms:
                delay = cfg.retry_min_ms
            gc.collect()
            ev.emit('agent_crashed', where='agent', reason=_events.why(e), restart_ms=delay,
                    heap_free=gc.mem_free())
        asyncio.new_event_loop()    # drop the dead agent's tasks
        gc.collect()
        _pause(delay, wdt)
        delay = min(delay * 2, cfg.retry_max_ms)


async def _guarded(agent, wdt):
    feeder = asyncio.create_task(_feed(wdt)) if wdt is not None else None
    try:
        await agent.run()
    finally:
        if feeder is not None:
            feeder.cancel()


async def _feed(wdt):
    while True:
        wdt.feed()
        await asyncio.sleep_ms(_FEED_MS)


def _pause(ms, wdt):
    end = time.ticks_add(time.ticks_ms(), ms)
    while True:
        if wdt is not None:
            wdt.feed()
        left = time.ticks_diff(end, time.ticks_ms())
        if left <= 0:
            return
        time.sleep_ms(min(left, _FEED_MS))


_FEED_MS = 1000


def watchdog(profile):
    """The hardware watchdog on a board (profile "watchdog_ms", default 120 s, 0: off);
    None on the unix port. Once armed it cannot be stopped: a host tool that interrupts the
    agent (deploy) has that long before the board resets."""
    from phone.platform import IS_UNIX
    ms = profile.get('watchdog_ms', 120000)
    if IS_UNIX or not ms:
        return None
    try:
        from machine import WDT
        wdt = WDT(timeout=ms)
    except Exception as e:          # no WDT on this port, or a timeout it refuses
        _events.emit('watchdog_off', reason=_events.why(e))
        return None
    _events.emit('watchdog_on', timeout_ms=ms)
    return wdt
