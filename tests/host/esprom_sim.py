"""A simulated ESP ROM bootloader (and flasher stub) behind a pty, for testing flashing
without a chip: esptool's real code runs against it over a real serial device node.

The serial protocol (Espressif's documented "serial protocol"): SLIP frames (0xC0 ends,
0xDB 0xDC / 0xDB 0xDD escape); a request is <u8 0, u8 op, u16 len, u32 checksum> + data; a
response is <u8 1, u8 op, u16 len, u32 value> + data + status (ROM: 4 bytes, stub: 2),
status[0] != 0 meaning failure. Enough of it is modelled for detect_chip, the stub upload,
baud change, SPI attach, (compressed) writes, erase and the MD5 check. Flash is a bytearray.

A SYNC resets the model to the ROM, as a real board is reset before every connection.
`fail_bauds`: after a CHANGE_BAUDRATE to one of these, the chip goes silent (what a bridge
that cannot do the rate looks like) until the next SYNC.
"""
from __future__ import annotations

import errno
import hashlib
import os
import pty
import select
import socket
import struct
import threading
import tty
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

FLASH_SIZE = 4 << 20
MAGIC_REG = 0x40001000
MAGIC = {"esp32": 0x00F01D83, "esp32s2": 0x000007C6}
CHIP_ID = {"esp32s3": 9, "esp32c3": 5, "esp32c6": 13, "esp32c5": 23, "esp32p4": 18}
# SPI W0 register, where the flash's JEDEC id shows after a RDID command
SPI_W0 = {"esp32": 0x3FF42080, "esp32s2": 0x3F402058, "esp32s3": 0x60002058,
          "esp32c3": 0x60002058, "esp32c6": 0x60003058, "esp32c5": 0x60003058,
          "esp32p4": 0x5008D058}
JEDEC_4MB = 0x1640EF  # Winbond W25Q32 as the ROM reads it: manufacturer 0xEF, device 0x4016

OP_FLASH_BEGIN, OP_FLASH_DATA, OP_FLASH_END = 0x02, 0x03, 0x04
OP_MEM_BEGIN, OP_MEM_END, OP_MEM_DATA = 0x05, 0x06, 0x07
OP_SYNC, OP_WRITE_REG, OP_READ_REG = 0x08, 0x09, 0x0A
OP_SPI_SET_PARAMS, OP_SPI_ATTACH, OP_CHANGE_BAUD = 0x0B, 0x0D, 0x0F
OP_DEFL_BEGIN, OP_DEFL_DATA, OP_DEFL_END, OP_MD5 = 0x10, 0x11, 0x12, 0x13
OP_SECURITY_INFO, OP_ERASE_FLASH, OP_ERASE_REGION = 0x14, 0xD0, 0xD1


def slip(payload: bytes) -> bytes:
    return b"\xc0" + payload.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"


