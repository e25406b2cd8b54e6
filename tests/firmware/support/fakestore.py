# A phone.store stand-in for provisioning tests (test_provision_bounds, _download): begin()
# gives a file being written that counts its bytes, keeps them when asked, and records
# whether it was closed or aborted.


class Writer:
    def __init__(self, keep=False):
        self.keep = keep
        self.n = 0
        self.data = b''
        self.closed = self.aborted = False

    def write(self, b):
        self.n += len(b)
        if self.keep:
            self.data += b

    def close(self):
        self.closed = True

    def abort(self):
        self.aborted = True


class Store:
    def __init__(self, keep=False):
        self.keep = keep

    def begin(self, dest):
        return Writer(self.keep)

    def exists(self, name):
        return False            # nothing stored: provisioning waits out every TFTP retry
