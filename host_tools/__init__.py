"""Host-side tools for the Secure SRST phone agent: CLI `phonelab`, virtual board, lab, HIL."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRMWARE = ROOT / "firmware"
BOARDS = ROOT / "boards"
