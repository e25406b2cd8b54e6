# Runs on the MicroPython unix port (the board's interpreter), with firmware/ on MICROPYPATH,
# so `phonelab ctl dump|verify` exercise the firmware's own phone.ctl, not a CPython copy.
#   ctltool.py dump FILE
#   ctltool.py verify FILE [--sast CERT]... [--trust TLV]... [--cert CERT]... [--now Y,M,D,h,m,s]
# Prints one JSON object. Exit 0 valid (or dumped), 1 invalid, 2 usage error.
import json
import sys
import time

from phone import ctl, pkcs1, x509


def _hex(b):
    from binascii import hexlify
    return hexlify(bytes(b)).decode() if b is not None else None


def _read(path):
    with open(path, 'rb') as f:
        return f.read()


def header_info(tl):
    d = {'path': tl.path, 'kind': tl.kind, 'size': tl.size,
         'version': '%d.%d' % tl.version, 'header_length': tl.header_len,
         'signer_name': tl.signer_name, 'ca_name': tl.ca_name, 'serial': _hex(tl.serial),
         'hash': pkcs1.NAMES.get(tl.hash_code), 'hash_code': tl.hash_code,
         'modulus_index': tl.modulus_index, 'signature_length': tl.sig_len,
         'filename': tl.filename, 'timestamp': tl.timestamp}
    if tl.signer_version:
        d['signer_version'] = '%d.%d' % tl.signer_version
    if tl.kind == 'SGN':
        d['payload_offset'] = tl.payload_off
        d['payload_length'] = tl.payload_len
    return d


def record_info(tl, r):
    d = {'index': r.index, 'role': r.role, 'role_name': ctl.ROLE_NAMES.get(r.role, str(r.role)),
         'subject': r.subject, 'issuer': r.issuer, 'serial': _hex(r.serial), 'cn': r.cn,
         'dns': r.dns, 'ip': r.ip, 'cert_length': r.cert_len, 'offset': r.offset}
    if r.cert_len:
        c = x509.parse(tl.cert(r))
        d['not_before'] = '%04d-%02d-%02dT%02d:%02d:%02dZ' % c.not_before
        d['not_after'] = '%04d-%02d-%02dT%02d:%02d:%02dZ' % c.not_after
        d['key'] = c.key_type
        d['sig_alg'] = c.sig_oid
    return d


def dump(path):
    if path.endswith('.sgn'):
        return header_info(ctl.parse_sgn(path))
    tl = ctl.parse(path)
    d = header_info(tl)
    d['records'] = [record_info(tl, r) for r in tl.records]
    return d


def verify(path, opts):
    now = opts.get('now')
    t0 = time.ticks_ms()
    if path.endswith('.sgn'):
        signers = [ctl.load_trust(t, opts['sast'] or None, now) for t in opts['trust']]
        signers += opts['cert']
        tl = ctl.verify_sgn(path, signers, now)
    else:
        tl = ctl.load_trust(path, opts['sast'] or None, now)
    d = {'valid': True, 'ms': time.ticks_diff(time.ticks_ms(), t0)}
    d.update(header_info(tl))
    d['signer_cn'] = tl.signer_cert.cn if tl.signer_cert else None
    if tl.kind != 'SGN':
        d['tofu'] = tl.tofu
        d['records'] = len(tl.records)
    return d


def main(argv):
    if len(argv) < 2 or argv[0] not in ('dump', 'verify'):
        print(json.dumps({'error': 'usage: ctltool.py dump|verify FILE [options]'}))
        return 2
    action, path = argv[0], argv[1]
    opts = {'sast': [], 'trust': [], 'cert': [], 'now': None}
    i = 2
    while i < len(argv):
        key = argv[i][2:]
        if key not in opts or i + 1 >= len(argv):
            print(json.dumps({'error': 'bad option %s' % argv[i]}))
            return 2
        val = argv[i + 1]
        if key == 'now':
            opts['now'] = tuple([int(x) for x in val.split(',')])
        elif key == 'trust':
            opts['trust'].append(val)
        else:
            opts[key].append(_read(val))
        i += 2
    try:
        out = dump(path) if action == 'dump' else verify(path, opts)
    except ctl.CtlError as ex:
        print(json.dumps({'valid': False, 'path': path, 'reason': str(ex)}))
        return 1
    except OSError as ex:
        print(json.dumps({'valid': False, 'path': path, 'reason': 'cannot read: %s' % ex}))
        return 1
    print(json.dumps(out))
    return 0


sys.exit(main(sys.argv[1:]))
