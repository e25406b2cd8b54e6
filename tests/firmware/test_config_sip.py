# heap: 256K
# phone.config and phone.provcfg under MicroPython: a SIP phone's SEP<MAC>.cnf.xml (issue 15).
# The configs here are built in the test from the element names public Cisco SIP configs use
# (docs/protocols.md, "The configuration file"): Wazo's Cisco SIP template,
# wazo-platform/wazo-provd-plugins, plugins/wazo-cisco-sip/common/templates/base.tpl
# (<deviceProtocol>SIP, <callManager><ports> with <sipPort>/<securedSipPort>, <sipProfile>
# with <sipStack> timers and <sipLines><line> featureID 9 with name/displayName/authName/
# authPassword/proxy/port, top-level <transportLayerProtocol>); <srstInfo>'s
# <sipIpAddr1..3>/<sipPort1..3> as in tests/firmware/fixtures/SEP001122334455.cnf.xml.
import io

from fwtest import eq, raises
from phone import config
from phone.config import ConfigError

SEP = 'fixtures/SEP001122334455.cnf.xml'
LARGE = 'fixtures/SEP00112233AABB-large.cnf.xml'


def P(xml, bufsize=1024):
    return config.parse(io.BytesIO(xml.encode()), bufsize)


def member(prio, host, ports):
    return ('<member priority="%d"><callManager><name>%s</name><ports>'
            '<ethernetPhonePort>2000</ethernetPhonePort>%s</ports>'
            '<processNodeName>%s</processNodeName></callManager></member>'
            % (prio, 'CM_' + host, ports, host))


LINE1 = ('<line button="1" lineIndex="1"><featureID>9</featureID><featureLabel>1001</featureLabel>'
         '<proxy>USECALLMANAGER</proxy><port>5060</port><name>1001</name>'
         '<displayName>Front &amp; desk</displayName><autoAnswer><autoAnswerEnabled>2'
         '</autoAnswerEnabled></autoAnswer><authName>dev1001</authName>'
         '<authPassword>s3cr&lt;t</authPassword><contact>1001</contact></line>')
BLF = ('<line button="2"><featureID>21</featureID><featureLabel>blf</featureLabel>'
       '<name>2002</name></line>')
LINE3 = '<line button="3"><featureID>9</featureID><name>1003</name></line>'


def sip_xml(proto='<deviceProtocol>SIP</deviceProtocol>', lines=LINE1 + BLF + LINE3,
            ports='<sipPort>5060</sipPort><securedSipPort>5061</securedSipPort>',
            srst='<sipIpAddr1>192.0.2.1</sipIpAddr1><sipPort1>5060</sipPort1>', extra=''):
    return ('<?xml version="1.0"?><device>%s<devicePool><callManagerGroup><members>%s%s'
            '</members></callManagerGroup><srstInfo><name>branch</name><srstOption>Enable'
            '</srstOption><ipAddr1>192.0.2.9</ipAddr1><port1>2000</port1>%s<isSecure>true'
            '</isSecure></srstInfo></devicePool><sipProfile><sipStack><sipRetx>10</sipRetx>'
            '<timerRegisterExpires>3600</timerRegisterExpires><timerRegisterDelta>5'
            '</timerRegisterDelta><timerKeepAliveExpires>120</timerKeepAliveExpires>'
            '</sipStack><sipLines>%s</sipLines><voipControlPort>5060</voipControlPort>'
            '</sipProfile><deviceSecurityMode>3</deviceSecurityMode>'
            '<transportLayerProtocol>4</transportLayerProtocol>%s</device>'
            % (proto, member(1, '203.0.113.11', ports), member(0, '203.0.113.10', ports),
               srst, lines, extra))


