"""wireguard-go's configuration protocol (the cross-platform UAPI) as pure functions.

Theory of operation
-------------------
The protocol is documented at https://www.wireguard.com/xplatform/ and implemented in
wireguard-go's ``device/uapi.go``; wg(8) speaks it to every userspace WireGuard. A client
writes one operation line, ``get=1`` or ``set=1``, then ``key=value`` lines, then an empty
line; the server answers (for ``get``, with the device's ``key=value`` lines first) with
``errno=N`` and an empty line. Several requests may follow on one connection.

Here bytes become typed values and typed values become bytes; nothing touches a socket,
the relay or a clock. :class:`RequestReader` frames a byte stream into :class:`Get`,
:class:`Set` or :class:`UapiError` values; :func:`parse_set` turns a ``set`` body into
device and per-peer operations, checking every line the way wireguard-go does (hex keys of
exactly 32 bytes, ``strconv.ParseUint`` numbers, ``netip`` addresses and prefixes, ``true``
as the only flag value) before anything is applied, so a bad request changes nothing;
:func:`render_get` writes a :class:`DeviceState` in wireguard-go's order and format.

Errors carry wireguard-go's ``errno`` values (negated Linux errnos, from its ``ipc``
package): a line without ``=`` is EPROTO, an unknown key or a bad value EINVAL, an
unreadable request EIO, a port that cannot be bound EADDRINUSE. Input is bounded: a line
longer than wireguard-go's 64 KiB scanner limit, or a request past :data:`MAX_REQUEST`, is
EIO and closes the connection (its remainder is never stored). An unknown operation line
gets EINVAL and the connection closes (wireguard-go closes it without a reply).
"""

import ipaddress
import math
import re
from dataclasses import dataclass, field
from typing import Optional, Tuple

__all__ = [
    "ERRNO_IO", "ERRNO_INVALID", "ERRNO_PORT_IN_USE", "ERRNO_PROTOCOL", "ERRNO_UNKNOWN", "MAX_LINE",
    "MAX_REQUEST", "AllowedIP", "DeviceState", "Endpoint", "Fwmark", "Get", "ListenPort", "PeerSection",
    "PeerState", "PersistentKeepalive", "PresharedKey", "PrivateKey", "Remove", "ReplaceAllowedIPs",
    "ReplacePeers", "RequestReader", "Set", "UapiError", "UpdateOnly", "encode_errno", "parse_set",
    "render_get",
]

# wireguard-go's ipc.IpcError* values.
ERRNO_IO = -5             # EIO: the request could not be read
ERRNO_INVALID = -22       # EINVAL: unknown key or bad value
ERRNO_PROTOCOL = -71      # EPROTO: a line without '='
ERRNO_PORT_IN_USE = -98   # EADDRINUSE: listen_port cannot be bound, fwmark cannot be set
ERRNO_UNKNOWN = -55       # anything else (a bug on our side)

MAX_LINE = 64 * 1024          # bufio.Scanner's MaxScanTokenSize: wireguard-go fails longer lines with EIO
MAX_REQUEST = 1024 * 1024     # a set of ~3000 peers with psk, endpoint and an allowed IP each
KEY_SIZE = 32

_DIGITS = re.compile(r"[0-9]+\Z")
_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}\Z")


class UapiError(Exception):
    """A request that cannot be served: ``errno`` goes on the wire, ``reason`` is a counter name.

    ``fatal``: the stream cannot be trusted any more; the server replies, then closes.
    """

    def __init__(self, errno, reason, message, fatal=False):
        super().__init__(message)
        self.errno = errno
        self.reason = reason
        self.message = message
        self.fatal = fatal


def _invalid(reason, message):
    return UapiError(ERRNO_INVALID, reason, message)


# ---- operations ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Get:
    """``get=1``: describe the device."""


@dataclass(frozen=True)
class PrivateKey:
    key: Optional[bytes] = field(repr=False)   # clamped; None: the all-zero key, which removes it


@dataclass(frozen=True)
class ListenPort:
    port: int                                  # 0: any free port


