# Runs phone.agent under MicroPython against lab servers for tests/host/test_agent_survives.py:
#   agent_run.py CM_PORT CM_DER CM_CN SRST_PORT|- SRST_DER SRST_CN CERT_DER KEY_DER SECONDS SETTINGS_JSON
# Real TLS (the phone's own certificate, one pinned anchor per server). Prints the agent's
# events, then "ALIVE <state>" if the agent was still running after SECONDS, or
# "DIED <exception>" if it ended.
import sys
import json
import asyncio
from phone.agent import Agent
from phone.events import Events
from phone.platform import Platform, parse_mac
from phone.provision import Provisioned
from phone.settings import Settings


def rd(p):
    with open(p, 'rb') as f:
        return f.read()


async def main():
    cm_port, cm_der, cm_cn, srst_port, srst_der, srst_cn, cert, key, secs, st = sys.argv[1:11]
    p = Provisioned()
    p.ip = '127.0.0.1'
    p.mac = parse_mac('001122AABBCC')
    p.call_managers = [('cucm1', '127.0.0.1', int(cm_port), (rd(cm_der), cm_cn))]
    p.srst = None if srst_port == '-' else ('127.0.0.1', int(srst_port), (rd(srst_der), srst_cn))
    p.srst_why = 'none in this test' if p.srst is None else None
    p.identity = (rd(cert), rd(key))
    p.monitor_s = 60
    p.secure = True
    plat = Platform({'name': 'lab', 'chip': 'unix', 'network': {'kind': 'HOST'}}, mac=p.mac)
    a = Agent(plat, p, events=Events(), settings=Settings(json.loads(st)))
    t = asyncio.create_task(a.run())
    end = int(float(secs) * 1000)
    waited = 0
    while waited < end and not t.done():
        await asyncio.sleep_ms(100)
        waited += 100
    if t.done():
        try:
            await t
            print('DIED returned')
        except Exception as e:
            print('DIED %s: %s' % (type(e).__name__, e))
        return
    print('ALIVE', a.state)
    a.stop()
    try:
        await asyncio.wait_for_ms(t, 3000)
    except Exception:
        pass


asyncio.run(main())
