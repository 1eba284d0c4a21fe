"""Frames on a byte stream (the serial heartbeat link), sans-IO: SLIP framing as in RFC 1055.

A serial line has no packet boundaries, so each frame goes out as END, the frame with its END
and ESC bytes escaped, END. The leading END ends whatever line noise came before (a cable
plugged in mid-frame, a frame cut short by the sender): that noise comes out as one junk frame,
which authentication (frame.decode) rejects, and the real frame after it arrives whole.

`Decoder.feed` never raises. It holds at most 2 * MAX_FRAME bytes however long the line talks
without an END, and drops (counting them in `discarded`) frames longer than MAX_FRAME and
frames with an escape RFC 1055 does not define. Empty frames (END END, as between two frames)
are not frames and are not counted.
"""

from __future__ import annotations

from vigil.wire.frame import MAX_FRAME

END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD

_END = bytes((END,))
_ESC = bytes((ESC,))
_ESC_END = bytes((ESC_END,))
_ESC_ESC = bytes((ESC_ESC,))
# A frame of MAX_FRAME bytes, every byte escaped: anything longer between two ENDs is oversized.
_MAX_ESCAPED = 2 * MAX_FRAME
BITS_PER_BYTE = 10  # 8N1: start bit, 8 data bits, stop bit


def encode(frame: bytes) -> bytes:
    """END + escaped frame + END. Raises ValueError for an empty or oversized frame (a caller
    bug: frame.encode never makes one)."""
    if not 0 < len(frame) <= MAX_FRAME:
        raise ValueError(f"stream frame of {len(frame)} bytes (must be 1..{MAX_FRAME})")
    # ESC first, so that the ESC bytes the END escapes add are not escaped again.
    escaped = frame.replace(_ESC, _ESC + _ESC_ESC).replace(_END, _ESC + _ESC_END)
    return _END + escaped + _END


def airtime(frame_len: int, baud: int) -> float:
    """Worst-case seconds on the line for one frame of `frame_len` bytes at `baud` on 8N1:
    every byte escaped (two bytes each) plus the two ENDs."""
    return (2 * frame_len + 2) * BITS_PER_BYTE / baud


class Decoder:
    """Bytes in, whole frames out, in order; see the module docstring for what it drops."""

    def __init__(self) -> None:
        self.discarded = 0
        self._buf = bytearray()  # escaped bytes since the last END
        self._overflow = False  # this frame is already too long: drop bytes up to the next END

    @property
    def buffered(self) -> int:
        """Bytes held waiting for an END (never more than 2 * MAX_FRAME)."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        *complete, rest = data.split(_END)
        for piece in complete:
            self._add(piece)
            frame = self._finish()
            if frame is not None:
                frames.append(frame)
        self._add(rest)
        return frames

    def _add(self, piece: bytes) -> None:
        if self._overflow:
            return
        if len(self._buf) + len(piece) > _MAX_ESCAPED:
            self._buf.clear()
            self._overflow = True
        else:
            self._buf += piece

    def _finish(self) -> bytes | None:
        """An END arrived: the frame so far, or None if there is none or it is dropped."""
        raw = bytes(self._buf)
        self._buf.clear()
        if self._overflow:
            self._overflow = False
            self.discarded += 1
            return None
        if not raw:
            return None
        frame = _unescape(raw)
        if frame is None or len(frame) > MAX_FRAME:
            self.discarded += 1
            return None
        return frame


def _unescape(raw: bytes) -> bytes | None:
    """The frame `raw` escapes, or None if an ESC is followed by anything but ESC_END or
    ESC_ESC (including another ESC, or nothing)."""
    parts = raw.split(_ESC)
    out = [parts[0]]
    for part in parts[1:]:
        if part[:1] == _ESC_END:
            out.append(_END + part[1:])
        elif part[:1] == _ESC_ESC:
            out.append(_ESC + part[1:])
        else:
            return None
    return b"".join(out)
