"""What the host tools take from mpremote beyond its documented command line, pinned to the
release they were checked against: an upgrade fails here, loudly, until someone has looked.

- host_tools.deploy.RawRepl (deploy's probe, `phonelab identity`, `status`, the HIL handles)
  drives mpremote's SerialTransport: its constructor, enter/exit_raw_repl, exec, read_until,
  close, its `serial` attribute, and TransportError.
- host_tools.deploy.copy_with_mpremote reads `mpremote fs cp`'s "Up to date: PATH" lines to
  tell copied from unchanged files (tests/host/test_deploy.py checks the counts).
- Everything else (`phonelab repl`, the copy, `mip install`) is mpremote's command line.

To upgrade: bump mpremote in pyproject.toml, run this file and tests/host/test_deploy.py,
tests/host/test_repl_status.py, tests/host/test_identity.py, then update PINNED."""
from __future__ import annotations

import inspect
from importlib import metadata

PINNED = "1.29.0"


def test_mpremote_is_the_release_the_internals_were_checked_against() -> None:
    installed = metadata.version("mpremote")
    assert installed == PINNED, (
        f"mpremote {installed} is installed, the host tools were checked against {PINNED}: "
        f"host_tools.deploy.RawRepl uses mpremote's SerialTransport and TransportError (not "
        f"its documented interface) and deploy reads `fs cp`'s 'Up to date:' lines. Check "
        f"them against mpremote {installed} (see this file's docstring), then set PINNED.")


def test_the_internals_have_the_shape_used() -> None:
    from mpremote.transport import TransportError
    from mpremote.transport_serial import SerialTransport
    assert issubclass(TransportError, Exception)
    params = inspect.signature(SerialTransport.__init__).parameters
    assert "device" in params and "baudrate" in params
    assert "soft_reset" in inspect.signature(SerialTransport.enter_raw_repl).parameters
    for name in ("exit_raw_repl", "exec", "read_until", "close"):
        assert callable(getattr(SerialTransport, name)), name
    from mpremote import commands
    assert "Up to date:" in inspect.getsource(commands.do_filesystem_cp)