@dataclass
class RomSim:
    chip: str = "esp32"
    fail_bauds: set[int] = field(default_factory=set)
    flash: bytearray = field(default_factory=lambda: bytearray(b"\xff" * FLASH_SIZE))
    stub: bool = False
    dead: bool = False
    baud: int = 115200
    ops: list[int] = field(default_factory=list)
    bauds: list[int] = field(default_factory=list)   # every CHANGE_BAUDRATE asked for
    writes: list[tuple[int, int]] = field(default_factory=list)  # (offset, size) of finished writes
    erased: int = 0
    syncs: int = 0

    def __post_init__(self) -> None:
        self._rx = bytearray()
        self._in_frame = False
        self._esc = False
        self._write: tuple[int, int, bool] | None = None   # offset, size, compressed
        self._pos = 0
        self._inflate: zlib._Decompress | None = None

    # -- framing ---------------------------------------------------------------------------
    def feed(self, data: bytes) -> bytes:
        out = bytearray()
        for b in data:
            if b == 0xC0:
                if self._in_frame and self._rx:
                    out += self._frame(bytes(self._rx))
                self._rx.clear()
                self._in_frame = True
                self._esc = False
            elif not self._in_frame:
                continue
            elif self._esc:
                self._rx.append({0xDC: 0xC0, 0xDD: 0xDB}.get(b, b))
                self._esc = False
            elif b == 0xDB:
                self._esc = True
            else:
                self._rx.append(b)
        return bytes(out)

    def _reply(self, op: int, value: int = 0, data: bytes = b"", ok: bool = True,
               error: int = 0x05) -> bytes:
        status = (b"\x00\x00" if ok else bytes([1, error])) + (b"" if self.stub else b"\x00\x00")
        body = data + status
        return slip(struct.pack("<BBHI", 1, op, len(body), value) + body)

    # -- commands --------------------------------------------------------------------------
    def _frame(self, frame: bytes) -> bytes:
        if len(frame) < 8 or frame[0] != 0:
            return b""
        _, op, size, _chk = struct.unpack_from("<BBHI", frame)
        data = frame[8:8 + size]
        if op == OP_SYNC:
            return self._sync()
        if self.dead:
            return b""
        self.ops.append(op)
        handler: Callable[[int, bytes], bytes] | None = getattr(self, f"_op_{op:02x}", None)
        if handler is None:
            return self._reply(op, ok=False)
        return handler(op, data)

    def _sync(self) -> bytes:
        # A connection starts with a reset into the ROM: forget the stub and a dead link.
        self.syncs += 1
        self.stub = False
        self.dead = False
        self.baud = 115200
        return b"".join(self._reply(OP_SYNC, value=0x20120707) for _ in range(8))

    def _op_0a(self, op: int, data: bytes) -> bytes:   # READ_REG
        (addr,) = struct.unpack_from("<I", data)
        value = 0
        if addr == MAGIC_REG:
            value = MAGIC.get(self.chip, 0x00F01D83)
        elif addr == SPI_W0.get(self.chip):
            value = JEDEC_4MB
        return self._reply(op, value=value)

    def _op_09(self, op: int, data: bytes) -> bytes:   # WRITE_REG
        return self._reply(op)

    def _op_14(self, op: int, data: bytes) -> bytes:   # GET_SECURITY_INFO
        if self.chip not in CHIP_ID:                    # ESP32/S2 ROMs do not have it
            return self._reply(op, ok=False)
        info = struct.pack("<IB7sII", 0, 0, b"\x00" * 7, CHIP_ID[self.chip], 0)
        return self._reply(op, data=info)

    def _op_05(self, op: int, data: bytes) -> bytes:   # MEM_BEGIN (stub upload)
        return self._reply(op)

    def _op_07(self, op: int, data: bytes) -> bytes:   # MEM_DATA
        return self._reply(op)

    def _op_06(self, op: int, data: bytes) -> bytes:   # MEM_END: the stub starts and says hi
        reply = self._reply(op)
        self.stub = True
        return reply + slip(b"OHAI")

    def _op_0f(self, op: int, data: bytes) -> bytes:   # CHANGE_BAUDRATE
        new, _old = struct.unpack_from("<II", data)
        self.bauds.append(new)
        reply = self._reply(op)
        self.baud = new
        if new in self.fail_bauds:
            self.dead = True
        return reply

    def _op_0d(self, op: int, data: bytes) -> bytes:   # SPI_ATTACH
        return self._reply(op)

    def _op_0b(self, op: int, data: bytes) -> bytes:   # SPI_SET_PARAMS
        return self._reply(op)

    def _begin(self, op: int, data: bytes, compressed: bool) -> bytes:
        size, _blocks, _blocksize, offset = struct.unpack_from("<IIII", data)
        if offset + size > len(self.flash):
            return self._reply(op, ok=False, error=0x07)
        self._write = (offset, size, compressed)
        self._pos = offset
        self._inflate = zlib.decompressobj() if compressed else None
        # a write erases the sectors it covers first
        start, end = offset & ~0xFFF, (offset + size + 0xFFF) & ~0xFFF
        self.flash[start:end] = b"\xff" * (end - start)
        return self._reply(op)

    def _op_02(self, op: int, data: bytes) -> bytes:
        return self._begin(op, data, compressed=False)

    def _op_10(self, op: int, data: bytes) -> bytes:
        return self._begin(op, data, compressed=True)

    def _block(self, op: int, data: bytes) -> bytes:
        if self._write is None:
            return self._reply(op, ok=False, error=0x08)
        length = struct.unpack_from("<I", data)[0]
        payload = data[16:16 + length]
        if self._inflate is not None:
            payload = self._inflate.decompress(payload)
        offset, size, _ = self._write
        payload = payload[:max(0, offset + size - self._pos)]  # ROM writes pad with 0xFF
        self.flash[self._pos:self._pos + len(payload)] = payload
        self._pos += len(payload)
        return self._reply(op)

    def _op_03(self, op: int, data: bytes) -> bytes:
        return self._block(op, data)

    def _op_11(self, op: int, data: bytes) -> bytes:
        return self._block(op, data)

    def _end(self, op: int) -> bytes:
        if self._write is not None:
            self.writes.append((self._write[0], self._write[1]))
        self._write = None
        return self._reply(op)

    def _op_04(self, op: int, data: bytes) -> bytes:
        return self._end(op)

    def _op_12(self, op: int, data: bytes) -> bytes:
        return self._end(op)

    def _op_13(self, op: int, data: bytes) -> bytes:   # SPI_FLASH_MD5
        addr, size = struct.unpack_from("<II", data)
        digest = hashlib.md5(self.flash[addr:addr + size]).digest()
        return self._reply(op, data=digest if self.stub else digest.hex().encode())

    def _op_d0(self, op: int, data: bytes) -> bytes:   # ERASE_FLASH (stub only)
        if not self.stub:
            return self._reply(op, ok=False)
        self.flash[:] = b"\xff" * len(self.flash)
        self.erased += 1
        return self._reply(op)

    def _op_d1(self, op: int, data: bytes) -> bytes:   # ERASE_REGION (stub only)
        offset, size = struct.unpack_from("<II", data)
        self.flash[offset:offset + size] = b"\xff" * size
        return self._reply(op)