@dataclass(frozen=True)
class Fwmark:
    mark: int                                  # 0: none


@dataclass(frozen=True)
class ReplacePeers:
    """Remove every peer before the peer sections that follow."""


@dataclass(frozen=True)
class Remove:
    """Remove this peer."""


@dataclass(frozen=True)
class UpdateOnly:
    """Change this peer only if it exists already; never create it."""


@dataclass(frozen=True)
class PresharedKey:
    key: Optional[bytes] = field(repr=False)   # None: the all-zero key, i.e. none


@dataclass(frozen=True)
class Endpoint:
    host: str                                  # an IP literal (IPv6 without brackets)
    port: int


@dataclass(frozen=True)
class PersistentKeepalive:
    seconds: int                               # 0: off


@dataclass(frozen=True)
class ReplaceAllowedIPs:
    """Forget this peer's allowed IPs before the allowed_ip lines that follow."""


@dataclass(frozen=True)
class AllowedIP:
    network: ipaddress._BaseNetwork            # host bits cleared, as wireguard-go's trie stores it
    remove: bool = False                       # ``allowed_ip=-PREFIX``: take it away again


@dataclass(frozen=True)
class PeerSection:
    public_key: bytes
    operations: Tuple[object, ...] = ()


@dataclass(frozen=True)
class Set:
    """``set=1``: device operations, then peer sections, each in the order given."""

    device: Tuple[object, ...] = ()
    peers: Tuple[PeerSection, ...] = ()


# ---- framing --------------------------------------------------------------------------------

class RequestReader:
    """Splits a byte stream into Get, Set and UapiError values, holding at most one bounded request."""

    def __init__(self, max_line=MAX_LINE, max_request=MAX_REQUEST):
        self.max_line = max_line
        self.max_request = max_request
        self._buffer = bytearray()
        self._operation = None      # "get" or "set" once its line has arrived
        self._body = []             # the set body's lines so far
        self._body_size = 0
        self._broken = False        # a fatal error was returned: ignore everything after it

    def feed(self, data):
        if not self._broken:
            self._buffer += data

    def next_item(self):
        """The next complete request or error, or None until more bytes arrive."""
        while not self._broken:
            newline = self._buffer.find(b"\n")
            if newline < 0:
                if len(self._buffer) > self.max_line:
                    return self._fatal(ERRNO_IO, "oversized", "a line longer than %d bytes" % self.max_line)
                return None
            if newline > self.max_line:
                return self._fatal(ERRNO_IO, "oversized", "a line longer than %d bytes" % self.max_line)
            line = bytes(self._buffer[:newline]).decode("latin-1")
            del self._buffer[:newline + 1]
            item = self._line(line)
            if item is not None:
                return item
        return None

    def end_of_input(self):
        """The peer half-closed: a ``set`` without its empty line is complete (as wireguard-go's
        scanner ends at EOF); anything else left over is dropped. Returns an item or None."""
        if self._broken or self._operation != "set":
            return None
        if self._buffer:
            item = self._line(bytes(self._buffer).decode("latin-1"))
            self._buffer.clear()
            if item is not None:
                return item
        return self._finish_set()

    def _line(self, line):
        if self._operation is None:
            if line == "get=1":
                self._operation = "get"
                return None
            if line == "set=1":
                self._operation = "set"
                return None
            return self._fatal(ERRNO_INVALID, "unknown_operation",
                               "invalid UAPI operation %s (expected get=1 or set=1)" % _quote(line))
        if self._operation == "get":
            self._operation = None
            if line:
                return self._fatal(ERRNO_INVALID, "trailing_characters", "trailing characters after get=1")
            return Get()
        if not line:
            return self._finish_set()
        self._body_size += len(line) + 1
        if self._body_size > self.max_request:
            return self._fatal(ERRNO_IO, "oversized", "a set request larger than %d bytes" % self.max_request)
        self._body.append(line[:-1] if line.endswith("\r") else line)   # Go's ScanLines drops a CR
        return None

    def _finish_set(self):
        body, self._body, self._body_size, self._operation = self._body, [], 0, None
        try:
            return parse_set(body)
        except UapiError as error:
            return error

    def _fatal(self, errno, reason, message):
        self._broken = True
        self._buffer.clear()
        self._body = []
        return UapiError(errno, reason, message, fatal=True)