def test_sip_config_read():
    for bufsize in (40, 1024):
        c = P(sip_xml(), bufsize)
        s = c.sip
        eq(s['lines'], [
            {'proxy': 'USECALLMANAGER', 'port': 5060, 'name': '1001',
             'displayName': 'Front & desk', 'authName': 'dev1001', 'authPassword': 's3cr<t'},
            {'name': '1003'}])
        eq((s['transportLayerProtocol'], s['timerRegisterExpires'], s['timerRegisterDelta'],
            s['timerKeepAliveExpires']), (4, 3600, 5, 120))
        eq([(m['host'], m['port'], m['sip']) for m in c.call_managers],
           [('203.0.113.10', 2000, [5060, 5061]), ('203.0.113.11', 2000, [5060, 5061])])
        eq((c.srst['servers'], c.srst['sip']), ([['192.0.2.9', 2000]], [['192.0.2.1', 5060]]))
        eq(c.security_mode, 3)


def test_protocol_from_the_sip_profile_without_device_protocol():
    c = P(sip_xml(proto=''))
    eq([ln['name'] for ln in c.sip['lines']], ['1001', '1003'])
    eq(P(sip_xml(proto='<deviceProtocol>sip</deviceProtocol>')).sip['lines'][1], {'name': '1003'})


def test_defaults_when_absent():
    c = P(sip_xml(ports='', srst='', lines=LINE3))
    eq([m['sip'] for m in c.call_managers], [[5060, 5061], [5060, 5061]])
    eq(c.srst['sip'], [['192.0.2.9', 5060]])    # the router's SCCP address, the SIP port
    c = P(sip_xml(ports='<sipPort>5070</sipPort><securedSipPort>5071</securedSipPort>',
                  srst='<sipIpAddr1/><sipPort1>5080</sipPort1><sipIpAddr2>192.0.2.2'
                       '</sipIpAddr2>'))
    eq(c.call_managers[0]['sip'], [5070, 5071])
    eq(c.srst['sip'], [['192.0.2.9', 5080], ['192.0.2.2', 5060]])
    x = sip_xml().replace('<sipStack>', '<sipStackX>').replace('</sipStack>', '</sipStackX>')
    x = x.replace('<transportLayerProtocol>4</transportLayerProtocol>', '')
    eq(P(x).sip, {'lines': P(x).sip['lines'], 'transportLayerProtocol': None,
                  'timerRegisterExpires': None, 'timerRegisterDelta': None,
                  'timerKeepAliveExpires': None})


def test_sccp_configs_as_before():
    for path in (SEP, LARGE):       # both carry SIP elements; LARGE a <sipProfile> with lines
        c = config.parse_file(path)
        eq(c.sip, None)
        assert 'sip' not in c.to_dict()
        assert 'sip' not in c.srst
        assert all('sip' not in m for m in c.call_managers)
    c = P(sip_xml(proto='<deviceProtocol>SCCP</deviceProtocol>'))
    eq((c.sip, c.call_managers[0]['port'], c.srst['servers']), (None, 2000, [['192.0.2.9', 2000]]))


def test_bad_sip_input_one_line_errors():
    cases = (
        (sip_xml(proto='<deviceProtocol>MGCP</deviceProtocol>'),
         '<deviceProtocol> is neither SCCP nor SIP: MGCP'),
        (sip_xml(lines=BLF), 'SIP configuration without a line'),
        (sip_xml(lines='<line><featureID>9</featureID><name> </name></line>'),
         'SIP configuration without a line'),
        (sip_xml(ports='<sipPort>50x0</sipPort>'), '<sipPort> is not a number: 50x0'),
        (sip_xml(ports='<securedSipPort>-</securedSipPort>'),
         '<securedSipPort> is not a number: -'),
        (sip_xml(srst='<sipIpAddr1>192.0.2.1</sipIpAddr1><sipPort1>tls</sipPort1>'),
         '<sipPort1> is not a number: tls'),
        (sip_xml(lines=LINE1.replace('<port>5060</port>', '<port>p</port>')),
         '<line <port>> is not a number: p'),
        (sip_xml().replace('>3600<', '>1h<'), '<timerRegisterExpires> is not a number: 1h'),
        (sip_xml(lines=LINE1.replace('dev1001', 'x' * 300)), 'text is too long'),
    )
    for xml, msg in cases:
        for bufsize in (40, 1024):
            with raises(ConfigError, match=msg) as e:
                P(xml, bufsize)
            assert '\n' not in str(e.value)


