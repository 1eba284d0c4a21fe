"""The heartbeat frame codec and the message codec: round trips, every reject reason from bytes,
and garbage in (plain and authenticated) never raising.

Datagrams arrive whole, so "byte by byte" here means every prefix of a frame (h11's `tr()`
feeds a reader each prefix and expects "not yet"; a frame prefix must be rejected instead).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import struct

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from vigil.replica.promotion import Replica
from vigil.wire import frame as wire
from vigil.wire.frame import (
    MAC_SIZE,
    MAGIC,
    MAX_FRAME,
    MAX_NAME,
    MIN_FRAME,
    VERSION,
    Frame,
    FrameKind,
    Rejected,
    RejectReason,
    decode,
    encode,
)
from vigil.wire.messages import (
    Assignment,
    Echo,
    GroupReport,
    GroupState,
    Heartbeat,
    NodeStatus,
    parse,
    serialize,
)

KEY = b"0123456789abcdef0123456789abcdef"
OTHER_KEY = b"fedcba9876543210fedcba9876543210"
U64 = 2**64 - 1

# Everything of a frame except the names and the payload.
OVERHEAD = len(MAGIC) + 1 + 1 + 1 + 1 + struct.calcsize("!QQBH") + MAC_SIZE


def sign(body: bytes, key: bytes = KEY) -> bytes:
    """What a peer holding `key` would put on the wire for `body`, garbled or not."""
    return body + hmac.new(key, body, hashlib.sha256).digest()


def sample_frame(payload: bytes = b'{"s":"up","g":[],"t":0}') -> Frame:
    return Frame(FrameKind.HEARTBEAT, "prod", "n1", 7, 42, 1, payload)


def body_of(f: Frame, *, kind: int | None = None, cluster: bytes | None = None,
            sender: bytes | None = None, length: int | None = None) -> bytes:
    """A frame body built by hand, each field overridable with a wrong value."""
    c = f.cluster.encode() if cluster is None else cluster
    s = f.sender.encode() if sender is None else sender
    return b"".join((
        MAGIC, bytes((VERSION, f.kind if kind is None else kind, len(c))), c,
        bytes((len(s),)), s,
        struct.pack("!QQBH", f.generation, f.seq, f.link,
                    len(f.payload) if length is None else length),
        f.payload,
    ))


# ---- strategies ---------------------------------------------------------------------------

names = st.text(min_size=1, max_size=MAX_NAME).filter(lambda s: len(s.encode()) <= MAX_NAME)


@st.composite
def frames(draw: st.DrawFn) -> Frame:
    cluster = draw(names)
    sender = draw(names)
    room = MAX_FRAME - OVERHEAD - len(cluster.encode()) - len(sender.encode())
    payload = draw(st.one_of(st.binary(max_size=room), st.binary(min_size=room, max_size=room)))
    return Frame(
        FrameKind.HEARTBEAT, cluster, sender,
        draw(st.one_of(st.integers(0, U64), st.sampled_from([0, 1, U64]))),
        draw(st.one_of(st.integers(0, U64), st.sampled_from([0, 1, U64]))),
        draw(st.integers(0, 255)),
        payload,
    )


# ---- frame: round trip --------------------------------------------------------------------


@given(frames())
def test_round_trip(f: Frame) -> None:
    data = encode(f, KEY)
    assert len(data) <= MAX_FRAME
    assert decode(data, KEY) == f


@given(frames(), st.binary(max_size=64))
def test_round_trip_any_key(f: Frame, key: bytes) -> None:
    assert decode(encode(f, key), key) == f


def test_exact_bytes() -> None:
    f = Frame(FrameKind.HEARTBEAT, "c", "n1", 2, 3, 1, b"{}")
    body = (b"VGL\x02" b"\x01" b"\x01c" b"\x02n1"
            + (2).to_bytes(8, "big") + (3).to_bytes(8, "big") + b"\x01" + b"\x00\x02" + b"{}")
    assert encode(f, KEY) == sign(body)


def test_largest_frame_fits_and_one_more_byte_does_not() -> None:
    f = sample_frame(b"x" * (MAX_FRAME - OVERHEAD - len("prod") - len("n1")))
    data = encode(f, KEY)
    assert len(data) == MAX_FRAME
    assert decode(data, KEY) == f
    with pytest.raises(ValueError, match="exceeds the 1400-byte limit"):
        encode(sample_frame(f.payload + b"x"), KEY)


@pytest.mark.parametrize("size", [MAX_FRAME, 2**16, 2**16 + 5])
def test_encode_refuses_oversized_payload_with_valueerror(size: int) -> None:
    # Past 65535 bytes the length field itself overflows: still a ValueError, not struct.error.
    with pytest.raises(ValueError):
        encode(sample_frame(b"x" * size), KEY)


@pytest.mark.parametrize("cluster,sender", [
    ("c" * 65, "n1"),
    ("prod", "n" * 65),
    ("é" * 33, "n1"),  # 33 characters but 66 bytes: the limit is in bytes
    ("", "n1"),  # decode refuses a zero-length name, so encode must too
    ("prod", ""),
    ("prod", "n\ud800"),  # a lone surrogate has no UTF-8 form (UnicodeEncodeError)
])
def test_encode_refuses_bad_names(cluster: str, sender: str) -> None:
    with pytest.raises(ValueError):
        encode(Frame(FrameKind.HEARTBEAT, cluster, sender, 1, 1, 0, b""), KEY)


def test_encode_accepts_names_of_exactly_64_bytes() -> None:
    f = Frame(FrameKind.HEARTBEAT, "c" * 64, "é" * 32, 1, 1, 0, b"")
    assert decode(encode(f, KEY), KEY) == f


@pytest.mark.parametrize("field,value", [
    ("generation", -1), ("generation", 2**64), ("seq", -1), ("seq", 2**64),
    ("link", -1), ("link", 256),
])
def test_encode_refuses_out_of_range_numbers_with_valueerror(field: str, value: int) -> None:
    kw = {"generation": 1, "seq": 1, "link": 0, field: value}
    with pytest.raises(ValueError):
        encode(Frame(FrameKind.HEARTBEAT, "prod", "n1", payload=b"", **kw), KEY)


@given(st.text(max_size=80), st.text(max_size=80))
def test_encode_either_raises_valueerror_or_round_trips(cluster: str, sender: str) -> None:
    f = Frame(FrameKind.HEARTBEAT, cluster, sender, 1, 1, 0, b"")
    try:
        data = encode(f, KEY)
    except ValueError:
        return
    assert decode(data, KEY) == f


# ---- frame: every reject reason from bytes ------------------------------------------------


def test_oversized() -> None:
    assert decode(b"\x00" * (MAX_FRAME + 1), KEY) == Rejected(RejectReason.OVERSIZED, "1401 bytes")
    valid = encode(sample_frame(), KEY)
    assert decode(valid + b"\x00" * (MAX_FRAME + 1 - len(valid)), KEY).reason \
        is RejectReason.OVERSIZED


@given(st.binary(min_size=MAX_FRAME + 1, max_size=MAX_FRAME + 200))
def test_anything_too_big_is_oversized(data: bytes) -> None:
    assert decode(data, KEY) == Rejected(RejectReason.OVERSIZED, f"{len(data)} bytes")


@given(frames())
@settings(max_examples=20)
def test_every_prefix_is_rejected(f: Frame) -> None:
    data = encode(f, KEY)
    for n in range(len(data)):
        got = decode(data[:n], KEY)
        assert isinstance(got, Rejected)
        # Below the smallest possible frame: truncated. Above: the MAC no longer matches.
        assert got.reason is (RejectReason.TRUNCATED if n < MIN_FRAME else RejectReason.BAD_AUTH)


def test_min_frame_is_the_smallest_thing_worth_authenticating() -> None:
    # Names cannot be empty, so the smallest real frame is MIN_FRAME + 2 bytes; anything
    # shorter than MIN_FRAME cannot even hold the fixed fields and the MAC.
    smallest = encode(Frame(FrameKind.HEARTBEAT, "c", "n", 0, 0, 0, b""), KEY)
    assert len(smallest) == MIN_FRAME + 2
    assert decode(smallest[: MIN_FRAME - 1], KEY) == Rejected(RejectReason.TRUNCATED, "57 bytes")
    assert decode(b"", KEY).reason is RejectReason.TRUNCATED


@given(st.binary(min_size=3, max_size=3).filter(lambda m: m != MAGIC))
def test_bad_magic(magic: bytes) -> None:
    data = encode(sample_frame(), KEY)
    assert decode(magic + data[3:], KEY) == Rejected(RejectReason.BAD_MAGIC)
    # Checked before the MAC: a correctly signed frame with another magic is still bad_magic.
    assert decode(sign(magic + data[3:-MAC_SIZE]), KEY) == Rejected(RejectReason.BAD_MAGIC)


@given(st.integers(0, 255).filter(lambda v: v != VERSION))
def test_bad_version(version: int) -> None:
    data = encode(sample_frame(), KEY)
    body = data[:3] + bytes((version,)) + data[4:-MAC_SIZE]
    assert decode(sign(body), KEY) == Rejected(RejectReason.BAD_VERSION, f"version {version}")
    assert decode(body + data[-MAC_SIZE:], KEY).reason is RejectReason.BAD_VERSION


def test_every_single_bit_flip_is_rejected() -> None:
    data = encode(sample_frame(), KEY)
    for i in range(len(data)):
        for bit in range(8):
            flipped = bytearray(data)
            flipped[i] ^= 1 << bit
            got = decode(bytes(flipped), KEY)
            expected = (RejectReason.BAD_MAGIC if i < 3 else
                        RejectReason.BAD_VERSION if i == 3 else RejectReason.BAD_AUTH)
            assert isinstance(got, Rejected) and got.reason is expected, (i, bit)


@given(frames(), st.data())
@settings(max_examples=50)
def test_any_corruption_past_the_header_is_bad_auth(f: Frame, data: st.DataObject) -> None:
    raw = bytearray(encode(f, KEY))
    positions = data.draw(st.sets(st.integers(4, len(raw) - 1), min_size=1, max_size=8))
    for i in positions:
        raw[i] ^= data.draw(st.integers(1, 255))
    assert decode(bytes(raw), KEY) == Rejected(RejectReason.BAD_AUTH)


@given(frames(), st.binary(max_size=64))
@settings(max_examples=50)
def test_wrong_key_is_bad_auth(f: Frame, key: bytes) -> None:
    assume(hmac.new(key, b"", hashlib.sha256).digest() != hmac.new(KEY, b"", hashlib.sha256)
           .digest())
    assert decode(encode(f, KEY), key) == Rejected(RejectReason.BAD_AUTH)
    assert decode(encode(f, key), KEY) == Rejected(RejectReason.BAD_AUTH)


def test_wrong_key_examples() -> None:
    data = encode(sample_frame(), KEY)
    for key in (OTHER_KEY, KEY[:-1], KEY + b"x", b""):
        assert decode(data, key) == Rejected(RejectReason.BAD_AUTH)


F = sample_frame()


@pytest.mark.parametrize("body", [
    pytest.param(body_of(F, kind=0), id="kind-0"),
    pytest.param(body_of(F, kind=5), id="kind-5"),
    pytest.param(body_of(F, kind=255), id="kind-255"),
    pytest.param(body_of(F, cluster=b""), id="empty-cluster"),
    pytest.param(body_of(F, sender=b""), id="empty-sender"),
    pytest.param(body_of(F, cluster=b"c" * 65), id="cluster-65-bytes"),
    pytest.param(body_of(F, sender=b"\xff\xfe"), id="sender-not-utf8"),
    pytest.param(body_of(F, cluster=b"\xed\xa0\x80"), id="cluster-surrogate"),
    pytest.param(body_of(F, cluster=b"\xc0\xaf"), id="cluster-overlong-utf8"),
    pytest.param(body_of(F, length=len(F.payload) + 1), id="length-one-more"),
    pytest.param(body_of(F, length=len(F.payload) - 1), id="length-one-less"),
    pytest.param(body_of(F, length=0), id="length-zero"),
    pytest.param(body_of(F, length=0xFFFF), id="length-max"),
    pytest.param(body_of(F) + b"x", id="trailing-byte"),
    # The sender's length byte points past the end: the name swallows the fixed fields.
    pytest.param(MAGIC + bytes((VERSION, 1, 4)) + b"prod" + bytes((200,)) + b"n" * 40,
                 id="sender-runs-off-the-end"),
    # The cluster name ends exactly at the end of the body: no sender length byte at all.
    pytest.param(MAGIC + bytes((VERSION, 1, 20)) + b"c" * 20, id="nothing-after-cluster"),
    # Names fine, fixed fields cut short (MIN_FRAME still reached by long names).
    pytest.param(MAGIC + bytes((VERSION, 1, 20)) + b"c" * 20 + bytes((20,)) + b"n" * 20
                 + b"\x00" * 5, id="fixed-fields-cut"),
])
def test_authenticated_but_garbled(body: bytes) -> None:
    data = sign(body)
    assert len(data) >= MIN_FRAME
    got = decode(data, KEY)
    assert isinstance(got, Rejected) and got.reason is RejectReason.GARBLED, got
    # The same bytes without our key never get as far as the parser.
    assert decode(data, OTHER_KEY) == Rejected(RejectReason.BAD_AUTH)


def test_each_frame_level_reason_is_reachable_from_bytes() -> None:
    good = encode(sample_frame(), KEY)
    reached = {
        decode(b"\x00" * (MAX_FRAME + 1), KEY).reason,
        decode(good[:10], KEY).reason,
        decode(b"XYZ" + good[3:], KEY).reason,
        decode(good[:3] + b"\x01" + good[4:], KEY).reason,
        decode(good, OTHER_KEY).reason,
        decode(sign(body_of(F, kind=9)), KEY).reason,
    }
    # The rest (wrong_cluster, unknown_sender, replay, stale_generation) are given by the
    # layers above decode: node.py and replay.py.
    assert reached == {RejectReason.OVERSIZED, RejectReason.TRUNCATED, RejectReason.BAD_MAGIC,
                       RejectReason.BAD_VERSION, RejectReason.BAD_AUTH, RejectReason.GARBLED}


# ---- frame: garbage never raises ----------------------------------------------------------


def check_decoded(data: bytes, got: Frame | Rejected) -> None:
    assert isinstance(got, (Frame, Rejected))
    if isinstance(got, Rejected):
        assert isinstance(got.reason, RejectReason) and isinstance(got.detail, str)
    else:
        # Whatever decode accepts is canonical: encoding it again gives the very same bytes.
        assert encode(got, KEY) == data


@given(st.binary(max_size=MAX_FRAME + 10))
def test_decode_never_raises(data: bytes) -> None:
    check_decoded(data, decode(data, KEY))


@given(st.binary(min_size=MIN_FRAME - 4 - MAC_SIZE, max_size=MAX_FRAME - 4 - MAC_SIZE))
def test_decode_never_raises_on_authenticated_garbage(rest: bytes) -> None:
    data = sign(MAGIC + bytes((VERSION,)) + rest)
    got = decode(data, KEY)
    check_decoded(data, got)
    # Past the MAC only a parse failure is possible.
    assert isinstance(got, Frame) or got.reason is RejectReason.GARBLED


@st.composite
def mutated_bodies(draw: st.DrawFn) -> bytes:
    """A valid body with a few bytes changed, cut or added: gets deep into the parser."""
    body = bytearray(encode(draw(frames()), KEY)[:-MAC_SIZE])
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["set", "cut", "add"]))
        if op == "set":
            body[draw(st.integers(4, len(body) - 1))] = draw(st.integers(0, 255))
        elif op == "cut" and len(body) > 5:
            i = draw(st.integers(5, len(body) - 1))
            del body[i: i + draw(st.integers(1, 20))]
        else:
            i = draw(st.integers(4, len(body)))
            body[i:i] = draw(st.binary(min_size=1, max_size=20))
    return bytes(body)


@given(mutated_bodies())
def test_decode_never_raises_on_authenticated_mutations(body: bytes) -> None:
    data = sign(body)
    got = decode(data, KEY)
    check_decoded(data, got)
    if len(data) <= MAX_FRAME and len(data) >= MIN_FRAME:
        assert isinstance(got, Frame) or got.reason is RejectReason.GARBLED


# ---- messages -----------------------------------------------------------------------------

group_names = st.text(min_size=1, max_size=20)
assignments = st.builds(Assignment, epoch=st.integers(0, 2**62 - 1),
                        by=st.text(max_size=10), owner=st.text(max_size=10))


u64 = st.integers(0, 2**64 - 1)


@st.composite
def heartbeats(draw: st.DrawFn) -> Heartbeat:
    gnames = draw(st.lists(group_names, unique=True, max_size=6))
    groups = tuple(
        GroupReport(n, draw(st.sampled_from(GroupState)), draw(assignments), draw(st.booleans()))
        for n in gnames
    )
    echo = draw(st.none() | st.builds(Echo, u64, u64, u64))
    names = draw(st.lists(group_names, unique=True, max_size=3))
    replicas = tuple((n, draw(replicas_st)) for n in names)
    return Heartbeat(draw(st.sampled_from(NodeStatus)), groups, made=draw(u64), echo=echo,
                     replicas=replicas)


epochs = st.tuples(u64, u64)
replicas_st = st.builds(Replica, st.sampled_from(["primary", "standby", "stopped", "failed"]),
                        u64, u64, u64, st.none() | st.text(min_size=1, max_size=10), u64,
                        epochs, st.none() | epochs, epochs)


@given(heartbeats())
def test_message_round_trip(hb: Heartbeat) -> None:
    data = serialize(hb)
    assert parse(data) == hb
    for g in hb.groups:
        assert hb.group(g.name) == g
    for name, r in hb.replicas:
        assert hb.replica(name) == r


def test_message_exact_form() -> None:
    hb = Heartbeat(NodeStatus.UP, (
        GroupReport("web", GroupState.RUNNING, Assignment(3, "n2", "n1"), True),
        GroupReport("db", GroupState.STOPPED, Assignment(0, "", "n2"), False),
    ), made=1234, echo=Echo(17, 42, 5))
    data = (b'{"s":"up","g":[["web","running","n1",3,"n2",1],["db","stopped","n2",0,"",0]],'
            b'"t":1234,"e":[17,42,5]}')
    assert serialize(hb) == data
    assert parse(data) == hb
    assert hb.group("nope") is None


def test_message_in_a_frame() -> None:
    # A heartbeat of a few groups fits a frame and survives both codecs.
    hb = Heartbeat(NodeStatus.LEAVING, tuple(
        GroupReport(f"group-{i}", GroupState.STOPPING, Assignment(2**40, "node-a", "node-b"),
                    i % 2 == 0) for i in range(10)))
    f = sample_frame(serialize(hb))
    got = decode(encode(f, KEY), KEY)
    assert isinstance(got, Frame) and parse(got.payload) == hb


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5),
    max_leaves=20,
)


def check_parsed(data: bytes, got: Heartbeat | None) -> None:
    assert got is None or isinstance(got, Heartbeat)
    if got is not None:
        assert parse(serialize(got)) == got


@given(st.binary(max_size=2000))
def test_parse_never_raises_on_bytes(data: bytes) -> None:
    check_parsed(data, parse(data))


@given(json_values)
def test_parse_never_raises_on_json(value: object) -> None:
    data = json.dumps(value).encode()
    check_parsed(data, parse(data))


VALID_GROUP = ["web", "running", "n1", 3, "n2", 1]


@given(st.integers(0, 5), json_values)
def test_parse_checks_every_group_field(index: int, value: object) -> None:
    item = list(VALID_GROUP)
    item[index] = value
    got = parse(json.dumps({"s": "up", "g": [item], "t": 0}).encode())
    ok = [
        isinstance(value, str) and value != "",  # name
        value in {s.value for s in GroupState} if isinstance(value, str) else False,
        isinstance(value, str),  # owner
        type(value) is int and 0 <= value < 2**62,  # epoch
        isinstance(value, str),  # by
        type(value) is int and value in (0, 1),  # eligible
    ][index]
    assert (got is not None) == ok, (index, value, got)


VALID_REPLICA = ["db", "standby", 7, 2, 100, "n1", 50, 3, 1, [3, 1], 0, 0]


def test_replica_exact_form() -> None:
    r = Replica("primary", 7, 2, 100, "n2", 50, (3, 1), None, (0, 0))
    hb = Heartbeat(NodeStatus.UP, (), made=1, replicas=(("db", r),))
    data = (b'{"s":"up","g":[],"t":1,"r":[["db","primary",7,2,100,"n2",50,3,1,[],0,0]]}')
    assert serialize(hb) == data and parse(data) == hb
    assert hb.replica("db") == r and hb.replica("web") is None
    assert parse(json.dumps({"s": "up", "g": [], "t": 0, "r": [VALID_REPLICA]}).encode()
                 ).replica("db") == Replica(  # type: ignore[union-attr]
        "standby", 7, 2, 100, "n1", 50, (3, 1), (3, 1), (0, 0))


@given(st.integers(0, 11), json_values)
def test_parse_checks_every_replica_field(index: int, value: object) -> None:
    row = list(VALID_REPLICA)
    row[index] = value
    got = parse(json.dumps({"s": "up", "g": [], "t": 0, "r": [row]}).encode())
    u64_ok = type(value) is int and 0 <= value < 2**64
    ok = [
        isinstance(value, str) and value != "",  # group name
        value in ("primary", "standby", "stopped", "failed"),  # role
        u64_ok, u64_ok, u64_ok,  # system id, timeline, lsn
        isinstance(value, str),  # sync_with ("": none)
        u64_ok, u64_ok, u64_ok,  # sync_from, epoch
        isinstance(value, list) and (value == [] or (len(value) == 2 and all(
            type(x) is int and 0 <= x < 2**64 for x in value))),  # release_ask
        u64_ok, u64_ok,  # released
    ][index]
    assert (got is not None) == ok, (index, value, got)


def test_parse_refuses_bad_replica_lists() -> None:
    bad: object
    for bad in ({}, [VALID_REPLICA, VALID_REPLICA], [VALID_REPLICA[:11]], [[*VALID_REPLICA, 0]],
                "x", [None]):
        assert parse(json.dumps({"s": "up", "g": [], "t": 0, "r": bad}).encode()) is None, bad


@given(json_values)
def test_parse_checks_status(value: object) -> None:
    got = parse(json.dumps({"s": value, "g": [], "t": 0}).encode())
    assert (got is not None) == (value in ("starting", "up", "leaving"))


@given(json_values)
def test_parse_checks_group_list(value: object) -> None:
    got = parse(json.dumps({"s": "up", "g": value, "t": 0}).encode())
    assert got is None or (value == [] and got == Heartbeat(NodeStatus.UP, ()))


def doc(**kw: object) -> bytes:
    return json.dumps({"s": "up", "g": [VALID_GROUP], "t": 0, **kw}).encode()


def group(**changes: object) -> bytes:
    fields = ["name", "state", "owner", "epoch", "by", "eligible"]
    item = [changes.get(f, v) for f, v in zip(fields, VALID_GROUP)]
    return json.dumps({"s": "up", "g": [item], "t": 0}).encode()


@pytest.mark.parametrize("data", [
    pytest.param(b"", id="empty"),
    pytest.param(b"\xff\xfe\x00", id="not-utf8"),
    pytest.param(b'{"t":0,"s":"up","g":[]', id="truncated-json"),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, id="deeply-nested"),
    pytest.param(b"NaN", id="nan"),
    pytest.param(b"[]", id="top-level-list"),
    pytest.param(b'"up"', id="top-level-string"),
    pytest.param(b'{"t":0,"s":"up"}', id="missing-groups"),
    pytest.param(b'{"t":0,"g":[]}', id="missing-status"),
    pytest.param(doc(x=1), id="extra-key"),
    pytest.param(b'{"t":0,"s":"down","g":[]}', id="unknown-status"),
    pytest.param(b'{"t":0,"s":"UP","g":[]}', id="status-case"),
    pytest.param(b'{"t":0,"s":1,"g":[]}', id="status-int"),
    pytest.param(b'{"t":0,"s":["up"],"g":[]}', id="status-list"),
    pytest.param(b'{"t":0,"s":{"up":1},"g":[]}', id="status-dict"),
    pytest.param(b'{"t":0,"s":"up","g":{}}', id="groups-dict"),
    pytest.param(b'{"t":0,"s":"up","g":"web"}', id="groups-string"),
    pytest.param(b'{"t":0,"s":"up","g":[["web","running","n1",3,"n2"]]}', id="item-too-short"),
    pytest.param(b'{"t":0,"s":"up","g":[["web","running","n1",3,"n2",1,1]]}',
                 id="item-too-long"),
    pytest.param(b'{"t":0,"s":"up","g":[{"name":"web"}]}', id="item-dict"),
    pytest.param(b'{"t":0,"s":"up","g":[' + json.dumps(VALID_GROUP).encode() + b","
                 + json.dumps(VALID_GROUP).encode() + b"]}", id="duplicate-group"),
    pytest.param(group(name=""), id="empty-name"),
    pytest.param(group(name=1), id="name-int"),
    pytest.param(group(name=None), id="name-null"),
    pytest.param(group(state="on"), id="unknown-state"),
    pytest.param(group(state=["running"]), id="state-list"),
    pytest.param(group(owner=None), id="owner-null"),
    pytest.param(group(by=7), id="by-int"),
    pytest.param(group(epoch=True), id="epoch-true"),
    pytest.param(group(epoch=False), id="epoch-false"),
    pytest.param(group(epoch=-1), id="epoch-negative"),
    pytest.param(group(epoch=2**62), id="epoch-too-big"),
    pytest.param(group(epoch=3.0), id="epoch-float"),
    pytest.param(group(epoch="3"), id="epoch-string"),
    pytest.param(group(eligible=True), id="eligible-bool"),
    pytest.param(group(eligible=2), id="eligible-2"),
    pytest.param(group(eligible=1.0), id="eligible-float"),
    pytest.param(group(eligible=[1]), id="eligible-list"),
    pytest.param(group(eligible=None), id="eligible-null"),
    pytest.param(b'{"s":"up","g":[]}', id="missing-made"),
    pytest.param(doc(t=-1), id="made-negative"),
    pytest.param(doc(t=2**64), id="made-too-big"),
    pytest.param(doc(t=1.5), id="made-float"),
    pytest.param(doc(t=True), id="made-bool"),
    pytest.param(doc(t="1"), id="made-string"),
    pytest.param(doc(e=[1, 2]), id="echo-too-short"),
    pytest.param(doc(e=[1, 2, 3, 4]), id="echo-too-long"),
    pytest.param(doc(e={"g": 1}), id="echo-dict"),
    pytest.param(doc(e=[1, -2, 3]), id="echo-negative"),
    pytest.param(doc(e=[1, 2, 2**64]), id="echo-too-big"),
    pytest.param(doc(e=[1, True, 3]), id="echo-bool"),
    pytest.param(doc(e=None), id="echo-null"),
])
def test_parse_rejects(data: bytes) -> None:
    assert parse(data) is None


@pytest.mark.parametrize("data,expected", [
    (group(epoch=0), 0), (group(epoch=2**62 - 1), 2**62 - 1), (group(eligible=0), False),
])
def test_parse_accepts_the_edges(data: bytes, expected: object) -> None:
    got = parse(data)
    assert got is not None
    assert expected in (got.groups[0].assignment.epoch, got.groups[0].eligible)


@example(hb=Heartbeat(NodeStatus.UP, ()))
@given(heartbeats())
def test_message_parse_accepts_any_json_spelling(hb: Heartbeat) -> None:
    # Whitespace and key order are not part of the format.
    obj = json.loads(serialize(hb))
    spelled = json.dumps(dict(reversed(obj.items())), indent=2, ensure_ascii=False)
    assert parse(spelled.encode()) == hb


def test_module_has_no_forbidden_imports() -> None:
    # The wire layer is sans-IO: no sockets, clocks, randomness or logging.
    import vigil.wire.frame as frame_mod
    import vigil.wire.messages as messages_mod
    import vigil.wire.replay as replay_mod

    for mod in (frame_mod, messages_mod, replay_mod, wire):
        for forbidden in ("socket", "asyncio", "time", "random", "logging", "os"):
            assert forbidden not in vars(mod), (mod.__name__, forbidden)