_KEY_LIKE = re.compile(r"[0-9A-Za-z+/=]{32,}")


def _quote(text, limit=64):
    """``text`` for a log line, cut short, with anything that could be a key (a long hex or
    base64 run, e.g. from a line whose '=' went missing) left out."""
    text = _KEY_LIKE.sub(lambda match: "<%d characters>" % len(match.group()), text)
    return repr(text[:limit] + ("..." if len(text) > limit else ""))


# ---- set ------------------------------------------------------------------------------------

def parse_set(lines):
    """The lines of a ``set`` body (no operation line, no empty line) -> Set; raise UapiError."""
    device, peers = [], []
    public_key, operations = None, []
    for line in lines:
        key, separator, value = line.partition("=")
        if not separator:
            raise UapiError(ERRNO_PROTOCOL, "malformed_line", "failed to parse line %s" % _quote(line))
        if key == "public_key":
            if public_key is not None:
                peers.append(PeerSection(public_key, tuple(operations)))
            public_key, operations = _key(value, "public_key"), []
        elif public_key is None:
            device.append(_device_operation(key, value))
        else:
            operation = _peer_operation(key, value)
            if operation is not None:
                operations.append(operation)
    if public_key is not None:
        peers.append(PeerSection(public_key, tuple(operations)))
    return Set(tuple(device), tuple(peers))


def _device_operation(key, value):
    if key == "private_key":
        raw = _key(value, "private_key")
        return PrivateKey(None if not any(raw) else _clamp(raw))
    if key == "listen_port":
        return ListenPort(_unsigned(value, 16, "listen_port"))
    if key == "fwmark":
        return Fwmark(_unsigned(value, 32, "fwmark"))
    if key == "replace_peers":
        _true(value, "replace_peers")
        return ReplacePeers()
    raise _invalid("unknown_key", "invalid UAPI device key: %s" % _quote(key))


def _peer_operation(key, value):
    """A peer line's operation; None for protocol_version=1, which changes nothing."""
    if key in ("remove", "update_only", "replace_allowed_ips"):
        _true(value, key)
        return {"remove": Remove, "update_only": UpdateOnly, "replace_allowed_ips": ReplaceAllowedIPs}[key]()
    if key == "preshared_key":
        raw = _key(value, "preshared_key")
        return PresharedKey(raw if any(raw) else None)
    if key == "endpoint":
        return _endpoint(value)
    if key == "persistent_keepalive_interval":
        return PersistentKeepalive(_unsigned(value, 16, "persistent_keepalive_interval"))
    if key == "allowed_ip":
        return _allowed_ip(value)
    if key == "protocol_version":
        if value != "1":
            raise _invalid("bad_value", "invalid protocol version: %s" % _quote(value))
        return None
    raise _invalid("unknown_key", "invalid UAPI peer key: %s" % _quote(key))


def _key(value, name):
    """loadExactHex: 64 hex digits, either case; the all-zero key is the caller's to interpret."""
    if not _HEX_KEY.match(value):
        raise _invalid("bad_key", "failed to set %s: not 64 hex digits (32 bytes)" % name)
    return bytes.fromhex(value)


def _clamp(raw):
    key = bytearray(raw)
    key[0] &= 248
    key[31] = (key[31] & 127) | 64
    return bytes(key)


def _unsigned(value, bits, name):
    """strconv.ParseUint(value, 10, bits): ASCII digits only, no sign, no spaces."""
    if not _DIGITS.match(value) or int(value) >= 1 << bits:
        raise _invalid("bad_value", "failed to parse %s: %s is not a %d-bit unsigned number" % (name, _quote(value),
                                                                                               bits))
    return int(value)


def _true(value, name):
    if value != "true":
        raise _invalid("bad_value", "failed to set %s, invalid value: %s" % (name, _quote(value)))


