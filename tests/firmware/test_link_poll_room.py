# The unix port's select.poll re-bases every registered object's pointer into its descriptor
# array when the array moves to grow, a descriptor-less object's NULL included (a wild
# pointer: SIGSEGV at the next poll). The links register the TCP socket under TLS beside TLS
# sockets (no descriptor), so phone.link.poll_room() gives asyncio's poller room first. This
# test registers what a busy virtual board does, one descriptor-less stream and more UDP
# sockets than the array's first allocation holds (4), and polls: without the room the
# interpreter dies (the test then fails).
import asyncio
import io
import socket

from phone import link


class NoFd(io.IOBase):
    """A stream without a descriptor, as a TLS socket is to poll."""

    def ioctl(self, req, arg):
        return 0 if req == 3 else -1        # MP_STREAM_POLL: nothing ready; no fileno


def test_many_descriptors_beside_a_tls_like_stream():
    link.poll_room()
    p = asyncio.core._io_queue.poller
    other = NoFd()
    p.register(other, 1)
    socks = []
    try:
        for _ in range(8):                  # phone.link's _POLL_ROOM; the first array holds 4
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            socks.append(s)
            p.register(s, 1)
            junk = [bytearray(64) for _ in range(40)]    # no room to grow in place
        for _ in range(3):
            p.poll(0)
        junk = None
        print('polled')
    finally:
        p.unregister(other)
        for s in socks:
            p.unregister(s)
            s.close()


def test_room_is_given_once_per_poller():
    link.poll_room()
    first = link._roomy
    link.poll_room()
    assert link._roomy is first
