# heap: 96K
# SIP's wire format under MicroPython: the REGISTER as a Cisco SIP phone sends it
# (phone.sipreg), digest answers against the RFCs' own examples, and the parsing of what
# registrars send (phone.sip). Malformed input and framing: test_sip_bad.py.
from fwtest import eq, raises
from phone import sip, sipreg
from phone.sip import SipError

MAC = '00:11:22:AA:BB:CC'


def reg(**kw):
    args = dict(password='secret', device='SEP001122AABBCC', model='307')
    args.update(kw)
    return sipreg.Reg('1001', 'cucm.example', '192.0.2.50', 51234, MAC, **args)


def lines(data):
    text = data.decode()
    assert text.endswith('\r\n\r\n'), 'a blank line ends the headers'
    return text[:-4].split('\r\n')


def hexstr(s, n):
    return len(s) == n and all(c in '0123456789abcdef' for c in s)


def test_register_as_a_cisco_phone():
    r = reg()
    got = lines(r.register())
    eq(got[0], 'REGISTER sip:cucm.example SIP/2.0')
    via = got[1]
    assert via.startswith('Via: SIP/2.0/TLS 192.0.2.50:51234;branch=z9hG4bK'), via
    assert hexstr(via.split('branch=z9hG4bK')[1], 8), via
    frm = got[2]
    assert frm.startswith('From: <sip:1001@cucm.example>;tag=001122aabbcc'), frm
    tag = frm.split('tag=')[1]
    eq(len(tag), 33)          # MAC, 12 hex, '-', 8 hex: the Cisco form
    eq(tag[24], '-')
    eq(got[3], 'To: <sip:1001@cucm.example>')
    cid = got[4][len('Call-ID: '):]
    assert got[4].startswith('Call-ID: 001122aa-bbcc'), got[4]
    assert cid.endswith('@192.0.2.50'), cid
    eq([len(p) for p in cid.split('@')[0].split('-')], [8, 8, 8, 8])
    eq(got[5:8], ['Max-Forwards: 70', 'CSeq: 101 REGISTER', 'User-Agent: Cisco-CP7911G/9.4.2'])
    eq(got[8], 'Contact: <sip:1001@192.0.2.50:51234;transport=tls>'
               ';+sip.instance="<urn:uuid:00000000-0000-0000-0000-001122aabbcc>"'
               ';+u.sip!devicename.ccm.cisco.com="SEP001122AABBCC"'
               ';+u.sip!model.ccm.cisco.com="307"')
    eq(got[9:], ['Expires: 3600', 'Content-Length: 0'])


def test_register_keeps_its_dialog_and_counts():
    r = reg()
    first = sip.parse(r.register())
    r.port = 40000                      # a new TLS session: a new local port
    second = sip.parse(r.register())
    eq((first.method, first.uri, first.cseq, first.cseq_method),
       ('REGISTER', 'sip:cucm.example', 101, 'REGISTER'))
    eq(second.cseq, 102)
    eq(first.call_id, second.call_id)
    eq(first.from_, second.from_)
    assert first.branch != second.branch and second.branch.startswith('z9hG4bK')
    eq(len(second.vias), 1)
    assert '192.0.2.50:40000' in second.vias[0]
    eq(second.expires, 0 + 3600)
    # un-REGISTER
    un = r.register(0)
    assert b'\r\nExpires: 0\r\n' in un and b'cisco-keep-alive' not in un
    eq(sip.parse(un).cseq, 103)
    # Cisco's keepalive REGISTER to a backup (docs/protocols.md, "SIP")
    ka = r.register(keepalive=True)
    assert b';expires=0;cisco-keep-alive\r\n' in ka and b'\r\nExpires: 0\r\n' in ka
    # RFC 5626's reg-id, with Supported: outbound
    o = reg(reg_id=1, device=None, model=None, auth='u1001', ua='Cisco-CP8845/14.2.1')
    got = lines(o.register(600))
    assert 'Supported: outbound' in got
    assert 'User-Agent: Cisco-CP8845/14.2.1' in got
    eq([l for l in got if l.startswith('Contact:')],
       ['Contact: <sip:1001@192.0.2.50:51234;transport=tls>'
        ';+sip.instance="<urn:uuid:00000000-0000-0000-0000-001122aabbcc>";reg-id=1'])
    eq(got[-2], 'Expires: 600')
    with raises(SipError, match='MAC'):
        sipreg.Reg('1', 'd', '192.0.2.1', 1, '00:11:22')


