"""The netfilter log (NFLOG) wire format, as much as passive detection needs. Sans-IO:
bytes in, values out; passive.py owns the socket.

The balancer's ruleset logs to one NFLOG group each reset that a real server sends in answer
to a connection that never got established (a refusal), with the connection's mark copied
into the packet mark (nft.py). Here: the messages that bind a netlink socket to that group
and ask for metadata only, sent at once; and the marks read back from the kernel's packet
messages. Layouts from linux/netfilter/nfnetlink_log.h and linux/netlink.h; everything
read is untrusted and bounded: a message or attribute that does not fit is skipped, never
read past.
"""

from __future__ import annotations

import struct

NETLINK_NETFILTER = 12
NFNL_SUBSYS_ULOG = 4
MSG_PACKET = NFNL_SUBSYS_ULOG << 8 | 0
MSG_CONFIG = NFNL_SUBSYS_ULOG << 8 | 1
NLMSG_ERROR = 2
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
CFG_CMD, CFG_MODE, CFG_TIMEOUT, CFG_QTHRESH = 1, 2, 4, 5
CMD_BIND = 1
COPY_META = 1  # the packet's metadata (its mark), not its bytes
ATTR_MARK = 2
_NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER

_HEADER = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, sequence, port id
_NFGEN = struct.Struct("!BBH")  # nfgenmsg: family, version, resource id (the group)
_NLA = struct.Struct("=HH")  # length, type


def _attr(kind: int, payload: bytes) -> bytes:
    size = _NLA.size + len(payload)
    return _NLA.pack(size, kind) + payload + b"\0" * (-size % 4)


def _config(group: int, seq: int, attrs: bytes) -> bytes:
    body = _NFGEN.pack(0, 0, group) + attrs  # AF_UNSPEC, NFNETLINK_V0
    return _HEADER.pack(_HEADER.size + len(body), MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK,
                        seq, 0) + body


def bind(group: int) -> list[bytes]:
    """The requests that bind a socket to `group`, metadata only, each packet delivered at
    once (no batching for a second, the kernel's default), each acknowledged."""
    if not 0 <= group <= 0xFFFF:
        raise ValueError(f"NFLOG group {group} is not 0-65535")
    return [
        _config(group, 1, _attr(CFG_CMD, bytes([CMD_BIND]))),
        _config(group, 2, _attr(CFG_MODE, struct.pack("!IBx", 0, COPY_META))),
        _config(group, 3, _attr(CFG_QTHRESH, struct.pack("!I", 1)) +
                _attr(CFG_TIMEOUT, struct.pack("!I", 1))),
    ]


def errors(data: bytes) -> list[int]:
    """The errno of each negative acknowledgement in `data` (0s, the positive ones, left
    out)."""
    return [code for kind, payload in _messages(data) if kind == NLMSG_ERROR
            for code in [_error(payload)] if code]


def _error(payload: bytes) -> int:
    if len(payload) < 4:
        return 0
    code: int = struct.unpack_from("=i", payload)[0]
    return -code if code < 0 else 0


def marks(data: bytes, group: int) -> list[int]:
    """The mark of each packet logged to `group` in `data` (one read of the socket)."""
    out = []
    for kind, payload in _messages(data):
        if kind != MSG_PACKET or len(payload) < _NFGEN.size:
            continue
        if _NFGEN.unpack_from(payload)[2] != group:
            continue
        for attr, value in _attrs(payload[_NFGEN.size:]):
            if attr == ATTR_MARK and len(value) == 4:
                out.append(struct.unpack("!I", value)[0])
    return out


def _messages(data: bytes) -> list[tuple[int, bytes]]:
    out, off = [], 0
    while off + _HEADER.size <= len(data):
        length, kind = _HEADER.unpack_from(data, off)[:2]
        if length < _HEADER.size or off + length > len(data):
            break  # a truncated or lying header: nothing after it can be trusted
        out.append((kind, data[off + _HEADER.size:off + length]))
        off += (length + 3) & ~3
    return out


def _attrs(data: bytes) -> list[tuple[int, bytes]]:
    out, off = [], 0
    while off + _NLA.size <= len(data):
        length, kind = _NLA.unpack_from(data, off)
        if length < _NLA.size or off + length > len(data):
            break
        out.append((kind & _NLA_TYPE_MASK, data[off + _NLA.size:off + length]))
        off += (length + 3) & ~3
    return out


def packet(group: int, mark: int | None, seq: int = 0) -> bytes:
    """A packet message as the kernel sends it (for tests and the fuzzer's seeds)."""
    attrs = _attr(1, b"\x08\x00\x00\x00") + (b"" if mark is None else
                                             _attr(ATTR_MARK, struct.pack("!I", mark)))
    body = _NFGEN.pack(2, 0, group) + attrs
    return _HEADER.pack(_HEADER.size + len(body), MSG_PACKET, 0, seq, 0) + body
