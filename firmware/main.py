# Load the board profile and persisted state, then start the agent.
from phone import events, platform
from phone.agent import Agent

try:
    import asyncio
except ImportError:
    import uasyncio as asyncio


def start(duration_ms=None):
    try:
        profile = platform.load_profile()
    except platform.ProfileError as e:
        events.emit('profile_error', error=str(e))
        return
    agent = Agent(platform.Platform(profile))
    try:
        asyncio.run(agent.run(duration_ms))
    except KeyboardInterrupt:
        events.emit('stopped', reason='interrupted')


start()
