"""The SCCP simulators answer what they have read in one write (Session.flush): a phone's
opening (six messages in one record) gets one record back with every answer in order, and a
lone KeepAlive is answered at once. One record per answer made the SRST router simulator's
loop the bottleneck of a 2,000-phone failover (docs/fleet.md, "2,000 phones within 10 s
with the probe rule's firmware"). A fleet turns it on (SccpServer.one_write); other labs answer
one message per write."""
from __future__ import annotations

import asyncio

import pytest

from host_tools.lab.sccp_server import SccpServer, Session
from phone import sccp_lab as sccp  # type: ignore[import-not-found]  (host_tools.fw path)


class Writer:
    """What the loop writes to, one entry per write()."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.writes.append(bytes(data))

    async def drain(self) -> None:
        pass

    def close(self) -> None:
        pass


def ids(data: bytes) -> list[str]:
    return [sccp.name(mid) for mid, _ in sccp.split(data)]


async def settle(reader: asyncio.StreamReader) -> None:
    """Let the loop take everything fed so far and answer it."""
    for _ in range(50):
        await asyncio.sleep(0)


def session(one_write: bool = True) -> tuple[Session, Writer, asyncio.StreamReader, asyncio.Task]:
    """A simulator's session loop over a reader the test feeds and a writer it reads."""
    server = SccpServer(name="sim", port=None, plain_port=0)
    server.one_write = one_write                # a fleet sets it; labs keep one per answer
    w = Writer()
    s = Session(sid=1, peer="192.0.2.5:1000", tls=False, port=2000, writer=w)  # type: ignore[arg-type]
    reader = asyncio.StreamReader()
    return s, w, reader, asyncio.create_task(server._loop(reader, s))  # noqa: SLF001


async def dialogue(one_write: bool = True) -> list[list[str]]:
    s, w, reader, loop = session(one_write)
    reader.feed_data(sccp.keepalive())
    await settle(reader)
    reader.feed_data(sccp.register("SEP001122334455", "192.0.2.5"))
    await settle(reader)
    reader.feed_data(sccp.ip_port() + sccp.capabilities_res() + sccp.button_template_req()
                     + sccp.frame(sccp.SOFT_KEY_TEMPLATE_REQ) + sccp.frame(sccp.SOFT_KEY_SET_REQ)
                     + sccp.frame(sccp.CONFIG_STAT_REQ))
    await settle(reader)
    reader.feed_data(sccp.line_stat_req(1) + sccp.time_date_req()
                     + sccp.register_available_lines(1))
    await settle(reader)
    reader.feed_eof()
    await asyncio.wait_for(loop, 5)
    assert s.state == "registered", s.missing()
    return [ids(x) for x in w.writes]


def test_each_batch_read_is_answered_in_one_write() -> None:
    writes = asyncio.run(dialogue())
    assert writes[0] == ["KeepAliveAck"]
    assert writes[1] == ["RegisterAck", "CapabilitiesReq"]
    assert writes[2] == ["ButtonTemplate", "SoftKeyTemplateRes", "SoftKeySetRes",
                         "SelectSoftKeys", "ConfigStat"]
    assert writes[3][:2] == ["LineStat", "DefineTimeDate"] and len(writes[3]) >= 3
    assert len(writes) == 4


def test_by_default_each_answer_is_its_own_write() -> None:
    """The lab's default: one write per answer (the 80 KB story is measured against it)."""
    writes = asyncio.run(dialogue(one_write=False))
    assert writes[:3] == [["KeepAliveAck"], ["RegisterAck"], ["CapabilitiesReq"]]
    assert all(len(w) == 1 for w in writes)


@pytest.mark.parametrize("split_at", [1, 5, 11])
def test_a_frame_split_across_reads_is_still_answered(split_at: int) -> None:
    """The loop holds answers only while a whole next frame is buffered: half a frame
    behind a KeepAlive must not hold its KeepAliveAck back."""
    async def go() -> list[list[str]]:
        _, w, reader, loop = session()
        two = sccp.keepalive() + sccp.keepalive()
        reader.feed_data(two[:len(sccp.keepalive()) + split_at])
        await settle(reader)
        got = [ids(x) for x in w.writes]
        reader.feed_eof()
        with pytest.raises(sccp.SccpError):
            await asyncio.wait_for(loop, 5)
        return got

    assert asyncio.run(go()) == [["KeepAliveAck"]]