def _endpoint(value):
    """netip.ParseAddrPort: ``IPv4:port`` or ``[IPv6]:port``; an IP literal, never a name."""
    if value.startswith("["):
        host, bracket, port = value[1:].partition("]")
        ok = bracket and port.startswith(":") and ":" in host
        port = port[1:]
    else:
        host, _, port = value.rpartition(":")
        ok = bool(host) and ":" not in host
    try:
        if not ok:
            raise ValueError
        address = ipaddress.ip_address(host)
        port_number = _unsigned(port, 16, "endpoint")
    except (ValueError, UapiError):
        raise _invalid("bad_value", "failed to set endpoint %s: not IP:port or [IPv6]:port" % _quote(value)) from None
    if port_number == 0:
        raise _invalid("bad_value", "failed to set endpoint %s: port 0" % _quote(value))
    return Endpoint(str(address), port_number)


def _allowed_ip(value):
    """netip.ParsePrefix, with wireguard-go's ``-`` for removal; host bits are cleared."""
    remove = value.startswith("-")
    text = value[1:] if remove else value
    address, slash, bits = text.partition("/")
    try:
        if not slash or not _DIGITS.match(bits) or (len(bits) > 1 and bits[0] == "0") or "%" in address:
            raise ValueError
        network = ipaddress.ip_network("%s/%s" % (ipaddress.ip_address(address), bits), strict=False)
    except ValueError:
        raise _invalid("bad_value", "failed to set allowed ip: %s is not an address/prefix length"
                       % _quote(value)) from None
    return AllowedIP(network, remove)


# ---- get ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PeerState:
    public_key: bytes
    preshared_key: Optional[bytes] = field(default=None, repr=False)
    endpoint: Optional[Tuple[str, int]] = None       # (IP literal, port)
    last_handshake: Optional[float] = None           # Unix seconds
    rx_bytes: int = 0
    tx_bytes: int = 0
    keepalive: int = 0
    allowed_ips: Tuple[str, ...] = ()


@dataclass(frozen=True)
class DeviceState:
    private_key: Optional[bytes] = field(default=None, repr=False)
    listen_port: Optional[int] = None
    fwmark: int = 0
    peers: Tuple[PeerState, ...] = ()


def render_get(device):
    """A ``get`` reply: wireguard-go's lines for ``device``, then ``errno=0`` and the empty line."""
    lines = []
    if device.private_key is not None:
        lines.append("private_key=" + device.private_key.hex())
    if device.listen_port:
        lines.append("listen_port=%d" % device.listen_port)
    if device.fwmark:
        lines.append("fwmark=%d" % device.fwmark)
    for peer in device.peers:
        seconds, nanoseconds = _split_time(peer.last_handshake)
        lines += ["public_key=" + peer.public_key.hex(),
                  "preshared_key=" + (peer.preshared_key or bytes(KEY_SIZE)).hex(),
                  "protocol_version=1"]
        if peer.endpoint is not None:
            host, port = peer.endpoint
            lines.append("endpoint=%s:%d" % ("[%s]" % host if ":" in host else host, port))
        lines += ["last_handshake_time_sec=%d" % seconds, "last_handshake_time_nsec=%d" % nanoseconds,
                  "tx_bytes=%d" % peer.tx_bytes, "rx_bytes=%d" % peer.rx_bytes,
                  "persistent_keepalive_interval=%d" % peer.keepalive]
        lines += ["allowed_ip=" + network for network in peer.allowed_ips]
    return ("\n".join(lines + ["errno=0", "", ""])).encode("ascii") if lines else encode_errno(0)


def _split_time(timestamp):
    if timestamp is None or not math.isfinite(timestamp) or timestamp <= 0:
        return 0, 0
    seconds = int(timestamp)
    nanoseconds = min(int(round((timestamp - seconds) * 1e9)), 999_999_999)
    return seconds, nanoseconds


def encode_errno(errno):
    """The status line every reply ends with, and the empty line after it."""
    return b"errno=%d\n\n" % errno
