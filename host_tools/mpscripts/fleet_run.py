# Fleet runner (MicroPython unix port): many phone agents in one interpreter.
#   micropython -X heapsize=N fleet_run.py SPECDIR
# run from a folder holding the firmware (phone/*.mpy), MICROPYPATH=.frozen:<that folder>.
#
# A fleet skips DHCP and TFTP provisioning: each agent's provision.Provisioned is built here
# from files the host wrote (host_tools/fleet/spec.py):
#   SPECDIR/fleet.json   {"ip", "cm": [name, host, port, cn], "srst": [host, port, cn] | null,
#                         "monitor_s", "settings": {...}, "phones": [MAC, ...], "device_type",
#                         "ramp_ms", "max_s", "fast_poll", "max_connecting", "gc_every_ms",
#                         "sip": true for a SIP fleet}
#   SPECDIR/sip.json     a SIP fleet: {"stack": {<sipStack> timers}, "lines": {MAC: [user,
#                         password]}}: each agent's Provisioned.sip (the agent picks SipLink)
#   SPECDIR/cm.der, srst.der          the trust anchors (call manager, SRST router)
#   SPECDIR/<MAC>.der, <MAC>.key      each phone's certificate and private key (DER)
#
# Every agent has its own Events(tag=MAC): its lines carry "ph" so the host can separate them.
# The runner's own lines carry no "ph": fleet_clock (the tick origin of every "t" here),
# fleet_heap (gc.mem_alloc per phase: base, identities, agents, links_up, fallback, and
# VmRSS), fleet_start, agent_crashed, fleet_final (per phone), fleet_done.
# fleet_loop (every 5 s: asyncio's I/O waits, see fleet_tune.fast_poll).
# The file SPECDIR/stop (polled every 200 ms), max_s or SIGINT ends the run: fleet_final lines
# (each phone's state and links), the final heap, fleet_done.
# fleet_tune.py (beside this script) adapts the unix port to hundreds of agents per process.
import gc
import json
import os
import sys
import time

