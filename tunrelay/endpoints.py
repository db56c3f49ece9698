"""Transport addresses written as URLs: ``tcp://host:port``, ``udp://[v6]:port``, ``ethernet://if[/mac]``.

A listen address names where we accept peers; an endpoint names where we reach one.
TCP and UDP hosts are IP literals for ``listen`` (we bind them) and IP literals or
hostnames for endpoints (resolved again on every reconnect). Ethernet endpoints carry the
peer's MAC because raw frames are addressed by MAC, as in ethertap's usertunnel.
"""

import ipaddress
import re
from dataclasses import dataclass
from typing import Optional

from tunrelay.wire.ethernet import format_mac

__all__ = ["Endpoint", "parse_endpoint", "parse_listen", "format_mac", "parse_mac"]

TRANSPORTS = ("tcp", "udp", "ethernet")
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


@dataclass(frozen=True)
class Endpoint:
    transport: str                 # tcp | udp | ethernet
    host: Optional[str] = None     # IP literal or hostname (tcp, udp)
    port: Optional[int] = None
    interface: Optional[str] = None  # ethernet
    mac: Optional[bytes] = None      # ethernet endpoint

    @property
    def family(self):
        """6 or 4 for IP literals, None for hostnames and ethernet."""
        try:
            return ipaddress.ip_address(self.host).version
        except (TypeError, ValueError):
            return None

    def __str__(self):
        if self.transport == "ethernet":
            return "ethernet://%s%s" % (self.interface, "/" + format_mac(self.mac) if self.mac else "")
        host = "[%s]" % self.host if ":" in self.host else self.host
        return "%s://%s:%d" % (self.transport, host, self.port)


def parse_mac(text):
    if not _MAC.match(text):
        raise ValueError("%r is not a MAC address like 02:00:00:00:00:02" % text)
    return bytes(int(part, 16) for part in text.split(":"))


def _split(text):
    scheme, separator, rest = text.partition("://")
    if not separator or scheme not in TRANSPORTS:
        raise ValueError("%r must start with tcp://, udp:// or ethernet://" % text)
    if not rest:
        raise ValueError("%r has nothing after %s://" % (text, scheme))
    return scheme, rest


def _host_port(text, rest, allow_hostname):
    if rest.startswith("["):
        host, bracket, tail = rest[1:].partition("]")
        if not bracket or not tail.startswith(":"):
            raise ValueError("%r: an IPv6 address needs the form [addr]:port" % text)
        port_text = tail[1:]
        try:
            if ipaddress.ip_address(host).version != 6:
                raise ValueError
        except ValueError:
            raise ValueError("%r: %r is not an IPv6 address" % (text, host)) from None
    else:
        host, colon, port_text = rest.rpartition(":")
        if not colon or not host:
            raise ValueError("%r needs host:port" % text)
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            if not allow_hostname:
                raise ValueError("%r: listen host must be an IP address, not %r" % (text, host)) from None
            if not _HOSTNAME.match(host):
                raise ValueError("%r: %r is neither an IP address nor a hostname" % (text, host)) from None
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError("%r: port must be 1-65535" % text)
    return host, int(port_text)


def _ethernet(text, rest, need_mac):
    interface, slash, mac_text = rest.partition("/")
    if not interface or len(interface) > 15:
        raise ValueError("%r: interface name must be 1-15 characters" % text)
    if need_mac and not slash:
        raise ValueError("%r: an ethernet endpoint needs the peer's MAC: ethernet://%s/02:00:00:00:00:02" % (text, interface))
    if not need_mac and slash:
        raise ValueError("%r: listen on ethernet://%s (no MAC)" % (text, interface))
    return Endpoint("ethernet", interface=interface, mac=parse_mac(mac_text) if need_mac else None)


def _parse(text, remote):
    scheme, rest = _split(text)
    if scheme == "ethernet":
        return _ethernet(text, rest, need_mac=remote)
    host, port = _host_port(text, rest, allow_hostname=remote)
    return Endpoint(scheme, host=host, port=port)


def parse_endpoint(text):
    """A peer's endpoint (hostnames allowed; ethernet needs the MAC); raise ValueError."""
    return _parse(text, remote=True)


def parse_listen(text):
    """A local listen address (IP literals only; ethernet without MAC); raise ValueError."""
    return _parse(text, remote=False)
