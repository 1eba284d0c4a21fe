"""The control-socket codec: round trips, and garbage that never raises."""

from __future__ import annotations

from hypothesis import given, strategies as st

from vigil.control import protocol as p

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def test_round_trips() -> None:
    for req in (p.Request("status"), p.Request("cleanup", {"group": "web"})):
        assert p.decode_request(p.encode_request(req)) == req
    ok = p.Response(True, {"message": "x"})
    assert p.decode_response(p.encode_response(ok)) == ok
    err = p.Response(False, None, p.ErrorCode.REFUSED, "n2 is not up")
    assert p.decode_response(p.encode_response(err)) == err


def test_each_refusal_names_what_was_wrong() -> None:
    cases = {
        b"nonsense": (p.ErrorCode.BAD_REQUEST, "JSON"),
        b"[1]": (p.ErrorCode.BAD_REQUEST, "object"),
        b'{"v": 2, "cmd": "status"}': (p.ErrorCode.VERSION_MISMATCH, "version 2"),
        b'{"v": 1, "cmd": "reboot"}': (p.ErrorCode.UNKNOWN_COMMAND, "reboot"),
        b'{"v": 1, "cmd": "status", "args": {"x": 1}}': (p.ErrorCode.BAD_REQUEST, "'x'"),
        b'{"v": 1, "cmd": "cleanup", "args": {"group": 3}}': (p.ErrorCode.BAD_REQUEST, "str"),
        b'{"v": 1, "cmd": "status", "extra": 1}': (p.ErrorCode.BAD_REQUEST, "expected"),
        b"x" * (p.MAX_MESSAGE + 1): (p.ErrorCode.TOO_LARGE, "exceeds"),
    }
    for data, (code, word) in cases.items():
        got = p.decode_request(data)
        assert isinstance(got, p.ProtocolError) and got.code is code, (data[:40], got)
        assert word in got.message


@given(st.binary(max_size=300))
def test_garbage_bytes_never_raise(data: bytes) -> None:
    assert isinstance(p.decode_request(data), (p.Request, p.ProtocolError))
    assert isinstance(p.decode_response(data), (p.Response, p.ProtocolError))


@given(json_values)
def test_any_json_value_never_raises(value: object) -> None:
    import json

    data = json.dumps(value).encode()
    assert isinstance(p.decode_request(data), (p.Request, p.ProtocolError))
    assert isinstance(p.decode_response(data), (p.Response, p.ProtocolError))
