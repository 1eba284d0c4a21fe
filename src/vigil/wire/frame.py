"""Heartbeat frames: the bytes on every link, sans-IO.

Layout (network byte order), at most MAX_FRAME bytes so that one frame is one Ethernet packet:

    magic     4   b"VGL" + version byte (2)
    kind      1   FrameKind
    cluster   1+n length-prefixed UTF-8 cluster name (<= 64 bytes)
    sender    1+n length-prefixed UTF-8 node name (<= 64 bytes)
    generation 8  the sender's boot generation (grows at every daemon start)
    seq       8   the sender's frame counter within that generation (never repeats)
    link      1   index of the link the sender sent it on (for diagnostics)
    length    2   payload length
    payload   n   compact JSON message (see messages.py)
    mac       32  HMAC-SHA256(key, everything above)

`decode` authenticates before it parses anything of the payload, and never raises: every
failure is a `Rejected` with a reason from `RejectReason`, which the daemon counts.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from dataclasses import dataclass

MAGIC = b"VGL"
VERSION = 2  # 2: heartbeats carry `made` and `echo` (session.py); version 1 nodes refuse them
MAX_FRAME = 1400
MAC_SIZE = 32
MAX_NAME = 64
_FIXED = struct.Struct("!QQBH")  # generation, seq, link, payload length
MIN_FRAME = len(MAGIC) + 1 + 1 + 1 + 1 + _FIXED.size + MAC_SIZE


class FrameKind(enum.IntEnum):
    HEARTBEAT = 1  # node to node, on every link (messages.py)
    WITNESS_ASK = 2  # node to witness: the groups it holds or wants (votes.py)
    WITNESS_REPLY = 3  # witness to node: the leases granted (votes.py)
    POISON = 4  # node to node through a disk mailbox: release everything and stop (votes.py)


class RejectReason(str, enum.Enum):
    OVERSIZED = "oversized"
    TRUNCATED = "truncated"
    BAD_MAGIC = "bad_magic"
    BAD_VERSION = "bad_version"
    BAD_AUTH = "bad_auth"
    GARBLED = "garbled"
    WRONG_CLUSTER = "wrong_cluster"
    UNKNOWN_SENDER = "unknown_sender"
    REPLAY = "replay"
    STALE_GENERATION = "stale_generation"
    DUPLICATE_NODE = "duplicate_node"  # another host uses this node's own name
    # Authentic and new, but it does not prove its sender alive now (session.py): replayed,
    # held back, or sent before the sender heard this node. Echoed, otherwise ignored.
    UNVERIFIED = "unverified"


@dataclass(frozen=True, slots=True)
class Frame:
    kind: FrameKind
    cluster: str
    sender: str
    generation: int
    seq: int
    link: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    reason: RejectReason
    detail: str = ""


def encode(frame: Frame, key: bytes) -> bytes:
    """Serialise and sign. Raises ValueError for a frame that could never be decoded (caller bug
    or a configuration too large for one frame)."""
    cluster = frame.cluster.encode()
    sender = frame.sender.encode()
    if not (0 < len(cluster) <= MAX_NAME and 0 < len(sender) <= MAX_NAME):
        raise ValueError("cluster or node name empty or longer than 64 bytes")
    try:
        fixed = _FIXED.pack(frame.generation, frame.seq, frame.link, len(frame.payload))
    except struct.error as e:  # generation/seq beyond 64 bits, link beyond 8, payload beyond 16
        raise ValueError(f"frame field out of range: {e}") from None
    body = b"".join(
        (
            MAGIC,
            bytes((VERSION, frame.kind, len(cluster))),
            cluster,
            bytes((len(sender),)),
            sender,
            fixed,
            frame.payload,
        )
    )
    data = body + hmac.new(key, body, hashlib.sha256).digest()
    if len(data) > MAX_FRAME:
        raise ValueError(f"frame of {len(data)} bytes exceeds the {MAX_FRAME}-byte limit")
    return data


def decode(data: bytes, key: bytes) -> Frame | Rejected:
    """Authenticate and split one datagram. Never raises."""
    n = len(data)
    if n > MAX_FRAME:
        return Rejected(RejectReason.OVERSIZED, f"{n} bytes")
    if n < MIN_FRAME:
        return Rejected(RejectReason.TRUNCATED, f"{n} bytes")
    if data[:3] != MAGIC:
        return Rejected(RejectReason.BAD_MAGIC)
    if data[3] != VERSION:
        return Rejected(RejectReason.BAD_VERSION, f"version {data[3]}")
    body, mac = data[:-MAC_SIZE], data[-MAC_SIZE:]
    if not hmac.compare_digest(hmac.new(key, body, hashlib.sha256).digest(), mac):
        return Rejected(RejectReason.BAD_AUTH)
    # Authenticated from here on, so a failure below means a peer with our key sent nonsense.
    try:
        kind = FrameKind(body[4])
        pos = 5
        cluster, pos = _name(body, pos)
        sender, pos = _name(body, pos)
        generation, seq, link, length = _FIXED.unpack_from(body, pos)
        pos += _FIXED.size
        if pos + length != len(body):
            return Rejected(RejectReason.GARBLED, "payload length mismatch")
        return Frame(kind, cluster, sender, generation, seq, link, bytes(body[pos:]))
    except (ValueError, struct.error, IndexError, UnicodeDecodeError) as e:
        return Rejected(RejectReason.GARBLED, str(e)[:80])


def _name(buf: bytes, pos: int) -> tuple[str, int]:
    length = buf[pos]
    if length == 0 or length > MAX_NAME or pos + 1 + length > len(buf):
        raise ValueError("bad name length")
    return buf[pos + 1 : pos + 1 + length].decode("utf-8"), pos + 1 + length
