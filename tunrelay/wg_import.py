"""``tunrelay import wg0.conf --output site.yaml``: a wg-quick(8) file as a tunrelay configuration.

Theory of operation
-------------------
A wg-quick file is INI: ``[Interface]`` and ``[Peer]`` sections of ``Key = Value`` lines,
keys case-insensitive, ``#`` comments, lists comma-separated and repeatable (wg(8)'s
``config.c`` and wg-quick's ``parse_options``). The interface is named after the file, as
wg-quick names it. What each key becomes:

- ``Address`` -> ``interface.addresses``; ``MTU`` -> ``interface.mtu``; ``DNS`` is kept as a
  comment (tunrelay does not touch the resolver);
- ``PrivateKey`` -> a 0600 key file beside the output, named by ``private_key_file``;
  ``ListenPort`` -> ``listen: [udp://0.0.0.0:PORT]``; ``FwMark`` -> ``fwmark``;
- per peer: ``PublicKey``; ``PresharedKey`` -> a 0600 file and ``preshared_key_file``;
  ``AllowedIPs`` -> ``allowed_ips``; ``Endpoint`` -> ``udp://HOST:PORT``;
  ``PersistentKeepalive`` -> ``keepalive``; the peer's name is the one the UAPI would give
  it (``config.default_peer_name``);
- routes: wg-quick routes every allowed IP into the interface unless a route on it already
  covers it (the addresses' own subnets), and so does the output's ``interface.routes``;
  ``Table = off`` routes nothing.

What tunrelay cannot express is an error naming the file and line, and nothing is written:
``PreUp``/``PostUp``/``PreDown``/``PostDown`` hooks, ``SaveConfig = true``, a routing
``Table`` number, and a default route (``AllowedIPs = 0.0.0.0/0``) with ``Table = auto``,
which wg-quick implements with fwmark policy rules that tunrelay does not set up.
"""

import ipaddress
import os
import re
from dataclasses import replace

from tunrelay import config as configuration
from tunrelay import endpoints
from tunrelay.config_dump import dump
from tunrelay.crypto import keys

__all__ = ["WgImportError", "convert", "import_file"]

_INTERFACE_NAME = re.compile(r"^[a-zA-Z0-9_=+.-]{1,15}$")   # wg-quick's own test of a file's name
_HOOKS = ("preup", "postup", "predown", "postdown")


class WgImportError(Exception):
    """The file cannot be imported; ``problems`` holds one line per problem."""

    def __init__(self, problems):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class _Section:
    def __init__(self, kind, line):
        self.kind = kind            # "interface" or "peer"
        self.line = line
        self.values = {}            # lower-case key -> [(value, line)]


def _sections(text, source, problems):
    sections = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("["):
            kind = line.lower()
            if kind not in ("[interface]", "[peer]"):
                problems.append("%s:%d: %s: unknown section" % (source, number, line))
                kind = "[unknown]"
            sections.append(_Section(kind[1:-1], number))
            continue
        key, separator, value = line.partition("=")
        if not separator:
            problems.append("%s:%d: %s: not Key = Value" % (source, number, line[:40]))
            continue
        if not sections:
            problems.append("%s:%d: %s: outside any [Interface] or [Peer] section" % (source, number, key.strip()))
            continue
        sections[-1].values.setdefault(key.strip().lower(), []).append((value.strip(), number))
    return sections


class _Converter:
    """Collects the YAML's values and every problem, each naming the file and line."""

    def __init__(self, source):
        self.source = source
        self.problems = []
        self.notes = []

    def problem(self, line, key, message):
        self.problems.append("%s:%d: %s: %s" % (self.source, line, key, message))

    def one(self, section, key, display):
        """The single value of ``key`` and its line, or (None, section line)."""
        values = section.values.get(key, [])
        for _, line in values[1:]:
            self.problem(line, display, "given twice")
        return values[0] if values else (None, section.line)

    def items(self, section, key):
        """Every comma-separated item of a repeatable list key, with its line."""
        return [(item.strip(), line) for value, line in section.values.get(key, [])
                for item in value.split(",") if item.strip()]

    def key(self, section, name, display):
        value, line = self.one(section, name, display)
        if value is None:
            return None
        try:
            return keys.decode_key(value)
        except keys.InvalidKey as error:
            self.problem(line, display, str(error))
            return None

    def number(self, value, line, display, low, high):
        if not value.isdigit() or not low <= int(value) <= high:
            self.problem(line, display, "must be a number from %d to %d" % (low, high))
            return None
        return int(value)


