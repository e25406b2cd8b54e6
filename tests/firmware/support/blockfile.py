# A block device kept in a host file (what the board's flash partition is), for FAT and
# LittleFS under the unix port: tests/firmware/test_store.py, tests/host/test_store_powerloss.py.


class BlockFile:
    """n blocks of bs bytes in the file at `path`: created zeroed (new) or used as it is.
    before_write(f, buf), when given, runs before each block write (a power-loss test tears
    writes there)."""

    def __init__(self, path, n, bs=512, new=True, before_write=None):
        self.bs, self.n = bs, n
        self.before_write = before_write
        self.f = open(path, 'w+b' if new else 'r+b')
        if new:
            z = bytearray(bs)
            for _ in range(n):
                self.f.write(z)

    def readblocks(self, blk, buf, off=0):
        self.f.seek(blk * self.bs + off)
        self.f.readinto(buf)

    def writeblocks(self, blk, buf, off=0):
        self.f.seek(blk * self.bs + (off or 0))
        if self.before_write is not None:
            self.before_write(self.f, buf)
        self.f.write(buf)

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        return 0
