"""Stop strings picked from sampled text: tiny test models also emit byte pieces of broken
UTF-8 and control characters, which the API rightly refuses as stop strings."""

from __future__ import annotations

import pytest


def printable_piece(text: str, start: int, size: int) -> str:
    """The first plain-ASCII, printable substring of ``size`` characters from ``start`` on."""
    for begin in range(start, len(text) - size):
        piece = text[begin : begin + size]
        if piece.isascii() and piece.isprintable():
            return piece
    pytest.skip("no printable piece in the sampled text")
