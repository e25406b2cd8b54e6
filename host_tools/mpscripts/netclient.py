# Runs the firmware's DHCP and TFTP clients on the MicroPython unix port (host tests, lab).
#   micropython netclient.py ARGS.json     (or the JSON itself, when shorter than 250 bytes:
#   the unix port makes each argv string a qstr, and a longer one aborts the interpreter)
#   ARGS.json: {"op": "dhcp", "mac": "02:00:5e:10:00:01", ...}
# Prints the clients' events as JSON lines, then one "result" event:
#   {"t":..,"ev":"result","ok":true,"lease":{...}} or {"ok":false,"error":...,"code":...}
# ops:
#   dhcp       full exchange          (mac, dhcp: {Client keyword arguments}, total_ms)
#   inform     DHCPINFORM from "ip"   (mac, ip, dhcp, total_ms)
#   tftp       fetch "files" from "servers" into "out_dir" (tftp: {Client keyword arguments})
#   provision  dhcp, put the lease on interface "dev" (ip addr/route), then tftp from the
#              lease's server list
# Keyword dicts are passed straight to phone.dhcp.Client / phone.tftp.Client.
import gc
import json
import os
import sys

from phone import dhcp, events, tftp


def _mac(text):
    h = ''.join(c for c in text if c in '0123456789abcdefABCDEF')
    return bytes(int(h[i:i + 2], 16) for i in range(0, 12, 2))


def _prefix_len(mask):
    return sum(bin(int(x)).count('1') for x in (mask or '255.255.255.0').split('.'))


def apply_lease(dev, lease):
    # What the platform does on the unix port; done here so the script needs no profile.
    os.system('ip addr add %s/%d dev %s' % (lease.ip, _prefix_len(lease.mask), dev))


_STATS = ('server', 'file', 'bytes', 'blocks', 'retransmits', 'timeouts', 'reacks', 'dups', 'ooo',
          'ms', 'blksize', 'windowsize', 'tsize', 'negotiated', 'attempt')


def fetch_all(a, ev, servers):
    kw = a.get('tftp', {})
    c = tftp.Client(events=ev, **kw)
    out = []
    for name in a['files']:
        path = a['out_dir'] + '/' + name
        with open(path, 'wb') as f:
            st = c.fetch(servers, name, f)
        out.append(dict((k, getattr(st, k)) for k in _STATS))
    return out


def main():
    arg = sys.argv[1]
    if arg.startswith('{'):
        a = json.loads(arg)
    else:
        with open(arg) as f:
            a = json.load(f)
    ev = events.default
    op = a['op']
    try:
        if op in ('dhcp', 'provision'):
            lease = dhcp.Client(_mac(a['mac']), ev, **a.get('dhcp', {})).acquire(
                a.get('total_ms', dhcp.TOTAL_MS))
            result = {'lease': lease.as_dict()}
            if op == 'provision':
                apply_lease(a['dev'], lease)
                result['transfers'] = fetch_all(a, ev, lease.tftp_servers)
        elif op == 'inform':
            lease = dhcp.Client(_mac(a['mac']), ev, **a.get('dhcp', {})).inform(
                a['ip'], a.get('total_ms', dhcp.TOTAL_MS))
            result = {'lease': lease.as_dict()}
        elif op == 'tftp':
            result = {'transfers': fetch_all(a, ev, a['servers'])}
        else:
            raise ValueError('unknown op %r' % op)
    except (dhcp.DhcpError, tftp.TftpError) as e:
        gc.collect()
        ev.emit('result', ok=False, error=str(e), kind=type(e).__name__,
                code=getattr(e, 'code', None), tried=getattr(e, 'tried', None),
                heap_free=gc.mem_free())
        return
    gc.collect()
    result['heap_free'] = gc.mem_free()
    ev.emit('result', ok=True, **result)


main()
