"""SCCP streams for the firmware's FrameReader and parsers (phone.sccp): frames encoded by the
lab's side (phone.sccp_lab), with lengths and ids that lie, cut or mutated."""
from __future__ import annotations

import struct

import host_tools.fw  # noqa: F401 - firmware/ on sys.path (phone.sccp_lab)
from host_tools.fuzz.gen.base import Src, chance, mutate_bytes, pick, truncate
from host_tools.fuzz.gen.corpus import Corpus


def _display_text(src: Src) -> bytes:
    return pick(src, (b"Hello", b"\x1e\x0a", b"\x1e\x0c rest", b"\x80\x05x", b"\x1e", b"\x80",
                      b"\xe9t\xe9", b"A" * 40, b"\xff" * 31, b"", src.bytes(src.int(1, 32))))


def _sccp_frame(src: Src) -> bytes:
    from phone import sccp_lab as L
    op = src.int(0, 17)
    if op == 0:
        return L.register_ack(pick(src, (30, 0, 0xFFFFFFFF)), pick(src, (60, 0)),
                              pick(src, ("M/D/YA", "", "ZZZZZZZZ")), src.int(0, 255), src.int(0, 0xFFFF))
    if op == 1:
        return L.register_reject(pick(src, ("Unknown device", "", "é" * 20, "x" * 40)))
    if op == 2:
        return L.capabilities_req()
    if op == 3:
        return L.keepalive_ack()
    if op == 4:
        return L.button_template(tuple((src.int(0, 255), src.int(0, 255)) for _ in range(src.int(0, 50))))
    if op == 5:
        return L.define_time_date(2025, 1, 1, 12, 0, 0)
    if op == 6:
        return L.reset(pick(src, (1, 2, 3, 0, 0xFFFFFFFF)))
    if op == 7:
        return L.unregister_ack(src.int(0, 3))
    if op == 8:
        return L.register_token_ack()
    if op == 9:
        return L.register_token_reject(src.int(0, 0xFFFFFFFF))
    if op == 10:
        return L.display_notify(_display_text(src).decode("latin-1"), src.int(0, 60))
    if op == 11:
        return L.display_prompt_status(_display_text(src).decode("latin-1"))
    if op == 12:
        return L.clear_notify()
    if op == 13:
        return L.frame(L.DISPLAY_TEXT, _display_text(src))
    if op == 14:
        return L.frame(L.DISPLAY_PRI_NOTIFY, struct.pack("<II", 0, 1) + _display_text(src))
    if op == 15:                             # a known message with a short body
        mid = pick(src, (L.REGISTER_ACK, L.RESET, L.UNREGISTER_ACK, L.REGISTER_TOKEN_REJECT,
                         L.DISPLAY_NOTIFY, L.DISPLAY_PRI_NOTIFY, L.DISPLAY_PROMPT_STATUS, L.DISPLAY_TEXT))
        return L.frame(mid, src.bytes(src.int(0, 9)))
    if op == 16:                             # anything else (skipped by the reader)
        return L.frame(pick(src, (0x0000, 0x0001, 0x0110, 0x0111, 0x0143, src.int(0, 0xFFFFFFFF))),
                       src.bytes(pick(src, (0, 5, 100, 600, 2048))))
    return L.register_ack()


def gen_sccp(src: Src, corpus: Corpus) -> bytes:
    flags = src.int(0, 63)
    frames = [bytearray(_sccp_frame(src)) for _ in range(src.int(1, 8))]
    for _ in range(src.int(0, 2)):
        f = pick(src, frames)
        op = src.int(0, 4)
        n = len(f) - 8
        if len(f) < 12:
            continue
        if op == 0:                          # the length field lies
            struct.pack_into("<I", f, 0, pick(src, (0, 1, 3, 4, n + 1, max(0, n - 1), 2052, 2053,
                                                    516, 517, 20, 104, 0x7FFFFFFF, 0xFFFFFFFF,
                                                    n + src.int(2, 3000))))
        elif op == 1:
            struct.pack_into("<I", f, 4, pick(src, (1, 0x16, 0xFFFFFFFF)))
        elif op == 2:
            del f[src.int(0, len(f)):]
        elif op == 3:
            f[:] = mutate_bytes(src, bytes(f))
        else:
            struct.pack_into("<I", f, 8, src.int(0, 0x200))
    out = b"".join(frames)
    if chance(src, 6):
        out = truncate(src, out)
    return bytes([flags]) + out
