"""Errors of the virtual board, with messages meant for the user."""


class VBoardError(RuntimeError):
    pass