# ---------------------------------------------------------------- digest

def ch(**kw):
    c = {'scheme': 'digest', 'proxy': False, 'realm': 'r', 'nonce': 'n', 'opaque': None,
         'algorithm': 'MD5', 'qop': None, 'stale': False}
    c.update(kw)
    return c


def test_digest_matches_the_rfc_examples():
    # RFC 2617 3.5 (MD5, qop=auth)
    c = ch(realm='testrealm@host.com', nonce='dcd98b7102dd2f0e8b11d0f600bfb0c093', qop='auth')
    eq(sipreg.digest(c, 'Mufasa', 'Circle Of Life', 'GET', '/dir/index.html', '0a4f113b', 1),
       '6629fae49393a05397450978507c4ef1')
    # RFC 7616 3.9.1 (the same request, SHA-256 and MD5)
    c = ch(realm='http-auth@example.org', nonce='7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v',
           qop='auth', opaque='FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS')
    cn = 'f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ'
    c['algorithm'] = 'SHA-256'
    eq(sipreg.digest(c, 'Mufasa', 'Circle of Life', 'GET', '/dir/index.html', cn, 1),
       '753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1')
    c['algorithm'] = 'MD5'
    eq(sipreg.digest(c, 'Mufasa', 'Circle of Life', 'GET', '/dir/index.html', cn, 1),
       '8ca523f5e9506fed4657c9700eebdbec')


def test_authorization_header():
    c = ch(realm='cucm.example', nonce='abc', qop='auth', opaque='op"q')
    h = sipreg.authorization(c, '1001', 'pw', 'REGISTER', 'sip:cucm.example', 'c0ffee', 2)
    want = sipreg.digest(c, '1001', 'pw', 'REGISTER', 'sip:cucm.example', 'c0ffee', 2)
    eq(h, 'Authorization: Digest username="1001",realm="cucm.example",nonce="abc",'
          'uri="sip:cucm.example",response="%s",algorithm=MD5,cnonce="c0ffee",'
          'nc=00000002,qop=auth,opaque="op\\"q"\r\n' % want)
    c = ch(proxy=True, algorithm='SHA-256')
    h = sipreg.authorization(c, 'u', 'p', 'REGISTER', 'sip:x')
    assert h.startswith('Proxy-Authorization: Digest username="u",realm="r",nonce="n",'), h
    assert 'cnonce' not in h and 'qop' not in h and 'nc=' not in h, h
    assert hexstr(h.split('response="')[1][:64], 64), h
    # a fresh cnonce when none is given
    c = ch(qop='auth')
    a = sipreg.authorization(c, 'u', 'p', 'REGISTER', 'sip:x')
    b = sipreg.authorization(c, 'u', 'p', 'REGISTER', 'sip:x')
    assert a != b and ',cnonce="' in a


def challenge(*values, status=401):
    name = 'Proxy-Authenticate' if status == 407 else 'WWW-Authenticate'
    text = ('SIP/2.0 %d Unauthorized\r\nVia: SIP/2.0/TLS 192.0.2.50:5061;branch=z9hG4bK1\r\n'
            'From: <sip:1001@d>;tag=1\r\nTo: <sip:1001@d>;tag=2\r\nCall-ID: c@h\r\n'
            'CSeq: 101 REGISTER\r\n' % status)
    for v in values:
        text += '%s: %s\r\n' % (name, v)
    return sip.parse((text + 'Content-Length: 0\r\n\r\n').encode())