class PtyDevice:
    """A pty whose far end is `handler(bytes) -> bytes` (a RomSim's feed, or anything else).

    The slave path is what esptool/pyserial open. `on_hangup` is called whenever the last
    opener closes it (a finished esptool session), with the handler replaceable from there."""

    def __init__(self, handler: Callable[[bytes], bytes],
                 on_hangup: Callable[[], None] | None = None) -> None:
        self.handler = handler
        self.on_hangup = on_hangup
        self.master, slave = pty.openpty()
        self.path = os.ttyname(slave)
        tty.setraw(slave)
        os.close(slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"ptydev:{self.path}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        attached = False
        poller = select.poll()
        poller.register(self.master, select.POLLIN)
        while not self._stop.is_set():
            events = poller.poll(50)
            hup = any(ev & select.POLLHUP for _, ev in events)
            if any(ev & select.POLLIN for _, ev in events):
                try:
                    data = os.read(self.master, 65536)
                except OSError as e:
                    if e.errno != errno.EIO:
                        raise
                    data = b""
                if data:
                    attached = True
                    out = self.handler(data)
                    if out:
                        self._send(out)
            if hup:
                if attached and self.on_hangup is not None:
                    self.on_hangup()
                attached = False
                self._stop.wait(0.02)

    def _send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                n = os.write(self.master, view)
            except BlockingIOError:
                select.select([], [self.master], [], 0.05)
                continue
            except OSError:
                return  # nobody attached: the bytes are lost, as on a cable with no listener
            view = view[n:]

    def write(self, data: bytes) -> None:
        """Unsolicited output from the device (boot messages, a REPL)."""
        self._send(data)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        os.close(self.master)

    def __enter__(self) -> PtyDevice:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def make_image(chip_id: int, size: int = 70000, offset: int = 0x1000, app: bool = False,
               partition_table: bool = True) -> bytes:
    """A synthetic ESP flash image: a bootloader-style header for `chip_id` (or an app image
    with its app descriptor), a partition table at 0x8000 of flash, patterned filler."""
    header = struct.pack("<BBBBIB3sHBHH4sB", 0xE9, 1, 2, 0x20, 0x40080000, 0xEE, b"\0\0\0",
                         chip_id, 0, 0, 0xFFFF, b"\0" * 4, 0)
    first = struct.pack("<I", 0xABCD5432) + b"\0" * 12 if app else b"\x01" * 16
    data = bytearray(header + struct.pack("<II", 0x3FFF0000, len(first)) + first)
    data += bytes((i * 7 + (i >> 8)) & 0xFF for i in range(size - len(data)))
    at = 0x8000 - offset
    if 0 <= at < len(data) - 1:
        data[at:at + 2] = b"\xaa\x50" if partition_table else b"\xff\xff"
    return bytes(data)


class ChipThenMicroPython:
    """The pty is the ROM until `booted(sim)` holds at the end of an esptool session (by
    default: a finished write, i.e. after flashing); then it is the console of a virtual
    board, as if MicroPython had booted (`phonelab flash`, `--board auto` after detection)."""

    def __init__(self, folder: Path, chip: str = "esp32",
                 booted: Callable[[RomSim], bool] = lambda sim: bool(sim.writes)) -> None:
        from host_tools.vboard import VirtualBoard
        self.sim = RomSim(chip)
        self.booted = booted
        self.vboard = VirtualBoard(folder, tcp_port=0, pty=False)
        self.sock: socket.socket | None = None
        self.dev = PtyDevice(self.handle, on_hangup=self.hangup)

    def handle(self, data: bytes) -> bytes:
        if self.sock is None:
            return self.sim.feed(data)
        self.sock.sendall(data)
        return b""

    def hangup(self) -> None:
        if self.sock is None and self.booted(self.sim):
            self.vboard.start()
            self.sock = socket.create_connection(("127.0.0.1", self.vboard.tcp_port))
            threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.sock is not None
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            if not data:
                return
            self.dev.write(data)

    def close(self) -> None:
        self.dev.close()
        if self.sock is not None:
            self.sock.close()
        self.vboard.stop()
