"""YAML configuration -> frozen dataclasses, with every error naming its key path and line.

The file is composed into YAML nodes first (not straight into Python values) so each value
keeps the line it came from. Validation walks the node tree with a small reader that
records every problem as ``file:line: key.path: problem`` and carries on, so one run of
``tunrelay check`` reports all mistakes. Unknown keys are errors: a misspelt option must
never be silently ignored on a VPN.
"""

import base64
import ipaddress
import os
from dataclasses import dataclass, field
from typing import Mapping, NamedTuple, Optional, Tuple

import yaml

from tunrelay import endpoints
from tunrelay.config_reader import Reader, kind_of, one_line
from tunrelay.crypto import keys
from tunrelay.metrics import parse_address as parse_metrics_address
from tunrelay.constants import (
    DEFAULT_CONTROL_SOCKET,
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_UAPI_SOCKET,
    DEFAULT_MTU,
    MAX_FRAME,
    MAX_MTU,
    MIN_FRAME,
    MIN_MTU,
)

__all__ = ["ConfigError", "InterfaceConfig", "PeerConfig", "RelayConfig", "Secrets", "default_peer_name", "load",
           "parse", "OFFLOAD_STANDARD", "OFFLOAD_SUPER_PACKETS", "OFFLOAD_OFF"]

IFNAMSIZ = 16  # kernel limit including the terminating NUL
MAX_FWMARK = 2 ** 32 - 1
# interface.offload: absent (the default), true, false.
OFFLOAD_STANDARD = "standard"            # virtio-net headers: coalesced device writes, ordinary reads
OFFLOAD_SUPER_PACKETS = "super-packets"  # ...and TSO super-packet reads (tun), whole to peers that opt in
OFFLOAD_OFF = "off"                      # one plain read and write per packet
IPV6_MIN_MTU = 1280  # RFC 8200 §5


class Secrets(NamedTuple):
    """Key material of a running relay, kept apart from the config (which names files only)."""

    private_key: Optional[bytes] = None     # None: plaintext, or not set yet (tunrelay-wg)
    preshared_keys: Mapping[str, bytes] = {}   # peer name -> 32-byte preshared key