def test_json_roundtrip_and_standby_rule():
    import binascii
    der = config.parse_file(SEP).srst['cert']
    b64 = binascii.b2a_base64(der).decode().strip()
    c = P(sip_xml(srst='<sipIpAddr1>192.0.2.1</sipIpAddr1><certificate>%s</certificate>' % b64))
    d = config.loads(c.dumps())
    eq(d.to_dict(), c.to_dict())
    eq(d.sip, c.sip)
    assert c.wants_srst_standby() and d.wants_srst_standby()
    # an older stored copy (no 'sip') loads as SCCP
    old = c.to_dict()
    del old['sip']
    import json
    eq(config.loads(json.dumps(old)).sip, None)


class _Ev:
    def __init__(self):
        self.seen = []

    def emit(self, name, **kw):
        self.seen.append(name)


class _Trust:
    ccm = ()
    ts = 0
    path = None


class _P:
    """What provcfg.result() reads of the Provisioner after a pass that reached TFTP."""
    trust = None
    ip = '198.51.100.7'
    lease = None
    offline = False
    heard = True
    down = ()
    servers = ('198.51.100.1',)
    tftp_port = 69

    class s:
        tftp_max_servers = 4

    def __init__(self, store):
        self.store = store


def _result(tmp_path, c, trust):
    from phone import provcfg, provision
    from phone.store import Store
    p = _P(Store(tmp_path + '/state'))
    p.trust = trust
    t = (c.security_mode, c.call_managers, c.srst, c.monitor_s, config.SECURE_OFFSET, c.sip)
    return provcfg.result(p, _Ev(), t, '001122334455', provision.Provisioned())


def test_provisioned_carries_the_sip_lines_and_ports(tmp_path):
    import binascii
    der = config.parse_file(SEP).srst['cert']
    b64 = binascii.b2a_base64(der).decode().strip()
    x = sip_xml(ports='<sipPort>5070</sipPort><securedSipPort>5071</securedSipPort>',
                srst='<sipIpAddr1>192.0.2.1</sipIpAddr1><sipPort1>5080</sipPort1>'
                     '<certificate>%s</certificate>' % b64)
    r = _result(tmp_path, P(x), _Trust())
    eq([cm[1:3] for cm in r.call_managers], [('203.0.113.10', 5071), ('203.0.113.11', 5071)])
    eq(r.srst[:2], ('192.0.2.1', 5081))     # the SIP port + 1 (Secure SRST)
    eq(r.srst[2][0], der)
    eq(r.sip['lines'][0]['authPassword'], 's3cr<t')
    # security mode 1: the plain SIP port, no standby
    r = _result(tmp_path, P(x.replace('<deviceSecurityMode>3<', '<deviceSecurityMode>1<')), None)
    eq([cm[2:] for cm in r.call_managers], [(5070, None), (5070, None)])
    eq(r.srst, None)
    # SCCP: as before, and no sip
    c = config.parse_file(SEP)
    r = _result(tmp_path, c, _Trust())
    eq([cm[2] for cm in r.call_managers], [2443, 2443])
    eq((r.srst[:2], r.sip), (('192.0.2.1', 2443), None))


def test_after_an_offline_boot_the_watch_asks_what_provisioning_asks(tmp_path):
    # phone.tftpwatch's servers: those provisioning asked (tftp_max_servers), not every one
    # DHCP offered: one beyond them answering would restart the phone into the same
    # offline boot again and again; none when a server answered
    from phone import provcfg, provision
    from phone.store import Store
    p = _P(Store(tmp_path + '/state'))
    p.heard = False
    p.servers = tuple('198.51.100.%d' % i for i in range(1, 64))
    c = P(sip_xml())
    t = (c.security_mode, c.call_managers, c.srst, c.monitor_s, config.SECURE_OFFSET, c.sip)
    r = provcfg.result(p, _Ev(), t, '001122334455', provision.Provisioned())
    eq(r.tftp, (p.servers[:4], 69))
    p.heard = True
    r = provcfg.result(p, _Ev(), t, '001122334455', provision.Provisioned())
    eq(r.tftp, ((), 69))
