"""The hub's pre-encoded websocket frames (RFC 6455 §5.2), at every length encoding."""

import struct

import pytest

from pulsestack.hub import wire_frame


def decode(frame: bytes) -> tuple[int, str]:
    """(first byte, text) of one unmasked frame; the frame must hold exactly its payload."""
    first, second = frame[0], frame[1]
    assert second & 0x80 == 0, "a server's frames are not masked"
    n, offset = second & 0x7F, 2
    if n == 126:
        (n,), offset = struct.unpack("!H", frame[2:4]), 4
    elif n == 127:
        (n,), offset = struct.unpack("!Q", frame[2:10]), 10
    assert len(frame) == offset + n
    return first, frame[offset:].decode()


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_every_length_round_trips_as_one_final_text_frame(size):
    text = "x" * size
    first, decoded = decode(wire_frame(text))
    assert first == 0x81  # FIN, opcode 1 (text)
    assert decoded == text


def test_the_length_counts_utf8_bytes_not_characters():
    text = "é" * 70  # 140 bytes: needs the 16-bit length
    frame = wire_frame(text)
    assert frame[1] == 126
    assert decode(frame)[1] == text