class ConfigError(Exception):
    """One or more configuration problems; ``str()`` is one line per problem."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class InterfaceConfig:
    name: str = "tr0"
    mode: str = "tun"
    mtu: int = DEFAULT_MTU
    addresses: Tuple[ipaddress._BaseNetwork, ...] = ()  # ip_interface objects
    routes: Tuple[ipaddress._BaseNetwork, ...] = ()
    offload: str = OFFLOAD_STANDARD   # see OFFLOAD_* above


@dataclass(frozen=True)
class PeerConfig:
    name: str
    public_key: Optional[str] = None
    endpoint: Optional[endpoints.Endpoint] = None     # the preferred one
    allowed_ips: Tuple[ipaddress._BaseNetwork, ...] = ()
    keepalive: Optional[float] = None
    preshared_key_file: Optional[str] = None
    offload: bool = False   # the peer is a tunrelay with offload on: exchange super-packets whole
    fallback_endpoints: Tuple[endpoints.Endpoint, ...] = ()   # the rest of an endpoint list, in order

    @property
    def endpoints(self):
        """Every endpoint, most preferred first (see tunrelay.endpoint_choice)."""
        return (self.endpoint,) + self.fallback_endpoints if self.endpoint is not None else ()


@dataclass(frozen=True)
class ResponderConfig:
    addresses: Tuple[ipaddress._BaseAddress, ...]   # at most one IPv4 and one IPv6
    mac: bytes                                  # used in tap mode
    services: Tuple[Tuple[int, str], ...] = ()  # (TCP port, "echo" | "discard" | "http" | "module:attribute")
    faults: Optional[Tuple[int, float, float, float]] = None   # (seed, drop, duplicate, reorder) for testing

    @property
    def address(self):
        """The IPv4 address, else the IPv6 one: for readers that show a single address."""
        return self.address_of(4) or self.address_of(6)

    def address_of(self, version):
        return next((address for address in self.addresses if address.version == version), None)


@dataclass(frozen=True)
class RelayConfig:
    interface: InterfaceConfig
    plaintext: bool = False
    private_key_file: Optional[str] = None
    control_socket: str = ""
    listen: Tuple[endpoints.Endpoint, ...] = ()
    peers: Tuple[PeerConfig, ...] = ()
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_frame_size: int = MAX_FRAME
    forward_between_peers: bool = True
    metrics: Optional[str] = None   # "IP:PORT" of the Prometheus endpoint
    dead_peer_timeout: float = 0.0  # declare a peer down after this long without a message; 0: never
    responder: Optional[ResponderConfig] = None
    uapi_socket: Optional[str] = None   # wireguard-go's configuration socket; None: none (plaintext, or false)
    fwmark: int = 0                 # SO_MARK on the UDP sockets (wg's fwmark); 0: none
    source: str = field(default="<string>", compare=False)
    key_lines: dict = field(default_factory=dict, compare=False)  # key path -> line, for key-file errors


def _network_list(reader, node, path, parser, what):
    values = []
    for index, item in enumerate(reader.sequence(node, path)):
        value = reader.parsed(item, "%s[%d]" % (path, index), lambda text: _ip_value(parser, text, what))
        if value is not None:
            values.append(value)
    return tuple(values)


def _ip_value(parser, text, what):
    try:
        return parser(text.strip())
    except ValueError:
        raise ValueError("%r is not %s" % (text, what)) from None


def _interface(reader, node, path):
    fields = reader.mapping(node, path, {"name", "mode", "mtu", "addresses", "routes", "offload"})
    values = {}
    if "name" in fields:
        name = reader.string(fields["name"], path + ".name")
        if name is not None and (len(name) >= IFNAMSIZ or "/" in name or " " in name):
            reader.problem(fields["name"], path + ".name", "must be at most %d characters, without '/' or spaces" % (IFNAMSIZ - 1))
        values["name"] = name
    if "mode" in fields:
        mode = reader.value(fields["mode"], path + ".mode")
        if mode not in ("tun", "tap"):
            given = repr(mode) if isinstance(mode, str) else kind_of(fields["mode"], mode)
            reader.problem(fields["mode"], path + ".mode", "must be 'tun' or 'tap', not %s" % given)
        values["mode"] = mode
    if "mtu" in fields:
        values["mtu"] = reader.number(fields["mtu"], path + ".mtu", MIN_MTU, MAX_MTU)
    if "addresses" in fields:
        values["addresses"] = _network_list(
            reader, fields["addresses"], path + ".addresses",
            ipaddress.ip_interface, "an address with prefix length (e.g. 198.51.100.1/24)")
    if "offload" in fields:
        offload = reader.boolean(fields["offload"], path + ".offload")
        if offload and values.get("mode", "tun") != "tun":
            reader.problem(fields["offload"], path + ".offload", "true (super-packets) is supported in tun mode only")
        if offload is not None:
            values["offload"] = OFFLOAD_SUPER_PACKETS if offload else OFFLOAD_OFF
    if "routes" in fields:
        values["routes"] = _network_list(
            reader, fields["routes"], path + ".routes", lambda text: ipaddress.ip_network(text, strict=True),
            "a network (e.g. 203.0.113.0/24, host bits zero)")
    return InterfaceConfig(**{k: v for k, v in values.items() if v is not None})


def _responder(reader, node, path, interface):
    from tunrelay.responder.services import check_service_spec

    fields = reader.mapping(node, path, {"address", "mac", "services", "faults"})
    if "address" not in fields:
        reader.problem(node, path + ".address", "is required")
        return None
    addresses = _responder_addresses(reader, fields["address"], path + ".address", interface)
    if not addresses:
        return None
    if "mac" in fields:
        mac = reader.parsed(fields["mac"], path + ".mac", endpoints.parse_mac)
        if mac is not None and mac[0] & 1:
            reader.problem(fields["mac"], path + ".mac", "must be a unicast MAC (first octet even)")
    else:
        # Locally administered, unicast, stable: 02:00 and the last four bytes of an address.
        named_after = next((address for address in addresses if address.version == 4), addresses[0])
        mac = bytes([0x02, 0x00]) + named_after.packed[-4:]
    services = []
    service_nodes = fields.get("services")
    for port_node, spec_node in (reader.mapping(service_nodes, path + ".services", _AnyPort())
                                 if service_nodes is not None else {}).items():
        port_path = "%s.services.%s" % (path, port_node)
        spec = reader.string(spec_node, port_path)
        if spec is not None:
            problem = check_service_spec(spec)
            if problem:
                reader.problem(spec_node, port_path, problem)
            services.append((port_node, spec))
    faults = _faults(reader, fields["faults"], path + ".faults") if "faults" in fields else None
    return ResponderConfig(addresses=addresses, mac=mac if mac is not None else bytes(6),
                           services=tuple(services), faults=faults)


def _responder_addresses(reader, node, path, interface):
    """One address or a list of them: at most one IPv4 and one IPv6, each on the interface."""
    nodes = reader.sequence(node, path) if isinstance(node, yaml.SequenceNode) else [node]
    addresses = []
    for index, item in enumerate(nodes):
        item_path = path if len(nodes) == 1 and item is node else "%s[%d]" % (path, index)
        address = reader.parsed(item, item_path, _responder_address)
        if address is None:
            continue
        if any(address.version == other.version for other in addresses):
            reader.problem(item, item_path, "a second IPv%d address; give at most one IPv4 and one IPv6"
                           % address.version)
        elif any(address == own.ip for own in interface.addresses):
            reader.problem(item, item_path, "%s is the interface's own address" % address)
        elif not any(address in own.network for own in interface.addresses):
            reader.problem(item, item_path,
                           "%s is not inside any of interface.addresses, so nothing routes to it" % address)
        elif address.version == 6 and interface.mtu < IPV6_MIN_MTU:
            reader.problem(item, item_path, "IPv6 needs interface.mtu of at least %d" % IPV6_MIN_MTU)
        else:
            addresses.append(address)
    if not nodes:
        reader.problem(node, path, "must name at least one address")
    return tuple(addresses)


def _faults(reader, node, path):
    """Seeded drop/duplicate/reorder on the responder's output (there is no netem here)."""
    fields = reader.mapping(node, path, {"seed", "drop", "duplicate", "reorder"})
    seed = reader.number(fields["seed"], path + ".seed", 0, 2 ** 63) if "seed" in fields else 0
    rates = [reader.number(fields[name], "%s.%s" % (path, name), 0, 1, integer=False) if name in fields else 0.0
             for name in ("drop", "duplicate", "reorder")]
    return (seed, *rates)


