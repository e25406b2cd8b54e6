# The agent's states and its retry jitter: what the state machine (phone.agent) shares with
# the half of it that depends on the board (phone.standby on a board with a standby TLS
# session, phone.limited on a board with room for one), so those import nothing from it.
#   BOOT -> PROVISION -> PRIMARY (+ standby TLS to SRST) -> FALLBACK (registered to SRST,
#   watching the primary) -> REHOME -> PRIMARY; TRYING while no server is reachable.
import time

BOOT = 'BOOT'
PROVISION = 'PROVISION'
PRIMARY = 'PRIMARY'
FALLBACK = 'FALLBACK'
REHOME = 'REHOME'
TRYING = 'TRYING'          # no server reachable yet: retrying with backoff


def jitter(ms):
    """`ms` plus up to an eighth more (never less than announced): phones that failed
    together (a router certificate re-issued) do not retry in step."""
    return ms + time.ticks_us() % (ms // 8 + 1)