def test_challenges_choose_the_first_supported():
    c, why = sipreg.challenge(challenge('Digest realm="d", nonce="n1", qop="auth,auth-int", '
                                        'algorithm=MD5, opaque="o1"'))
    eq((c['realm'], c['nonce'], c['qop'], c['algorithm'], c['opaque'], c['proxy'], why),
       ('d', 'n1', 'auth', 'MD5', 'o1', False, None))
    # RFC 8760: one header per algorithm, preferred first; the first we support wins
    c, _ = sipreg.challenge(challenge('Digest realm="d", nonce="a", algorithm=SHA-512-256',
                                      'Digest realm="d", nonce="b", algorithm=SHA-256, qop="auth"',
                                      'Digest realm="d", nonce="c", algorithm=MD5, qop="auth"'))
    eq((c['nonce'], c['algorithm']), ('b', 'SHA-256'))
    # several in one header (RFC 7235 4.1), spaces around '=', a stale one, auth-int only
    c, _ = sipreg.challenge(challenge('Basic realm="d", Digest realm = "d" ,nonce=x9,'
                                      'stale=TRUE, qop="auth-int", algorithm=sha-256-sess'))
    eq((c['nonce'], c['stale'], c['qop'], c['algorithm']), ('x9', True, 'auth-int', 'sha-256-sess'))
    c, _ = sipreg.challenge(challenge('Digest realm="d", nonce="n"', status=407))
    eq((c['proxy'], c['qop'], c['algorithm']), (True, None, 'MD5'))
    for value, why in (('Digest realm="d", nonce="n", algorithm=SHA-512-256', 'SHA-512-256'),
                       ('Basic realm="d"', 'basic'),
                       ('Digest realm="d", nonce="n", qop="auth-conf"', 'qop auth-conf'),
                       ('Digest realm="d", nonce="n", algorithm=MD5-sess', 'MD5-sess without qop'),
                       ('Digest realm="d"', 'Digest without realm or nonce'),
                       # a bare token is a scheme of its own (RFC 7235 2.1)
                       ('Digest realm="d", nonce', 'Digest without realm or nonce'),
                       ('Digest realm="d", nonce="n", algorithm=AKAv1-MD5', 'AKAv1-MD5')):
        eq(sipreg.challenge(challenge(value)), (None, why), value)
    eq(sipreg.challenge(challenge()), (None, 'none'))


def test_answering_a_challenge():
    r = reg()
    r.register()
    m = challenge('Digest realm="cucm.example", nonce="n1", qop="auth"')
    eq(r.answer(m), None)
    data = r.register()
    got = sip.parse(data)
    eq(got.cseq, 102)
    line = [l for l in lines(data) if l.startswith('Authorization:')][0]
    cn = line.split('cnonce="')[1].split('"')[0]
    want = sipreg.digest(r.challenge, '1001', 'secret', 'REGISTER', 'sip:cucm.example', cn, 1)
    assert 'response="%s"' % want in line and 'nc=00000001' in line, line
    # the same nonce answered and challenged again, not stale: the password is wrong
    eq(r.answer(m), '401: credentials for 1001 refused (realm cucm.example)')
    # stale: a new nonce, answered afresh
    eq(r.answer(challenge('Digest realm="cucm.example", nonce="n2", qop="auth", stale=true')), None)
    assert b'nc=00000001' in r.register() and b'nc=00000002' in r.register()
    # a refresh with the cached nonce, challenged again: answered (a nonce may age)
    eq(r.answer(challenge('Digest realm="cucm.example", nonce="n3", qop="auth"')), None)
    eq(r.answer(challenge('Digest realm="d", nonce="n", algorithm=SHA-512-256')),
       '401 without a challenge we support (SHA-512-256)')
    # auth is the digest user id
    a = reg(auth='SEP001122AABBCC')
    a.answer(m)
    assert b'username="SEP001122AABBCC"' in a.register()


# ---------------------------------------------------------------- parsing

# A registrar's 200 OK as Kamailio's registrar writes it (all bindings of the AOR).
OK = (b'SIP/2.0 200 OK\r\n'
      b'Via: SIP/2.0/TLS 192.0.2.50:51234;branch=z9hG4bK1a2b3c4d;received=198.51.100.7\r\n'
      b'From: <sip:1001@cucm.example>;tag=001122aabbcc0102030405-a1b2c3d4\r\n'
      b'To: <sip:1001@cucm.example>;tag=b27e1a1d33761e85846fc98f5f3a7e58.0a0b\r\n'
      b'Call-ID: 001122aa-bbcc0102-03040506-0708090a@192.0.2.50\r\n'
      b'CSeq: 102 REGISTER\r\n'
      b'Contact: <sip:1002@192.0.2.51:40001;transport=tls>;expires=1800;'
      b'+sip.instance="<urn:uuid:00000000-0000-0000-0000-001122aabbcd>", '
      b'<sip:1001@192.0.2.50:51234;transport=tls>;expires=3598;'
      b'+sip.instance="<urn:uuid:00000000-0000-0000-0000-001122AABBCC>"\r\n'
      b'Server: kamailio (5.6.3 (x86_64/linux))\r\n'
      b'Content-Length: 0\r\n\r\n')


