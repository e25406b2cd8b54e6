# The boot sequence behind main.py: board profile, settings and persisted state; provision;
# then the agent. Provisioning runs first and its modules are unloaded before the agent's TLS
# links start, so the two never need the heap at the same time (see phone/provision.py).
# Lives in the package (deployed as .mpy) so main.py, which boards run as source, stays tiny.
import gc
import sys
import time

from phone import events, platform, settings


def provision():
    """BOOT and PROVISION: (platform, settings, Provisioned), with the provisioning modules
    already unloaded; None when the board cannot start (event 'halted')."""
    events.emit('state', state='BOOT', prev=None)
    try:
        profile = platform.load_profile()
        cfg = settings.load()
        plat = platform.Platform(profile)
    except (platform.ProfileError, ValueError) as e:
        events.emit('halted', reason=str(e))
        return None
    gc.collect()
    events.emit('boot', board=profile['name'], chip=profile['chip'], device=plat.device_name(),
                mpy=list(sys.implementation.version[:3]), heap_free=gc.mem_free(),
                heap_used=gc.mem_alloc())
    events.emit('state', state='PROVISION', prev='BOOT')
    from phone import provision
    from phone.store import Store, StoreError
    try:
        store = Store(profile.get('store', '/state'))
    except StoreError as e:
        events.emit('halted', reason=str(e))
        return None
    prov = provision.run(plat, store, cfg, events.default, profile.get('tftp_port', 69))
    del store, Store, StoreError
    provision.unload()
    return plat, cfg, prov


def main():
    try:
        r = provision()
    except Exception as e:
        # Nothing to restart in place yet: say why, wait, and restart the board.
        ms = settings.DEFAULTS['retry_max_ms']
        events.emit('agent_crashed', where='boot', reason=_why(e), restart_ms=ms)
        _pause(ms, None)
        _reboot()
        return
    if r is None:
        return
    plat, cfg, prov = r
    r = None
    from phone import link
    link.contexts(prov)         # its ~3 KB blocks first, while the freed heap is in one piece
    link.clock.after_provisioning(prov, events.default)     # phone.clock: link imported it
    from phone.agent import Agent
    supervise(lambda: Agent(plat, prov, settings=cfg), events.default, cfg,
              _watchdog(plat.profile))


def supervise(make, ev, cfg, wdt=None):
    """Run the agent `make()` returns until it ends normally (stop, or a Reset, which
    restarts the board). Anything escaping it is an event `agent_crashed` and a new agent
    after a backoff (retry_min_ms doubling to retry_max_ms; back to retry_min_ms after an
    agent that ran retry_max_ms). `wdt`: a machine.WDT, fed while an agent runs and
    between runs, so only a wedged interpreter lets it reset the board."""
    import asyncio
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
            ev.emit('agent_crashed', where='agent', reason=_why(e), restart_ms=delay,
                    heap_free=gc.mem_free())
        asyncio.new_event_loop()    # drop the dead agent's tasks
        gc.collect()
        _pause(delay, wdt)
        delay = min(delay * 2, cfg.retry_max_ms)


async def _guarded(agent, wdt):
    import asyncio
    feeder = asyncio.create_task(_feed(wdt)) if wdt is not None else None
    try:
        await agent.run()
    finally:
        if feeder is not None:
            feeder.cancel()


async def _feed(wdt):
    import asyncio
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


def _watchdog(profile):
    """The hardware watchdog on a board (profile "watchdog_ms", default 120 s, 0: off);
    None on the unix port. Once armed it cannot be stopped: a host tool that interrupts the
    agent (deploy) has that long before the board resets."""
    ms = profile.get('watchdog_ms', 120000)
    if platform.IS_UNIX or not ms:
        return None
    try:
        from machine import WDT
        wdt = WDT(timeout=ms)
    except Exception as e:          # no WDT on this port, or a timeout it refuses
        events.emit('watchdog_off', reason=_why(e))
        return None
    events.emit('watchdog_on', timeout_ms=ms)
    return wdt


def _why(e):
    s = str(e).strip()
    return '%s: %s' % (type(e).__name__, s) if s else type(e).__name__


def _reboot():
    if platform.IS_UNIX:
        sys.exit(3)             # the virtual board restarts the interpreter
    import machine
    machine.reset()
