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
        cfg = settings.load(board=profile.get('settings'))
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
    from phone.store import BASE, Store, StoreError
    try:
        store = Store(profile.get('store', BASE))
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
        events.emit('agent_crashed', where='boot', reason=events.why(e), restart_ms=ms)
        time.sleep_ms(ms)
        _reboot()
        return
    if r is None:
        return
    plat, cfg, prov = r
    r = None
    # The rest (TLS contexts, clock, the agent under its supervisor and the watchdog) lives
    # in phone.agent: provisioning never needs it, and it loads the agent's code before the
    # TLS contexts (agent.main).
    from phone import agent
    agent.main(plat, prov, cfg)


def _reboot():
    if platform.IS_UNIX:
        sys.exit(3)             # the virtual board restarts the interpreter
    import machine
    machine.reset()