def test_parse_a_registrars_200():
    m = sip.parse(OK, reg=reg())
    eq((m.status, m.reason, m.cseq, m.cseq_method, m.length), (200, 'OK', 102, 'REGISTER', 0))
    eq(m.branch, 'z9hG4bK1a2b3c4d')
    eq(m.call_id, '001122aa-bbcc0102-03040506-0708090a@192.0.2.50')
    eq((m.expires, m.granted), (None, 3598))     # ours, found by its instance
    eq(m.hlen, len(OK))
    # without a Reg, two bindings say nothing of ours: no grant
    eq(sip.parse(OK).granted, None)
    # matched by the URI when the registrar leaves the instance out
    r = reg()
    ok = OK.replace(b';+sip.instance="<urn:uuid:00000000-0000-0000-0000-001122AABBCC>"', b'')
    eq(sip.parse(ok, reg=r).granted, 3598)
    r.port = 9
    eq(sip.parse(ok, reg=r).granted, None)       # a binding of another session
    # CUCM's form: only ours, Expires beside it
    one = (b'SIP/2.0 200 OK\r\nVia: SIP/2.0/TCP 10.0.0.5:53006;branch=z9hG4bKd4\r\n'
           b'From: <sip:5678@10.0.0.1>;tag=a\r\nTo: <sip:5678@10.0.0.1>;tag=b\r\n'
           b'Call-ID: x@10.0.0.5\r\nCSeq: 11435 REGISTER\r\nExpires: 120\r\n'
           b'Contact: <sip:9e9e@10.0.0.5:53006;transport=tcp>;+sip.instance='
           b'"<urn:uuid:00000000-0000-0000-0000-0024142ddf24>"\r\nContent-Length: 0\r\n\r\n')
    m = sip.parse(one)
    eq((m.expires, m.granted), (120, 120))
    one = one.replace(b'transport=tcp>', b'transport=tcp>;expires=110')
    eq(sip.parse(one).granted, 110)


def test_compact_forms_case_folding_and_several_vias():
    msg = (b'SIP/2.0 200 OK\r\n'
           b'v: SIP/2.0/TLS 192.0.2.1:5061;branch=z9hG4bKtop,SIP/2.0/TLS 192.0.2.2;branch=x\r\n'
           b'VIA  :   SIP/2.0/TCP 192.0.2.3:5060;branch=z9hG4bK3\r\n'
           b'f: "Line \\"one\\", A" <sip:1001@d>;tag=1\r\n'
           b't:<sip:1001@d>\r\n'
           b'i: abc@d\r\n'
           b'cSeQ: 7    REGISTER\r\n'
           b'm: "Desk, 2" <sip:1001@192.0.2.50:51234;transport=tls>;EXPIRES=60\r\n'
           b'k: path, Outbound\r\n'
           b'o: check-sync;param=1\r\n'
           b'Flow-Timer: 115\r\n'
           b'x-unknown: whatever\xc3\xa9\r\n'
           b'l: 4\r\n\r\nbody')
    m = sip.parse(msg)
    eq(len(m.vias), 3)
    eq(m.vias[1], 'SIP/2.0/TLS 192.0.2.2;branch=x')
    eq(m.branch, 'z9hG4bKtop')
    eq(m.from_, '"Line \\"one\\", A" <sip:1001@d>;tag=1')
    eq((m.to, m.call_id, m.cseq, m.cseq_method), ('<sip:1001@d>', 'abc@d', 7, 'REGISTER'))
    eq((m.granted, m.outbound, m.event, m.flow_timer, m.length), (60, True, 'check-sync', 115, 4))