def _network(text):
    """wg's allowed IP: a prefix (host bits cleared, as the kernel stores it) or a bare address."""
    if "/" not in text:
        return ipaddress.ip_network(text)
    return ipaddress.ip_network(text, strict=False)


def convert(text, source, interface_name, key_file, psk_file_for):
    """(RelayConfig, {path: key bytes}, header lines) for a wg-quick file; raise WgImportError.

    ``psk_file_for(peer_name)`` names a peer's preshared key file; paths are as written in the YAML.
    """
    work = _Converter(source)
    sections = _sections(text, source, work.problems)
    interfaces = [section for section in sections if section.kind == "interface"]
    if len(interfaces) != 1:
        work.problem(interfaces[1].line if len(interfaces) > 1 else 1, "[Interface]",
                     "exactly one [Interface] section is needed")
        raise WgImportError(work.problems)
    interface = interfaces[0]
    files = {}
    values = _interface(work, interface, interface_name)
    private_key = work.key(interface, "privatekey", "PrivateKey")
    if private_key is None and "privatekey" not in interface.values:
        work.problem(interface.line, "PrivateKey", "is required")
    elif private_key is not None:
        files[key_file] = private_key
    peers, owners = [], {}
    for section in (section for section in sections if section.kind == "peer"):
        peer = _peer(work, section, owners, [p.name for p in peers], values["table_off"])
        if peer is not None:
            peer, psk = peer
            if psk is not None:
                peer = replace(peer, preshared_key_file=psk_file_for(peer.name))
                files[peer.preshared_key_file] = psk
            peers.append(peer)
    if work.problems:
        raise WgImportError(work.problems)
    routes = [] if values["table_off"] else _routes(values["addresses"], peers)
    relay = configuration.RelayConfig(
        interface=configuration.InterfaceConfig(name=interface_name, mode="tun", mtu=values["mtu"],
                                                addresses=tuple(values["addresses"]), routes=tuple(routes)),
        private_key_file=key_file, control_socket=configuration.DEFAULT_CONTROL_SOCKET.format(interface=interface_name),
        uapi_socket=configuration.DEFAULT_UAPI_SOCKET.format(interface=interface_name), listen=values["listen"],
        fwmark=values["fwmark"], peers=tuple(peers), source="<import>")
    return relay, files, work.notes


def _interface(work, section, name):
    known = {"privatekey", "listenport", "fwmark", "address", "dns", "mtu", "table", "saveconfig"} | set(_HOOKS)
    for key, entries in section.values.items():
        if key not in known:
            work.problem(entries[0][1], key, "unknown [Interface] key")
        elif key in _HOOKS:
            work.problem(entries[0][1], key, "hooks run shell commands; tunrelay cannot express them (run them "
                         "around tunrelay yourself, e.g. in a systemd unit)")
    values = {"addresses": [], "listen": (), "fwmark": 0, "mtu": configuration.DEFAULT_MTU, "table_off": False}
    for item, line in work.items(section, "address"):
        try:
            values["addresses"].append(ipaddress.ip_interface(item))
        except ValueError:
            work.problem(line, "Address", "%r is not an address with prefix length" % item)
    dns = [item for item, _ in work.items(section, "dns")]
    if dns:
        work.notes.append("DNS = %s: tunrelay does not configure the resolver; point it at these servers yourself"
                          % ", ".join(dns))
    port, line = work.one(section, "listenport", "ListenPort")
    if port is not None:
        number = work.number(port, line, "ListenPort", 0, 65535)
        if number:
            values["listen"] = (endpoints.Endpoint("udp", host="0.0.0.0", port=number),)
    mark, line = work.one(section, "fwmark", "FwMark")
    if mark is not None and mark.lower() != "off":
        try:
            values["fwmark"] = int(mark, 0)
            if not 0 <= values["fwmark"] < 2 ** 32:
                raise ValueError
        except ValueError:
            work.problem(line, "FwMark", "must be off or a 32-bit number")
    mtu, line = work.one(section, "mtu", "MTU")
    if mtu is not None:
        values["mtu"] = work.number(mtu, line, "MTU", configuration.MIN_MTU, configuration.MAX_MTU) or values["mtu"]
    table, line = work.one(section, "table", "Table")
    if table is not None and table.lower() not in ("auto", "off"):
        work.problem(line, "Table", "only auto and off can be expressed (tunrelay routes in the main table)")
    values["table_off"] = table is not None and table.lower() == "off"
    save, line = work.one(section, "saveconfig", "SaveConfig")
    if save is not None and save.lower() != "false":
        work.problem(line, "SaveConfig", "tunrelay never writes its configuration back; use tunrelay showconf")
    return values


