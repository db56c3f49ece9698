"""The UAPI as bytes: framing, every key of set, every errno, bounds, and get's exact output."""

import ipaddress

import pytest

from tunrelay.uapi import protocol
from tunrelay.uapi.protocol import (
    ERRNO_INVALID, ERRNO_IO, ERRNO_PROTOCOL, AllowedIP, DeviceState, Endpoint, Fwmark, Get, ListenPort, PeerSection,
    PeerState, PersistentKeepalive, PresharedKey, PrivateKey, Remove, ReplaceAllowedIPs, ReplacePeers, RequestReader,
    Set, UapiError, UpdateOnly, parse_set, render_get,
)

KEY_A = bytes(range(32))
KEY_B = bytes(range(32, 64))


def items(data, chunk=None):
    """Every item the reader yields for ``data``, fed whole or ``chunk`` bytes at a time."""
    reader = RequestReader()
    found = []
    pieces = [data] if chunk is None else [data[i:i + chunk] for i in range(0, len(data), chunk)]
    for piece in pieces:
        reader.feed(piece)
        while (item := reader.next_item()) is not None:
            found.append(item)
    return found


def error_of(lines):
    with pytest.raises(UapiError) as caught:
        parse_set(lines)
    return caught.value


# ---- framing ------------------------------------------------------------------------------

def test_get_and_set_requests_on_one_connection_in_any_chunking():
    data = b"get=1\n\nset=1\nlisten_port=51820\n\nget=1\n\n"
    for chunk in (None, 1, 3):
        assert items(data, chunk) == [Get(), Set(device=(ListenPort(51820),)), Get()]


def test_nothing_until_the_empty_line():
    reader = RequestReader()
    reader.feed(b"set=1\nlisten_port=1\n")
    assert reader.next_item() is None
    reader.feed(b"\n")
    assert reader.next_item() == Set(device=(ListenPort(1),))


def test_a_half_closed_set_without_its_empty_line_is_complete_as_at_wireguard_gos_eof():
    reader = RequestReader()
    reader.feed(b"set=1\nfwmark=7\nlisten_port=9")
    assert reader.next_item() is None
    assert reader.end_of_input() == Set(device=(Fwmark(7), ListenPort(9)))
    idle = RequestReader()
    idle.feed(b"get=1\n")
    assert idle.end_of_input() is None


@pytest.mark.parametrize("data", [b"hello\n", b"\n", b"get=2\n", b"GET=1\n", b"set=1 \n"])
def test_unknown_operation_is_einval_and_fatal(data):
    [error] = items(data + b"get=1\n\n")          # nothing after it is read
    assert (error.errno, error.reason, error.fatal) == (ERRNO_INVALID, "unknown_operation", True)


def test_trailing_characters_after_get_are_einval():
    [error] = items(b"get=1\nx\n")
    assert (error.errno, error.reason) == (ERRNO_INVALID, "trailing_characters")


def test_a_line_past_64k_is_eio_before_its_newline_arrives_and_nothing_is_kept():
    reader = RequestReader()
    reader.feed(b"set=1\nallowed_ip=" + b"1" * protocol.MAX_LINE)
    error = reader.next_item()
    assert (error.errno, error.reason, error.fatal) == (ERRNO_IO, "oversized", True)
    reader.feed(b"x" * 1000 + b"\n\nget=1\n\n")
    assert reader.next_item() is None and len(reader._buffer) == 0