def test_folded_headers_and_lf_line_ends():
    msg = (b'SIP/2.0 401 Unauthorized\r\n'
           b'Via: SIP/2.0/TLS 192.0.2.50:51234\r\n'
           b'  ;branch=z9hG4bKfold\r\n'
           b'From: <sip:1001@d>;tag=1\r\nTo: <sip:1001@d>\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n'
           b'WWW-Authenticate: Digest realm="d",\r\n'
           b'\tnonce="n",\r\n'
           b'  qop="auth"\r\n'
           b'Content-Length: 0\r\n\r\n')
    m = sip.parse(msg)
    eq(m.branch, 'z9hG4bKfold')
    c, _ = sipreg.challenge(m)
    eq((c['realm'], c['nonce'], c['qop']), ('d', 'n', 'auth'))
    m = sip.parse(msg.replace(b'\r\n', b'\n'))
    eq((m.status, m.branch, m.hlen), (401, 'z9hG4bKfold', len(msg) - msg.count(b'\r\n')))
    # CR/LF before the start line is skipped (RFC 3261 7.5)
    eq(sip.parse(b'\r\n\r\n' + msg).status, 401)


def test_423_and_503():
    base = (b'Via: SIP/2.0/TLS h;branch=z9hG4bK1\r\nFrom: <sip:a@d>;tag=1\r\nTo: <sip:a@d>\r\n'
            b'Call-ID: c\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n')
    m = sip.parse(b'SIP/2.0 423 Interval Too Brief\r\n' + base + b'Min-Expires: 1800\r\n\r\n')
    eq((m.status, m.reason, m.min_expires), (423, 'Interval Too Brief', 1800))
    for value, want in ((b'120', 120), (b'120 (maintenance)', 120), (b'18000;duration=3600', 18000),
                        (b'5 (I\'m in a meeting) ;duration=60', 5), (b'  30  ', 30),
                        (b'99999999999', 0xFFFFFFFF)):
        m = sip.parse(b'SIP/2.0 503 Service Unavailable\r\n' + base + b'Retry-After: ' + value
                      + b'\r\n\r\n')
        eq((m.status, m.retry_after), (503, want), value)
    eq(sip.parse(b'SIP/2.0 503 Service Unavailable\r\n' + base + b'\r\n').retry_after, None)
    # a reason phrase may be empty or hold anything UTF-8
    eq(sip.parse(b'SIP/2.0 480 \r\n' + base + b'\r\n').reason, '')
    eq(sip.parse('SIP/2.0 603 Décliné\r\n'.encode() + base + b'\r\n').reason, 'Décliné')


def test_reply_to_a_request():
    notify = (b'NOTIFY sip:1001@192.0.2.50:51234;transport=tls SIP/2.0\r\n'
              b'Via: SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bKn1\r\n'
              b'Via: SIP/2.0/TLS 10.0.0.9:5061;branch=z9hG4bKn0\r\n'
              b'From: <sip:10.0.0.1>;tag=9\r\nTo: <sip:1001@192.0.2.50>\r\n'
              b'Call-ID: n@10.0.0.1\r\nCSeq: 101 NOTIFY\r\nEvent: check-sync\r\n'
              b'Content-Length: 0\r\n\r\n')
    m = sip.parse(notify)
    eq((m.status, m.method, m.uri, m.event), (0, 'NOTIFY', 'sip:1001@192.0.2.50:51234;transport=tls',
                                              'check-sync'))
    out = sip.reply(m, 200, 'OK', tag='t1')
    eq(out, b'SIP/2.0 200 OK\r\nVia: SIP/2.0/TLS 10.0.0.1:5061;branch=z9hG4bKn1\r\n'
            b'Via: SIP/2.0/TLS 10.0.0.9:5061;branch=z9hG4bKn0\r\n'
            b'From: <sip:10.0.0.1>;tag=9\r\nTo: <sip:1001@192.0.2.50>;tag=t1\r\n'
            b'Call-ID: n@10.0.0.1\r\nCSeq: 101 NOTIFY\r\nContent-Length: 0\r\n\r\n')
    back = sip.parse(out)
    eq((back.status, back.vias, back.cseq_method), (200, m.vias, 'NOTIFY'))
    # a To that has its tag keeps it
    m.to = '<sip:1001@192.0.2.50>;tag=old'
    assert b'To: <sip:1001@192.0.2.50>;tag=old\r\n' in sip.reply(m, 200, 'OK', tag='t1')
