# Small assertion helpers for firmware tests (MicroPython has no pytest).


class Skip(Exception):
    pass


class raises:
    """with raises(ValueError, match='CTL'): ..."""

    def __init__(self, exc, match=None):
        self.exc = exc
        self.match = match
        self.value = None

    def __enter__(self):
        return self

    def __exit__(self, et, ev, tb):
        if et is None:
            raise AssertionError('%s not raised' % self.exc.__name__)
        if not issubclass(et, self.exc):
            return False
        if self.match is not None and self.match not in str(ev):
            raise AssertionError('%r does not contain %r' % (str(ev), self.match))
        self.value = ev
        return True


def eq(a, b, what=''):
    if a != b:
        raise AssertionError('%s%r != %r' % (what + ': ' if what else '', a, b))


class CaptureOut:
    """A stream that keeps what is written (for events)."""

    def __init__(self):
        self.parts = []

    def write(self, s):
        self.parts.append(s)
        return len(s)

    def text(self):
        return ''.join(self.parts)

    def lines(self):
        return [l for l in self.text().split('\n') if l]