class _AnyPort:
    """The key set for ``services``: any TCP port number 1-65535."""

    def __contains__(self, key):
        return isinstance(key, int) and not isinstance(key, bool) and 1 <= key <= 65535

    def __iter__(self):
        return iter(["1-65535"])


def _responder_address(text):
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        raise ValueError("%r is not an IPv4 or IPv6 address" % text) from None
    if address.is_multicast or address.is_unspecified or address.is_loopback:
        raise ValueError("%s must be a unicast host address" % address)
    return address


_PEER_KEYS = {"name", "public_key", "endpoint", "allowed_ips", "keepalive", "preshared_key_file", "offload"}


def _peer(reader, node, path, plaintext):
    fields = reader.mapping(node, path, _PEER_KEYS)
    if not isinstance(node, yaml.MappingNode):
        return None
    if "name" not in fields:
        reader.problem(node, path + ".name", "is required")
    name = reader.string(fields["name"], path + ".name") if "name" in fields else None
    public_key = None
    if "public_key" in fields:
        public_key = reader.string(fields["public_key"], path + ".public_key")
        if public_key is not None and not plaintext:
            reader.parsed(fields["public_key"], path + ".public_key", _checked_public_key)
    elif not plaintext:
        reader.problem(node, path + ".public_key", "is required unless plaintext: true")
    peer_endpoints = _endpoint_list(reader, fields["endpoint"], path + ".endpoint", plaintext) \
        if "endpoint" in fields else ()
    allowed_ips = ()
    if "allowed_ips" in fields:
        allowed_ips = _network_list(
            reader, fields["allowed_ips"], path + ".allowed_ips",
            lambda text: ipaddress.ip_network(text, strict=True), "a network (e.g. 198.51.100.2/32, host bits zero)")
    keepalive = None
    if "keepalive" in fields:
        keepalive = reader.number(fields["keepalive"], path + ".keepalive", 1, 65535)
    psk_file = reader.string(fields["preshared_key_file"], path + ".preshared_key_file") if "preshared_key_file" in fields else None
    offload = False
    if "offload" in fields:
        offload = bool(reader.boolean(fields["offload"], path + ".offload"))
        if offload and plaintext:
            reader.problem(fields["offload"], path + ".offload",
                           "needs encrypted mode (plaintext's 2-byte TCP framing cannot carry 64 KiB frames)")
    if name is None:
        return None
    return PeerConfig(name=name, public_key=public_key, endpoint=peer_endpoints[0] if peer_endpoints else None,
                      fallback_endpoints=peer_endpoints[1:], allowed_ips=allowed_ips,
                      keepalive=keepalive, preshared_key_file=psk_file, offload=offload)