def _peer(work, section, owners, taken, table_off):
    for key, entries in section.values.items():
        if key not in ("publickey", "presharedkey", "allowedips", "endpoint", "persistentkeepalive"):
            work.problem(entries[0][1], key, "unknown [Peer] key")
    public_key = work.key(section, "publickey", "PublicKey")
    if public_key is None:
        if "publickey" not in section.values:
            work.problem(section.line, "PublicKey", "is required in every [Peer]")
        return None
    if keys.is_low_order(public_key):
        work.problem(section.line, "PublicKey", "is a low-order X25519 point, which no honest peer has")
    name = configuration.default_peer_name(public_key, taken)
    allowed = []
    for item, line in work.items(section, "allowedips"):
        try:
            network = _network(item)
        except ValueError:
            work.problem(line, "AllowedIPs", "%r is not an address or prefix" % item)
            continue
        if network.prefixlen == 0 and not table_off:
            work.problem(line, "AllowedIPs", "%s is a default route, which wg-quick makes with fwmark policy rules "
                         "that tunrelay does not set up; list narrower networks, or set Table = off and route "
                         "yourself" % network)
        elif not network.is_multicast and network in owners:
            work.problem(line, "AllowedIPs", "%s is already allowed for the peer at line %d" % (network, owners[network]))
        owners.setdefault(network, section.line)
        if network not in allowed:
            allowed.append(network)
    endpoint = None
    text, line = work.one(section, "endpoint", "Endpoint")
    if text is not None:
        try:
            endpoint = endpoints.parse_endpoint("udp://" + text)
        except ValueError as error:
            work.problem(line, "Endpoint", str(error).replace("'udp://", "'"))
    keepalive = None
    text, line = work.one(section, "persistentkeepalive", "PersistentKeepalive")
    if text is not None and text.lower() != "off":
        keepalive = work.number(text, line, "PersistentKeepalive", 0, 65535) or None
    psk = work.key(section, "presharedkey", "PresharedKey")
    peer = configuration.PeerConfig(name=name, public_key=keys.encode_key(public_key), endpoint=endpoint,
                                    allowed_ips=tuple(allowed), keepalive=keepalive)
    return peer, psk


def _routes(addresses, peers):
    """What wg-quick's add_route adds: each allowed IP no route on the device covers yet."""
    covered = [address.network for address in addresses]
    routes = []
    for peer in peers:
        for network in peer.allowed_ips:
            if any(network.version == own.version and network.subnet_of(own) for own in covered):
                continue
            covered.append(network)
            routes.append(network)
    return routes


def _write_secret(path, key):
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
        os.write(descriptor, (keys.encode_key(key) + "\n").encode("ascii"))
    finally:
        os.close(descriptor)


def import_file(source, output):
    """Convert ``source`` and write ``output`` plus its key files; the paths written. Raise WgImportError."""
    match = re.search(r"(?:^|/)([^/]+)\.conf$", source)
    if match is None or not _INTERFACE_NAME.match(match.group(1)):
        raise WgImportError(["%s:0: (file): the name must be INTERFACE.conf with an interface name of at most 15 "
                             "letters, digits or _=+.- (as wg-quick requires)" % source])
    try:
        with open(source, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as error:
        raise WgImportError(["%s:0: (file): cannot read: %s" % (source, getattr(error, "strerror", None) or error)])
    stem = os.path.splitext(os.path.basename(output))[0]
    relay, files, notes = convert(text, source, match.group(1), stem + ".key",
                                  lambda name: "%s-%s.psk" % (stem, name))
    yaml_text = dump(relay, header=["Imported from %s by tunrelay import." % os.path.abspath(source)] + notes)
    try:
        configuration.parse(yaml_text, source=output)
    except configuration.ConfigError as error:
        raise WgImportError(["%s:0: (converted): %s" % (source, problem) for problem in error.problems]) from None
    directory = os.path.dirname(os.path.abspath(output))
    written = []
    try:
        for name, key in files.items():
            _write_secret(os.path.join(directory, name), key)
            written.append(os.path.join(directory, name))
        with open(output, "w", encoding="utf-8") as stream:
            stream.write(yaml_text)
    except OSError as error:
        raise WgImportError(["%s:0: (file): cannot write: %s" % (error.filename or output, error.strerror)]) from None
    return [output] + written