def test_a_request_past_the_bound_is_eio():
    line = b"allowed_ip=198.51.100.0/24\n"
    body = line * (protocol.MAX_REQUEST // len(line) + 1)
    found = items(b"set=1\npublic_key=" + KEY_A.hex().encode() + b"\n" + body + b"\n")
    assert [(item.errno, item.reason) for item in found] == [(ERRNO_IO, "oversized")]


def test_a_set_error_keeps_the_stream_in_step():
    found = items(b"set=1\nbogus=1\n\nget=1\n\n")
    assert isinstance(found[0], UapiError) and not found[0].fatal and found[1] == Get()


def test_carriage_returns_are_dropped_as_by_gos_scanner():
    assert items(b"set=1\nlisten_port=5\r\n\n") == [Set(device=(ListenPort(5),))]


# ---- set: every key -----------------------------------------------------------------------

def test_every_device_key():
    request = parse_set(["private_key=" + KEY_A.hex(), "listen_port=0", "listen_port=65535", "fwmark=0",
                         "fwmark=4294967295", "replace_peers=true"])
    clamped = bytearray(KEY_A)
    clamped[0] &= 248
    clamped[31] = (clamped[31] & 127) | 64
    assert request.device == (PrivateKey(bytes(clamped)), ListenPort(0), ListenPort(65535), Fwmark(0),
                              Fwmark(4294967295), ReplacePeers())
    assert request.device[0].key == bytes(clamped) and request.peers == ()


def test_the_zero_private_key_removes_it_and_hex_is_either_case():
    assert parse_set(["private_key=" + "00" * 32]).device == (PrivateKey(None),)
    assert parse_set(["public_key=" + KEY_A.hex().upper()]).peers == (PeerSection(KEY_A, ()),)


def test_every_peer_key_in_order():
    request = parse_set([
        "public_key=" + KEY_A.hex(), "update_only=true", "preshared_key=" + KEY_B.hex(),
        "endpoint=192.0.2.2:51820", "persistent_keepalive_interval=25", "replace_allowed_ips=true",
        "allowed_ip=198.51.100.2/32", "allowed_ip=2001:db8::/32", "allowed_ip=-203.0.113.0/24",
        "protocol_version=1", "remove=true",
        "public_key=" + KEY_B.hex(), "endpoint=[2001:db8::2]:1", "preshared_key=" + "00" * 32,
        "persistent_keepalive_interval=0"])
    first, second = request.peers
    assert first.public_key == KEY_A and first.operations == (
        UpdateOnly(), PresharedKey(KEY_B), Endpoint("192.0.2.2", 51820), PersistentKeepalive(25), ReplaceAllowedIPs(),
        AllowedIP(ipaddress.ip_network("198.51.100.2/32")), AllowedIP(ipaddress.ip_network("2001:db8::/32")),
        AllowedIP(ipaddress.ip_network("203.0.113.0/24"), remove=True), Remove())
    assert first.operations[1].key == KEY_B
    assert second.operations == (Endpoint("2001:db8::2", 1), PresharedKey(None), PersistentKeepalive(0))


def test_allowed_ip_host_bits_are_cleared_as_wireguard_gos_trie_does():
    [section] = parse_set(["public_key=" + KEY_A.hex(), "allowed_ip=198.51.100.7/24"]).peers
    assert section.operations == (AllowedIP(ipaddress.ip_network("198.51.100.0/24")),)


# ---- set: every errno ---------------------------------------------------------------------

def test_a_line_without_equals_is_eproto():
    error = error_of(["listen_port"])
    assert (error.errno, error.reason) == (ERRNO_PROTOCOL, "malformed_line")


@pytest.mark.parametrize("line, reason", [
    ("bogus=1", "unknown_key"),
    ("public_key=" + KEY_A.hex() + "\nbogus=1", "unknown_key"),
    ("endpoint=192.0.2.1:1", "unknown_key"),               # a peer key before any public_key
    ("private_key=" + "00" * 31, "bad_key"),
    ("private_key=" + "zz" * 32, "bad_key"),
    ("public_key=" + "0" * 63, "bad_key"),
    ("public_key=" + KEY_A.hex() + "\npreshared_key=" + "1" * 66, "bad_key"),
    ("listen_port=65536", "bad_value"),
    ("listen_port=-1", "bad_value"),
    ("listen_port=+1", "bad_value"),
    ("listen_port= 1", "bad_value"),
    ("listen_port=", "bad_value"),
    ("listen_port=\u0661", "bad_value"),                   # a non-ASCII digit
    ("fwmark=4294967296", "bad_value"),
    ("replace_peers=false", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nremove=yes", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nupdate_only=1", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nreplace_allowed_ips=TRUE", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nprotocol_version=2", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\npersistent_keepalive_interval=65536", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nendpoint=example.com:51820", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nendpoint=192.0.2.1", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nendpoint=192.0.2.1:0", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nendpoint=2001:db8::1:51820", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nendpoint=[192.0.2.1]:51820", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nendpoint=192.0.2.01:51820", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nallowed_ip=198.51.100.0", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nallowed_ip=198.51.100.0/33", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nallowed_ip=198.51.100.0/024", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nallowed_ip=fe80::1%eth0/64", "bad_value"),
    ("public_key=" + KEY_A.hex() + "\nallowed_ip=--198.51.100.0/24", "bad_value"),
])
def test_bad_keys_and_values_are_einval(line, reason):
    error = error_of(line.split("\n"))
    assert (error.errno, error.reason, error.fatal) == (ERRNO_INVALID, reason, False)
    assert "\n" not in error.message


@pytest.mark.parametrize("line", ["private_key=" + "ab" * 31 + "zz", "private_key" + "ab" * 32,
                                  "ab" * 32 + "=1", "listen_port=" + "ab" * 32,
                                  "public_key=" + "00" * 32 + "\nendpoint=" + "ab" * 32])
def test_errors_never_carry_key_material(line):
    message = error_of(line.split("\n")).message
    assert "abababababababab" not in message and "\n" not in message


# ---- get ------------------------------------------------------------------------------------

def test_get_output_is_wireguard_gos_lines_in_its_order():
    device = DeviceState(private_key=KEY_A, listen_port=51820, fwmark=0, peers=(
        PeerState(public_key=KEY_B, endpoint=("2001:db8::2", 51820), last_handshake=1700000000.25,
                  rx_bytes=10, tx_bytes=20, keepalive=25, allowed_ips=("198.51.100.2/32", "2001:db8:1::/64")),
        PeerState(public_key=KEY_A, preshared_key=KEY_B)))
    assert render_get(device).decode().split("\n") == [
        "private_key=" + KEY_A.hex(), "listen_port=51820",
        "public_key=" + KEY_B.hex(), "preshared_key=" + "00" * 32, "protocol_version=1",
        "endpoint=[2001:db8::2]:51820", "last_handshake_time_sec=1700000000", "last_handshake_time_nsec=250000000",
        "tx_bytes=20", "rx_bytes=10", "persistent_keepalive_interval=25",
        "allowed_ip=198.51.100.2/32", "allowed_ip=2001:db8:1::/64",
        "public_key=" + KEY_A.hex(), "preshared_key=" + KEY_B.hex(), "protocol_version=1",
        "last_handshake_time_sec=0", "last_handshake_time_nsec=0", "tx_bytes=0", "rx_bytes=0",
        "persistent_keepalive_interval=0", "errno=0", "", ""]


def test_an_empty_device_is_just_errno_and_fwmark_shows_when_set():
    assert render_get(DeviceState()) == b"errno=0\n\n"
    assert render_get(DeviceState(fwmark=51820)) == b"fwmark=51820\nerrno=0\n\n"


def test_nanoseconds_never_round_up_to_a_second():
    text = render_get(DeviceState(peers=(PeerState(public_key=KEY_A, last_handshake=5.9999999999),))).decode()
    assert "last_handshake_time_sec=5\n" in text and "last_handshake_time_nsec=999999999\n" in text


def test_what_get_renders_parses_back_as_a_set_except_its_read_only_keys():
    device = DeviceState(private_key=KEY_A, listen_port=1, peers=(
        PeerState(public_key=KEY_B, endpoint=("192.0.2.2", 2), allowed_ips=("198.51.100.0/24",)),))
    read_only = ("last_handshake_time_sec", "last_handshake_time_nsec", "rx_bytes", "tx_bytes", "errno")
    lines = [line for line in render_get(device).decode().split("\n") if line and not line.startswith(read_only)]
    assert parse_set(lines).peers[0].operations[1] == Endpoint("192.0.2.2", 2)