MAX_ENDPOINTS = 8


def _endpoint_list(reader, node, path, plaintext):
    """One endpoint, or a list of them in preference order (tunrelay.endpoint_choice)."""
    expected = "a string or a list of strings"
    if not isinstance(node, yaml.SequenceNode):
        endpoint = reader.parsed(node, path, endpoints.parse_endpoint, expected)
        return (endpoint,) if endpoint is not None else ()
    items = node.value
    if not items:
        reader.problem(node, path, "must name at least one endpoint")
    elif len(items) > MAX_ENDPOINTS:
        reader.problem(node, path, "at most %d endpoints" % MAX_ENDPOINTS)
    elif len(items) > 1 and plaintext:
        reader.problem(node, path, "a list of endpoints needs encrypted mode: only a handshake tells which one works")
    found = []
    for index, item in enumerate(items[:MAX_ENDPOINTS]):
        item_path = "%s[%d]" % (path, index)
        endpoint = reader.parsed(item, item_path, endpoints.parse_endpoint, "a string")
        if endpoint is None:
            continue
        if endpoint in found:
            reader.problem(item, item_path, "%s is given twice" % endpoint)
        else:
            found.append(endpoint)
    return tuple(found)


def default_peer_name(public_key, taken=()):
    """The name of a peer known only by its key (made over the UAPI, or imported from a wg-quick
    file): ``wg-`` and the first 8 characters of its URL-safe base64 key, stable across restarts
    and reloads; the whole key in the unlikely case that another peer already has that name."""
    text = base64.urlsafe_b64encode(keys.decode_key(public_key) if isinstance(public_key, str) else public_key)
    text = text.decode("ascii").rstrip("=")
    short = "wg-" + text[:8]
    return short if short not in taken else "wg-" + text


def _checked_public_key(text):
    try:
        raw = keys.decode_key(text)
    except keys.InvalidKey as error:
        raise ValueError(str(error)) from None
    if keys.is_low_order(raw):
        raise ValueError("is a low-order X25519 point, which no honest peer has")
    return text


_TOP_KEYS = {"interface", "plaintext", "private_key_file", "control_socket", "listen", "peers",
             "idle_timeout", "max_frame_size", "forward_between_peers", "metrics", "responder", "dead_peer_timeout",
             "uapi_socket", "fwmark"}