T0 = time.ticks_ms()


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def _rss_kb():
    try:
        with open('/proc/self/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


class Restart(Exception):
    pass


def main():
    spec_dir = sys.argv[1]
    with open(spec_dir + '/fleet.json') as f:
        spec = json.load(f)
    import asyncio
    from phone import events as _events
    from phone import link as _link
    from phone.agent import Agent, FALLBACK, PRIMARY
    from phone.platform import Platform, parse_mac
    from phone.provision import Provisioned
    from phone.settings import Settings

    out = _events.Events(t0=T0)
    out.emit('fleet_clock', ticks=T0, phones=len(spec['phones']))
    # What running hundreds of agents in one unix-port process needs (fleet_tune.py)
    import fleet_tune
    # room for every descriptor the agents will poll (3 sessions a phone, at most) before any
    # TLS socket is registered: the unix port's poll mishandles a move of that array
    fleet_tune.reserve_pollfds(3 * len(spec['phones']) + 64)
    if spec.get('fast_poll', True):
        # The link's own reader stays on (phone.link.READ_UNDER_TLS): it waits on the TCP
        # socket under TLS, so a sweep is one poll(2) over descriptors, not an ioctl and a
        # poll(2) per TLS socket
        fleet_tune.fast_poll()
    if spec.get('gc_every_ms', 1000):
        import phone.agent
        phone.agent.gc = fleet_tune.ThrottledGc(spec.get('gc_every_ms', 1000))
    if spec.get('max_connecting'):
        fleet_tune.limit_connects(asyncio, _link, spec['max_connecting'],
                                  spec.get('max_wait_ms', 120000))
    stats = fleet_tune.STATS

    def heap(phase, n):
        gc.collect()
        out.emit('fleet_heap', phase=phase, alloc=gc.mem_alloc(), free=gc.mem_free(), agents=n,
                 rss_kb=_rss_kb())

    class FleetPlatform(Platform):
        # A server's Reset restarts this phone only, not the interpreter its neighbours share.
        def reset(self):
            raise Restart()

    heap('base', 0)
    # Shared by every agent of this process (read-only for them): settings, profile, anchors,
    # the call-manager list. Per phone: identity, Platform, Provisioned, Events, Agent, links.
    settings = Settings(spec.get('settings'))
    profile = {'name': 'fleet', 'chip': 'unix', 'network': {'kind': 'HOST'},
               'device_type': spec.get('device_type', 307)}
    name, host, port, cn = spec['cm']
    cms = [(name, host, port, (_read(spec_dir + '/cm.der'), cn))]
    srst = None
    if spec.get('srst'):
        host, port, cn = spec['srst']
        srst = (host, port, (_read(spec_dir + '/srst.der'), cn))
    macs = spec['phones']
    sip = None
    if spec.get('sip'):
        with open(spec_dir + '/sip.json') as f:
            sip = json.load(f)
    ids = []
    for mac in macs:
        ids.append((_read('%s/%s.der' % (spec_dir, mac)), _read('%s/%s.key' % (spec_dir, mac))))
    heap('identities', 0)

    def provisioned(mac, identity):
        p = Provisioned()
        p.ip = spec['ip']
        p.mac = parse_mac(mac)
        p.call_managers = cms
        p.srst = srst
        p.srst_why = None if srst else 'no SRST router in the fleet spec'
        p.identity = identity
        p.monitor_s = spec.get('monitor_s', 120)
        p.secure = True
        if sip is not None:         # as phone.config reads a SIP phone's cnf.xml
            user, password = sip['lines'][mac]
            s = dict(sip['stack'])
            s['lines'] = [{'name': user, 'authName': user, 'authPassword': password}]
            p.sip = s
        return p

    agents = []
    for i in range(len(macs)):
        mac = macs[i]
        plat = FleetPlatform(profile, mac=parse_mac(mac))
        ev = _events.Events(tag=mac, t0=T0)
        agents.append(Agent(plat, provisioned(mac, ids[i]), events=ev, settings=settings))
    ids = sip = None
    heap('agents', len(agents))

    async def guard(i):
        # One phone's life: a crash is an event, a Reset restarts it with a fresh Agent.
        while True:
            a = agents[i]
            try:
                await a.run()
                return
            except Restart:
                a.events.emit('fleet_restart')
                agents[i] = Agent(a.platform, a.prov, events=a.events, settings=settings)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                a.events.emit('agent_crashed', reason='%s: %s' % (type(e).__name__, e))
                return

    def stop_asked():
        try:
            os.stat(spec_dir + '/stop')
            return True
        except OSError:
            return False

    async def watch(deadline_ms):
        tstat = [time.ticks_ms()]
        done = {}
        n = len(agents)
        while time.ticks_diff(deadline_ms, time.ticks_ms()) > 0:
            if stop_asked():
                return 'stop'
            up = fb = 0
            for a in agents:
                if a.state == PRIMARY and a.srst is not None and a.srst.mode == _link.STANDBY:
                    up += 1
                elif a.state == FALLBACK:
                    fb += 1
            if up == n and 'links_up' not in done:
                done['links_up'] = 1
                heap('links_up', n)
            if fb == n and 'fallback' not in done:
                done['fallback'] = 1
                heap('fallback', n)
            await asyncio.sleep_ms(200)
            if stats and time.ticks_diff(time.ticks_ms(), tstat[0]) >= 5000:
                tstat[0] = time.ticks_ms()
                out.emit('fleet_loop', calls=stats[0], sweeps=stats[1], sweep_ms=stats[2] // 1000,
                         sleeps=stats[3], sleep_ms=stats[4] // 1000)
                stats[:] = [0, 0, 0, 0, 0]
        return 'deadline'

    def finals():
        for a in agents:
            p, s = a.primary, a.srst
            a.events.emit('fleet_final', state=a.state,
                          primary=p.mode if p is not None else None,
                          srst=s.mode if s is not None else None,
                          reason=(s.reason if s is not None and s.reason else
                                  p.reason if p is not None else None))

    async def run_all():
        ramp = spec.get('ramp_ms', 0)
        out.emit('fleet_start', agents=len(agents), ramp_ms=ramp)
        tasks = []
        for i in range(len(agents)):
            tasks.append(asyncio.create_task(guard(i)))
            if ramp:
                await asyncio.sleep_ms(ramp)
        why = await watch(time.ticks_add(time.ticks_ms(), int(spec.get('max_s', 600) * 1000)))
        finals()
        for a in agents:
            a.stop()
        for t in tasks:
            try:
                await asyncio.wait_for_ms(t, 2000)
            except Exception:
                pass
        return why

    try:
        why = asyncio.run(run_all())
    except KeyboardInterrupt:
        why = 'interrupted'
        finals()
    heap('final', len(agents))
    out.emit('fleet_done', why=why)


try:
    main()
except Exception as e:
    sys.print_exception(e)
    print('{"t":%d,"ev":"fleet_error","reason":%s}' % (
        time.ticks_diff(time.ticks_ms(), T0), json.dumps('%s: %s' % (type(e).__name__, e))))
    sys.exit(1)
