"""wireguard-go's UAPI (tunrelay/uapi): framing, ``set`` parsing, and a set replayed on a config.

Contract: ``RequestReader`` never raises: every request becomes a ``Get``, a ``Set`` or an
``UapiError`` value (a fatal one closes the connection). ``apply_set`` raises only
``UapiError``. So nothing may escape.

An input is a byte stream (cut into fuzzed chunks, with lines from a dictionary of the
protocol's keys and values, see ``dict/uapi.dict``). Checks: the items (up to the first
fatal one) do not depend on how the stream was cut; the reader holds at most one bounded
line; every error carries one of wireguard-go's errnos and a one-line message with no key in
it. Each ``Set`` is applied to a running configuration with two peers; what comes out has
unique peer names and public keys, no unicast prefix owned twice, never the device's own
public key as a peer, and survives ``showconf``: its YAML parses back to the same peers,
endpoints, allowed IPs and listen addresses.
"""

import re

from tunrelay import config as configuration
from tunrelay.config_dump import dump
from tunrelay.crypto import keys
from tunrelay.uapi.apply import apply_set
from tunrelay.uapi.protocol import (
    ERRNO_INVALID, ERRNO_IO, ERRNO_PROTOCOL, Get, RequestReader, Set, UapiError)

from ._input import FuzzInput, read_items

REJECTIONS = ()
COVERS = ["tunrelay/uapi/protocol.py", "tunrelay/uapi/apply.py"]
MAX_LEN = 2048
MAX_ITEMS = 8

OWN = bytes([0x50 + n for n in range(32)])
PEER_B, PEER_C = bytes([0x60 + n for n in range(32)]), bytes([0x70 + n for n in range(32)])
PSK = bytes(range(32))
CONFIG = configuration.parse(
    "interface: {name: tr0, addresses: [198.51.100.1/24]}\n"
    "private_key_file: own.key\n"
    "listen: [\"udp://192.0.2.1:51820\", \"tcp://192.0.2.1:51820\"]\n"
    "peers:\n"
    "  - {name: site-b, public_key: \"%s\", endpoint: \"udp://192.0.2.2:51820\",\n"
    "     allowed_ips: [198.51.100.2/32, 203.0.113.0/24], keepalive: 25, preshared_key_file: b.psk}\n"
    "  - {name: site-c, public_key: \"%s\", allowed_ips: [198.51.100.3/32, 224.0.0.5/32]}\n"
    % (keys.encode_key(keys.public_key(PEER_B)), keys.encode_key(keys.public_key(PEER_C))), source="t.yaml")
SECRETS = configuration.Secrets(OWN, {"site-b": PSK})
_ERRNOS = {ERRNO_INVALID, ERRNO_IO, ERRNO_PROTOCOL}
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


def _items(reader, chunks):
    return read_items(reader, chunks, UapiError, MAX_ITEMS, line_slack=1, end=True)


def _summary(item):
    if isinstance(item, (Get, Set)):
        return item
    assert isinstance(item, UapiError), item
    assert item.errno in _ERRNOS, (item.errno, item.reason)
    assert "\n" not in item.message and not _HEX_KEY.search(item.message), item.message
    return ("error", item.errno, item.reason, item.fatal)


def _peers(config):
    return {peer.public_key: (peer.endpoint, frozenset(peer.allowed_ips), peer.keepalive) for peer in config.peers}


def _check_applied(request):
    try:
        config, secrets = apply_set(CONFIG, SECRETS, request)
    except UapiError as error:
        _summary(error)
        return
    names = [peer.name for peer in config.peers]
    assert len(set(names)) == len(names), names
    public_keys = [peer.public_key for peer in config.peers]
    assert len(set(public_keys)) == len(public_keys), public_keys
    if secrets.private_key is not None:
        assert keys.encode_key(keys.public_key(secrets.private_key)) not in public_keys
    unicast = [network for peer in config.peers for network in peer.allowed_ips if not network.is_multicast]
    assert len(set(unicast)) == len(unicast), unicast
    text = dump(config, secrets)
    if config.private_key_file is None:
        text += "private_key_file: k\n"
    again = configuration.parse(text, source="showconf")
    assert _peers(again) == _peers(config), (_peers(again), _peers(config))
    assert again.listen == config.listen, (again.listen, config.listen)


def fuzz_one(data):
    inp = FuzzInput(data)
    limit = inp.choice((16, 256, 64 * 1024))
    stream = inp.rest()
    chunks, offset = [], 0
    cuts = FuzzInput(stream[-8:])
    while offset < len(stream):
        size = cuts.u8() % 64 or len(stream)
        chunks.append(stream[offset:offset + size])
        offset += size
    whole = [_summary(item) for item in _items(RequestReader(limit), [stream])]
    pieces = [_summary(item) for item in _items(RequestReader(limit), chunks)]
    assert pieces == whole, (pieces, whole)
    for item in whole:
        if isinstance(item, Set):
            _check_applied(item)
