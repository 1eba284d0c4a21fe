"""Disk heartbeat layout: where each node's sectors are and what a sector holds, sans-IO.

A shared block device (or a file on shared storage) is cut into one slot per node, like SBD.
Node i (its position in the cluster config, 0 or 1) owns the slot at offset i * SLOT:

    +0     HEARTBEAT sector   written only by node i: its latest heartbeat frame
    +4096  MAILBOX sector     written by the other nodes, read by node i (the poison pill)

Every sector is SECTOR bytes:

    magic     4   b"VGLD"
    length    2   frame length, big-endian, at most MAX_FRAME
    frame     n   an authenticated frame (wire/frame.py), opaque here
    padding   .   zeros up to SECTOR

Anything else (an all-zero sector, another magic, a length over MAX_FRAME) reads as "no frame":
a device never written, or written by something else, is empty rather than an error. The device
must hold at least `min_size(nslots)` bytes. Sectors are 4096 bytes so that one sector is one
aligned O_DIRECT write on any disk, 512e or 4Kn, and is never torn across two device blocks.
"""

from __future__ import annotations

import struct

from vigil.wire.frame import MAX_FRAME

SECTOR = 4096
SLOT = 2 * SECTOR
MAGIC = b"VGLD"
_HEADER = struct.Struct("!4sH")


def heartbeat_offset(slot: int) -> int:
    return slot * SLOT


def mailbox_offset(slot: int) -> int:
    return slot * SLOT + SECTOR


def min_size(nslots: int) -> int:
    return nslots * SLOT


def pack(frame: bytes) -> bytes:
    """One whole sector holding `frame`. Raises ValueError for a frame over MAX_FRAME (a caller
    bug: frame.encode never makes one)."""
    if len(frame) > MAX_FRAME:
        raise ValueError(f"frame of {len(frame)} bytes exceeds the {MAX_FRAME}-byte limit")
    body = _HEADER.pack(MAGIC, len(frame)) + frame
    return body + bytes(SECTOR - len(body))


def unpack(sector: bytes) -> bytes | None:
    """The frame in a sector, or None if it holds none. Never raises."""
    if len(sector) < _HEADER.size:
        return None
    magic, length = _HEADER.unpack_from(sector)
    if magic != MAGIC or length > MAX_FRAME or _HEADER.size + length > len(sector):
        return None
    return bytes(sector[_HEADER.size : _HEADER.size + length])