def parse(text, source="<string>"):
    """Parse configuration text; raise ConfigError listing every problem."""
    reader = Reader(source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise ConfigError([_yaml_problem(source, text, error)]) from None
    except RecursionError:   # PyYAML's composer recurses once per nesting level: "[[[[..."
        raise ConfigError(["%s:1: (yaml): nested too deeply" % source]) from None
    if root is None:
        raise ConfigError(["%s:1: (top): the file is empty; 'interface' is required" % source])
    fields = reader.mapping(root, "", _TOP_KEYS)
    plaintext = False
    if "plaintext" in fields:
        plaintext = bool(reader.boolean(fields["plaintext"], "plaintext"))
    if "interface" in fields:
        interface = _interface(reader, fields["interface"], "interface")
    else:
        reader.problem(root, "interface", "is required")
        interface = InterfaceConfig()
    values = {"interface": interface, "plaintext": plaintext, "source": source}
    key_lines = {}
    values["key_lines"] = key_lines
    if "private_key_file" in fields:
        values["private_key_file"] = reader.string(fields["private_key_file"], "private_key_file")
        key_lines["private_key_file"] = fields["private_key_file"].start_mark.line + 1
    elif not plaintext:
        reader.problem(root, "private_key_file", "is required unless plaintext: true")
    values["control_socket"] = DEFAULT_CONTROL_SOCKET.format(interface=interface.name)
    if "control_socket" in fields:
        values["control_socket"] = reader.string(fields["control_socket"], "control_socket")
    values["uapi_socket"] = _uapi_socket(reader, fields, plaintext, interface)
    if "fwmark" in fields:
        values["fwmark"] = reader.number(fields["fwmark"], "fwmark", 0, MAX_FWMARK)
    if "dead_peer_timeout" in fields:
        values["dead_peer_timeout"] = reader.number(fields["dead_peer_timeout"], "dead_peer_timeout", 0, 86400,
                                                    integer=False)
    if "idle_timeout" in fields:
        values["idle_timeout"] = reader.number(fields["idle_timeout"], "idle_timeout", 0, 86400, integer=False)
    if "max_frame_size" in fields:
        values["max_frame_size"] = reader.number(fields["max_frame_size"], "max_frame_size", MIN_FRAME, MAX_FRAME)
    if "metrics" in fields and reader.parsed(fields["metrics"], "metrics", parse_metrics_address) is not None:
        values["metrics"] = reader.value(fields["metrics"], "metrics")
    if "forward_between_peers" in fields:
        values["forward_between_peers"] = reader.boolean(fields["forward_between_peers"], "forward_between_peers")
    if "responder" in fields:
        values["responder"] = _responder(reader, fields["responder"], "responder", interface)
    listen = []
    for index, item in enumerate(reader.sequence(fields.get("listen"), "listen") if "listen" in fields else []):
        address = reader.parsed(item, "listen[%d]" % index, endpoints.parse_listen)
        if address is not None:
            listen.append(address)
    values["listen"] = tuple(listen)
    peer_nodes = reader.sequence(fields["peers"], "peers") if "peers" in fields else []
    peers = [_peer(reader, item, "peers[%d]" % index, plaintext) for index, item in enumerate(peer_nodes)]
    for index, item in enumerate(peer_nodes):
        for key_node, value_node in (item.value if isinstance(item, yaml.MappingNode) else ()):
            if reader.value(key_node, "peers[%d]" % index) == "preshared_key_file":
                key_lines["peers[%d].preshared_key_file" % index] = value_node.start_mark.line + 1
    _check_peer_set(reader, peer_nodes, peers, plaintext, interface)
    values["peers"] = tuple(peer for peer in peers if peer is not None)
    if reader.problems:
        raise ConfigError(message for _, message in sorted(reader.problems, key=lambda item: item[0]))
    return RelayConfig(**{k: v for k, v in values.items() if v is not None})


def _uapi_socket(reader, fields, plaintext, interface):
    """The UAPI socket path: wg(8)'s default in WireGuard mode, none in plaintext (which has no keys)."""
    if "uapi_socket" not in fields:
        return None if plaintext else DEFAULT_UAPI_SOCKET.format(interface=interface.name)
    node = fields["uapi_socket"]
    if reader.value(node, "uapi_socket") is False:
        return None
    path = reader.string(node, "uapi_socket")
    if path is not None and plaintext:
        reader.problem(node, "uapi_socket", "needs WireGuard mode (plaintext: false); set it to false or remove it")
    return path


def _yaml_problem(source, text, error):
    """One line for a YAML syntax error: its line, and its message without the context
    lines PyYAML adds (a ReaderError, for a control character, has a position, no mark)."""
    mark = getattr(error, "problem_mark", None)
    if mark is not None:
        line = mark.line + 1
    elif isinstance(getattr(error, "position", None), int):
        line = text.count("\n", 0, error.position) + 1
    else:
        line = 1
    message = getattr(error, "problem", None) or str(error).splitlines()[0]
    return "%s:%d: (yaml): %s" % (source, line, one_line(" ".join(message.split())))


def _check_peer_set(reader, nodes, peers, plaintext, interface):
    """Rules that need all peers at once: unique names, unambiguous identities and routes."""
    seen_names = {}
    seen_keys = {}
    owners = {}
    endpointless = []
    for index, (node, peer) in enumerate(zip(nodes, peers)):
        if peer is None:
            continue
        path = "peers[%d]" % index
        if peer.name in seen_names:
            reader.problem(node, path + ".name", "%r is already used by peers[%d]" % (peer.name, seen_names[peer.name]))
        seen_names.setdefault(peer.name, index)
        if peer.public_key is not None and peer.public_key in seen_keys:
            # One key is one WireGuard identity: the second peer could never be told apart.
            reader.problem(node, path + ".public_key", "is already the key of peers[%d]" % seen_keys[peer.public_key])
        seen_keys.setdefault(peer.public_key, index)
        for network in peer.allowed_ips:
            if network.is_multicast:
                continue  # a group is shared: every neighbour may carry OSPF's 224.0.0.5
            if network in owners:
                reader.problem(node, path + ".allowed_ips", "%s is already allowed for peer %r" % (network, owners[network]))
            owners.setdefault(network, peer.name)
        if peer.endpoint is None:
            endpointless.append(peer.name)
        if peer.offload and interface.offload != OFFLOAD_SUPER_PACKETS:
            reader.problem(node, path + ".offload", "needs interface.offload: true")
    if plaintext and len(endpointless) > 1:
        reader.problem(nodes[0] if nodes else None, "peers",
                       "plaintext mode cannot tell apart peers without an endpoint (%s); give all but one an endpoint"
                       % ", ".join(endpointless))


def load_secrets(config):
    """Read the private and preshared key files named by ``config``.

    Returns Secrets(private key, {peer name: preshared key}); Secrets(None, {}) in plaintext mode. A
    missing, unreadable, malformed or group/other-accessible key file is a ConfigError
    naming the file, line and key path. Key material never appears in a message.
    """
    if config.plaintext:
        return Secrets(None, {})
    problems = []

    def read(key_path, path):
        try:
            return keys.load_key_file(resolve_path(config, path))
        except OSError as error:
            problem = "cannot read key file %s: %s" % (resolve_path(config, path), error.strerror)
        except keys.KeyHandlingError as error:
            problem = str(error)
        problems.append("%s:%d: %s: %s" % (config.source, config.key_lines.get(key_path, 0), key_path, problem))
        return None

    private_key = read("private_key_file", config.private_key_file)
    preshared = {}
    for index, peer in enumerate(config.peers):
        if peer.preshared_key_file is not None:
            preshared[peer.name] = read("peers[%d].preshared_key_file" % index, peer.preshared_key_file)
    if problems:
        raise ConfigError(problems)
    return Secrets(private_key, preshared)


def load(path):
    """Read and parse a configuration file; raise ConfigError with one line per problem."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except OSError as error:
        raise ConfigError(["%s:0: (file): cannot read: %s" % (path, error.strerror or error)]) from None
    except UnicodeDecodeError as error:
        raise ConfigError(["%s:0: (file): not UTF-8 text: %s" % (path, error.reason)]) from None
    config = parse(text, source=path)
    return config


def resolve_path(config, path):
    """A path named in the config is relative to the config file's directory."""
    if path is None or os.path.isabs(path) or config.source.startswith("<"):
        return path
    return os.path.join(os.path.dirname(os.path.abspath(config.source)), path)
