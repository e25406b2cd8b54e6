"""Virtual board: the MicroPython unix port behind a pty and/or socket:// endpoint that
mpremote and pyserial use like a real board, with the board's filesystem in a folder."""
from host_tools.vboard.board import VirtualBoard
from host_tools.vboard.errors import VBoardError

__all__ = ["VirtualBoard", "VBoardError"]
