"""The control protocol codec: requests from bytes, replies to bytes, no sockets."""

import json

from hypothesis import given, settings, strategies as st

from tunrelay.control import protocol
from tunrelay.control.protocol import MAX_LINE, Request, RequestError, RequestReader


def read_all(reader):
    items = []
    while True:
        item = reader.next_item()
        if item is None:
            return items
        items.append(item)


def reasons(items):
    return [item.reason if isinstance(item, RequestError) else item.command for item in items]


def test_requests_split_on_newlines_across_chunks():
    reader = RequestReader()
    reader.feed(b'{"command": "sta')
    assert reader.next_item() is None
    reader.feed(b'tus"}\r\n\n{"command":"reload","extra":1}\n')
    assert read_all(reader) == [Request("status"), Request("reload")]


def test_bad_json_not_object_no_command_unknown_command_and_bad_utf8_are_errors():
    reader = RequestReader()
    reader.feed(b'{"command": \n[1]\n{"cmd": "status"}\n{"command": "shutdown"}\n\xff\xfe\n{"command":"status"}\n')
    items = read_all(reader)
    assert reasons(items) == ["bad_json", "not_object", "no_command", "unknown_command", "bad_utf8", "status"]
    assert not any(item.fatal for item in items[:-1])
    assert "shutdown" in items[3].message and "status, reload" in items[3].message


def test_deep_nesting_is_bad_json_not_a_recursion_crash():
    reader = RequestReader()
    reader.feed(b"[" * (MAX_LINE - 1) + b"\n")
    assert reasons(read_all(reader)) == ["bad_json"]


def test_oversized_line_is_answered_once_without_buffering_it():
    reader = RequestReader(max_line=100)
    reader.feed(b"x" * 101)
    error = reader.next_item()
    assert isinstance(error, RequestError) and error.reason == "line_too_long" and error.fatal
    reader.feed(b"y" * 10_000)                 # the rest of the long line is discarded as it comes
    assert reader.next_item() is None
    assert len(reader._buffer) == 0
    reader.feed(b'yyy\n{"command":"status"}\n')
    assert read_all(reader) == [Request("status")]


def test_oversized_line_arriving_whole_with_its_newline():
    reader = RequestReader(max_line=100)
    reader.feed(b'{"command":"status","pad":"' + b"z" * 200 + b'"}\n{"command":"reload"}\n')
    assert reasons(read_all(reader)) == ["line_too_long", "reload"]


def test_a_line_of_exactly_the_limit_is_accepted():
    padding = MAX_LINE - len(b'{"command":"status","p":""}')
    line = b'{"command":"status","p":"' + b"a" * padding + b'"}'
    assert len(line) == MAX_LINE
    reader = RequestReader()
    reader.feed(line + b"\n")
    assert read_all(reader) == [Request("status")]


def test_the_line_limit_does_not_depend_on_where_the_stream_is_cut():
    # Found by tests/fuzz (control target): a line of the limit plus a CR was accepted when
    # its newline came in the same read, and was line_too_long when it came in the next.
    status = b'{"command":"status"}'
    stream = status + b"x\r\n" + status + b"\n"
    whole = RequestReader(max_line=len(status) + 1)
    whole.feed(stream)
    cut = RequestReader(max_line=len(status) + 1)
    cut.feed(stream[:len(status) + 2])
    first = read_all(cut)
    cut.feed(stream[len(status) + 2:])
    assert reasons(read_all(whole)) == reasons(first + read_all(cut)) == ["line_too_long", "status"]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8), st.integers(min_value=1, max_value=200))
def test_arbitrary_bytes_never_raise_and_buffer_stays_bounded(chunks, max_line):
    reader = RequestReader(max_line=max_line)
    for chunk in chunks:
        reader.feed(chunk)
        for item in read_all(reader):
            assert isinstance(item, (Request, RequestError))
        assert len(reader._buffer) <= max_line      # only an incomplete, not yet oversized line is kept


def test_status_reply_adds_schema_version_and_time_and_is_one_json_line():
    encoded = protocol.encode_message(protocol.status_reply({"peers": [], "x": float("nan")}, 1234.5))
    assert encoded.endswith(b"\n") and encoded.count(b"\n") == 1
    reply = json.loads(encoded)
    assert reply == {"ok": True, "result": {"peers": [], "x": None, "schema_version": 1, "time": 1234.5}}


def test_encoding_survives_values_json_cannot_carry():
    reply = json.loads(protocol.encode_message({"ok": True, "result": {"when": float("inf"), "obj": object,
                                                                       (1, 2): [b"\x00"]}}))
    assert reply["result"]["when"] is None
    assert isinstance(reply["result"]["obj"], str) and isinstance(reply["result"]["(1, 2)"][0], str)


def test_reload_replies():
    assert protocol.reload_reply((True, "reloaded 2 peers")) == {"ok": True, "message": "reloaded 2 peers"}
    assert protocol.reload_reply((False, "peers[0].name: bad")) == {
        "ok": False, "error": "reload_failed", "message": "peers[0].name: bad"}
    assert protocol.reload_reply("yes")["error"] == "internal_error"
    assert protocol.reload_reply((1, "x"))["error"] == "internal_error"
