# The agent's state machine. Later issues fill in PROVISION, PRIMARY, FALLBACK and REHOME;
# this skeleton boots, reports the board and runs a bounded idle loop with a heartbeat.
import gc
import sys

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio

from micropython import const

from phone import events as _events

BOOT = 'BOOT'
PROVISION = 'PROVISION'
PRIMARY = 'PRIMARY'
FALLBACK = 'FALLBACK'
REHOME = 'REHOME'
IDLE = 'IDLE'

_HEARTBEAT_MS = const(5000)


class Agent:
    """One phone. All state lives here (no module globals) so several agents can share an
    interpreter."""

    def __init__(self, platform, events=None, settings=None):
        self.platform = platform
        self.events = events if events is not None else _events.default
        self.settings = settings or {}
        self.state = None
        self.running = False

    def set_state(self, state, **why):
        if state != self.state:
            old = self.state
            self.state = state
            self.events.emit('state', state=state, prev=old, **why)

    async def run(self, duration_ms=None):
        self.running = True
        self.set_state(BOOT)
        p = self.platform.profile
        gc.collect()
        self.events.emit('boot', board=p['name'], chip=p['chip'], device=self.platform.device_name(),
                         mpy=sys.implementation.version[:3], heap_free=gc.mem_free(),
                         heap_used=gc.mem_alloc())
        self.set_state(IDLE, reason='skeleton')
        hb = self.settings.get('heartbeat_ms', _HEARTBEAT_MS)
        waited = 0
        while self.running and (duration_ms is None or waited < duration_ms):
            await asyncio.sleep_ms(hb)
            waited += hb
            self.events.emit('heartbeat', state=self.state, heap_free=gc.mem_free())
        self.running = False

    def stop(self):
        self.running = False
