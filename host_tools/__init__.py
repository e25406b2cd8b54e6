"""Host-side tools for the Secure SRST phone agent: CLI `phonelab`, virtual board, lab, HIL.

Where the project's files are, in a checkout (or an editable install of one) and in an
installed wheel alike:
- ROOT holds firmware/, boards/ and scenarios/: the repository in a checkout, the package
  data folder host_tools/data/ in a wheel (setup.py copies them there at build time).
- PACKAGE is this package's folder (host_tools/mpscripts/, host_tools/vboard/esp32/ ...).
- WORK is where the tools write their own state (out/, build/): the repository in a
  checkout; in a wheel the folder PHONELAB_HOME names, else the current folder (never the
  installed package)."""
import os
from importlib.resources import files
from pathlib import Path

PACKAGE = Path(str(files(__name__)))
_CHECKOUT = PACKAGE.parent
INSTALLED = not ((_CHECKOUT / "pyproject.toml").is_file()
                 and (_CHECKOUT / "firmware" / "manifest.py").is_file())
ROOT = PACKAGE / "data" if INSTALLED else _CHECKOUT
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "boards"
SCENARIOS = ROOT / "scenarios"
MPSCRIPTS = PACKAGE / "mpscripts"
WORK = Path(os.environ.get("PHONELAB_HOME") or ".").absolute() if INSTALLED else _CHECKOUT
