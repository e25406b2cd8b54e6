"""Reading captures down to UDP datagrams, through tshark (Wireshark's reader): every file
format, link type and encapsulation Wireshark reads (pcap, pcapng, Ethernet with VLAN tags,
Linux cooked SLL/SLL2, raw IP, BSD loopback, FCS bits in the link type, tunnels: the
innermost IPv4/UDP), with Wireshark's IPv4 reassembly; checksums are not checked (captures
from offloading NICs carry wrong ones). ICMP errors quoting a UDP header are not datagrams.
A file cut short (a capture killed while writing) is read up to the cut, with a warning.

    for dg in udp_datagrams("phone.pcap"):
        dg.ts, dg.src, dg.sport, dg.dst, dg.dport, dg.payload, dg.src_mac, dg.truncated
"""
from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

TSHARK = "tshark"
MIN_FILE = 24                # a pcap file header; a pcapng section header is longer
FIELDS = ("frame.number", "frame.time_epoch", "frame.cap_len", "frame.len", "eth.src",
          "sll.src.eth", "ip.version", "ip.src", "ip.dst", "ip.id", "ip.flags.mf",
          "ip.frag_offset", "ip.proto", "udp.srcport", "udp.dstport", "udp.length",
          "udp.payload")
_ICMP = "1"


class PcapError(ValueError):
    pass


@dataclass(frozen=True)
class Datagram:
    index: int              # frame of the (last) fragment, as Wireshark numbers frames
    ts: float
    src: str
    dst: str
    sport: int
    dport: int
    payload: bytes
    src_mac: str | None = None
    truncated: bool = False  # the payload is shorter than the UDP header says


@dataclass
class ReadStats:
    frames: int = 0
    ipv4: int = 0
    udp: int = 0
    fragments: int = 0
    warnings: list[str] = field(default_factory=list)


def tshark() -> str:
    path = shutil.which(TSHARK)
    if path is None:
        raise PcapError("reading a capture needs tshark, Wireshark's command-line reader "
                        "(Debian: apt install tshark)")
    return path


def udp_datagrams(path: str | Path, stats: ReadStats | None = None) -> Iterator[Datagram]:
    """Every IPv4/UDP datagram of a capture, in capture order."""
    st = stats if stats is not None else ReadStats()
    path = Path(path)
    if path.stat().st_size < MIN_FILE:
        raise PcapError(f"{path}: not a capture (too short)")
    cmd = [tshark(), "-r", str(path), "-n", "-o", "ip.defragment:TRUE", "-T", "fields",
           "-E", "separator=/t", "-E", "occurrence=a", "-E", "aggregator=,"]
    for f in FIELDS:
        cmd += ["-e", f]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            bufsize=1 << 16)
    # fragment sets (src, dst, id) seen, and those that gave a datagram
    pieces: set[tuple[str, str, str]] = set()
    done: set[tuple[str, str, str]] = set()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            dg = _row(line.rstrip("\n").split("\t"), st, pieces, done)
            if dg is not None:
                st.udp += 1
                yield dg
        err = proc.stderr.read() if proc.stderr else ""
        rc = proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for f in (proc.stdout, proc.stderr):
            if f is not None:
                f.close()
    msgs = [m.removeprefix("tshark: ").strip() for m in err.splitlines()
            if m.startswith("tshark: ")]
    if rc != 0 or msgs:
        cut = [m for m in msgs if "cut short" in m]
        if cut and st.frames:
            st.warnings.append(f"file cut short after frame {st.frames}")
        else:
            raise PcapError(f"{path}: " + (" ".join(msgs) or f"tshark exit code {rc}")
                            .replace(f'The file "{path}" ', "").rstrip("."))
    lost = len(pieces - done)
    if lost:
        st.warnings.append(f"{lost} fragmented datagram(s) never completed")


def _row(f: list[str], st: ReadStats, pieces: set[tuple[str, str, str]],
         done: set[tuple[str, str, str]]) -> Datagram | None:
    if len(f) < len(FIELDS):
        f += [""] * (len(FIELDS) - len(f))
    (num, ts, cap_len, length, eth, sll, ver, src, dst, ident, mf, off, proto,
     sport, dport, ulen, payload) = f[:len(FIELDS)]
    st.frames += 1
    if "4" not in ver.split(","):
        return None
    st.ipv4 += 1
    key = (_last(src), _last(dst), _last(ident))
    if _last(mf) in ("1", "True") or _last(off) not in ("", "0"):
        st.fragments += 1
        pieces.add(key)
    protos = proto.split(",")
    if not sport or _ICMP in protos or protos[-1] != "17":
        return None
    done.add(key)
    try:
        data = bytes.fromhex(_last(payload))
        n = int(_last(ulen)) - 8
        dg = Datagram(int(num), float(ts), _last(src), _last(dst), int(_last(sport)),
                      int(_last(dport)), data, _last(eth) or _last(sll) or None,
                      int(cap_len) < int(length) or len(data) < n)
    except ValueError:
        return None
    return dg


def _last(v: str) -> str:
    return v.rsplit(",", 1)[-1]
