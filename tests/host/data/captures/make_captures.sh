#!/bin/sh
# Records the captures in this folder with clients and servers nobody here wrote (Debian
# packages: dnsmasq as DHCP, DNS and TFTP server; busybox udhcpc, tftp-hpa and atftp as
# clients; tcpdump recording), in two network namespaces joined by a veth pair, the
# client's side with the phone's MAC. Needs root.
#
#   tests/host/data/captures/make_captures.sh TFTP_FOLDER [OUT_FOLDER]
#
# TFTP_FOLDER: the files served (the lab's CTLFile.tlv, ITLFile.tlv and
# SEP001122AABBCC.cnf.xml.sgn for phone 001122AABBCC, e.g. from a `phonelab run` work
# folder's lab/tftp; Ringlist.xml is written here). See README.md for what each holds.
set -eu
SRC=$(cd "$1" && pwd)
OUT=$(cd "${2:-$(dirname "$0")}" && pwd)
MAC=00:11:22:aa:bb:cc
S=cap18srv; P=cap18ph
WORK=$(mktemp -d)
cleanup() {
    [ -f "$WORK/dnsmasq.pid" ] && kill "$(cat "$WORK/dnsmasq.pid")" 2>/dev/null || true
    ip netns del $S 2>/dev/null || true
    ip netns del $P 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mkdir "$WORK/tftp"
cp "$SRC/CTLFile.tlv" "$SRC/ITLFile.tlv" "$SRC/SEP001122AABBCC.cnf.xml.sgn" "$WORK/tftp/"
cat > "$WORK/tftp/Ringlist.xml" <<'XML'
<CiscoIPPhoneRingList>
  <Ring><DisplayName>Chirp1</DisplayName><FileName>Chirp1.raw</FileName></Ring>
</CiscoIPPhoneRingList>
XML
cat > "$WORK/udhcpc.sh" <<'SH'
#!/bin/sh
[ "$1" = bound ] && ip addr add "$ip/24" dev "$interface"
exit 0
SH
chmod +x "$WORK/udhcpc.sh"

net() {  # a fresh pair of namespaces
    ip netns del $S 2>/dev/null || true; ip netns del $P 2>/dev/null || true
    ip netns add $S; ip netns add $P
    ip link add eth0 netns $S type veth peer name eth0 netns $P
    ip -n $P link set eth0 address $MAC
    ip -n $S addr add 192.0.2.1/24 dev eth0
    for n in $S $P; do ip -n $n link set lo up; ip -n $n link set eth0 up; done
}
dnsmasq_up() {  # option 150 = $1
    ip netns exec $S dnsmasq --conf-file=/dev/null --no-resolv --no-hosts --bind-interfaces \
        --interface=eth0 --except-interface=lo --dhcp-range=192.0.2.50,192.0.2.60,255.255.255.0,1h \
        --dhcp-option=3,192.0.2.1 --dhcp-option=6,192.0.2.1 --dhcp-option=150,"$1" \
        --dhcp-leasefile="$WORK/leases" --address=/cucm1.example.test/192.0.2.20 \
        --enable-tftp --tftp-root="$WORK/tftp" --pid-file="$WORK/dnsmasq.pid" --user=root
    sleep 0.5
}
dnsmasq_down() { kill "$(cat "$WORK/dnsmasq.pid")"; rm -f "$WORK/dnsmasq.pid" "$WORK/leases"; sleep 0.3; }
record() {  # record $1: run the rest in the phone's namespace while tcpdump listens
    f=$1; shift
    ip netns exec $P tcpdump -i eth0 -U -s 0 -w "$WORK/$f" udp 2>/dev/null &
    t=$!
    sleep 1
    ip netns exec $P sh -c "$*"
    sleep 1
    kill -INT $t; wait $t || true
    cp "$WORK/$f" "$OUT/$f"
}
DHCP="busybox udhcpc -i eth0 -n -q -f -O 150 -s $WORK/udhcpc.sh"
T="cd $WORK && tftp -m binary 192.0.2.1 -c get"
A="cd $WORK && atftp --option 'blksize 1428' --option 'tsize 0' -g -l /dev/null -r"

# 1. a phone's boot as a real cluster serves it: DHCP with option 150, its trust lists,
#    its signed configuration and a ring list the agent never asks for
net; dnsmasq_up 192.0.2.1
record cucm-like-boot.pcap "$DHCP && $A CTLFile.tlv 192.0.2.1; $T ITLSEP001122AABBCC.tlv; \
    $A ITLFile.tlv 192.0.2.1; $A SEP001122AABBCC.cnf.xml.sgn 192.0.2.1; $T Ringlist.xml; true"
dnsmasq_down
# 2. DHCP only: option 150 names two servers the capture never shows
net; dnsmasq_up 198.51.100.7,198.51.100.8
record dhcp-only.pcap "$DHCP"
dnsmasq_down
# 3. no DHCP (an address of its own): a name looked up, then the files
net; dnsmasq_up 192.0.2.1
record tftp-dns-no-dhcp.pcap "ip addr add 192.0.2.57/24 dev eth0 && busybox nslookup cucm1.example.test 192.0.2.1 >/dev/null; \
    $A CTLFile.tlv 192.0.2.1; $A ITLFile.tlv 192.0.2.1; $A SEP001122AABBCC.cnf.xml.sgn 192.0.2.1; true"
dnsmasq_down
ls -l "$OUT"/*.pcap
