"""A RelayConfig as the YAML that would produce it: ``tunrelay showconf``, ``tunrelay import``.

``dump(config, secrets)`` writes every key whose value is not the default, in the order
the README documents them, so that ``config.parse(dump(config))`` equals ``config`` for any
configuration ``parse`` can produce. Paths are written absolute (resolved against the file
the configuration came from), so the output is valid wherever it is saved.

Key material is never written. A key that came over the UAPI lives in memory only (as in
wireguard-go); the output says so in a comment, and ``tunrelay check`` then reports the
missing ``private_key_file`` (or a preshared key that is not there), as it should: save the
key to a 0600 file and name it.
"""

import yaml

from tunrelay import config as configuration
from tunrelay.constants import DEFAULT_CONTROL_SOCKET, DEFAULT_UAPI_SOCKET
from tunrelay.endpoints import format_mac

__all__ = ["dump", "document"]

_INTERFACE_DEFAULTS = configuration.InterfaceConfig()
_DEFAULTS = configuration.RelayConfig(interface=_INTERFACE_DEFAULTS)
_TUNING = ("idle_timeout", "max_frame_size", "forward_between_peers", "dead_peer_timeout")


def _strings(values):
    return [str(value) for value in values]


def document(config):
    """The YAML document (plain dicts and lists) for ``config``."""
    interface = config.interface
    result = {"interface": {"name": interface.name, "mode": interface.mode, "mtu": interface.mtu,
                            "addresses": _strings(interface.addresses)}}
    if interface.routes:
        result["interface"]["routes"] = _strings(interface.routes)
    if interface.offload != configuration.OFFLOAD_STANDARD:
        result["interface"]["offload"] = interface.offload == configuration.OFFLOAD_SUPER_PACKETS
    if config.plaintext:
        result["plaintext"] = True
    if config.private_key_file is not None:
        result["private_key_file"] = configuration.resolve_path(config, config.private_key_file)
    if config.control_socket != DEFAULT_CONTROL_SOCKET.format(interface=interface.name):
        result["control_socket"] = config.control_socket
    default_uapi = None if config.plaintext else DEFAULT_UAPI_SOCKET.format(interface=interface.name)
    if config.uapi_socket != default_uapi:
        result["uapi_socket"] = config.uapi_socket if config.uapi_socket is not None else False
    if config.fwmark:
        result["fwmark"] = config.fwmark
    if config.listen:
        result["listen"] = _strings(config.listen)
    if config.metrics is not None:
        result["metrics"] = config.metrics
    for key in _TUNING:
        if getattr(config, key) != getattr(_DEFAULTS, key):
            result[key] = getattr(config, key)
    if config.responder is not None:
        result["responder"] = _responder(config.responder)
    if config.peers:
        result["peers"] = [_peer(config, peer) for peer in config.peers]
    return result


def _responder(responder):
    result = {"address": str(responder.address), "mac": format_mac(responder.mac)}
    if responder.services:
        result["services"] = dict(responder.services)
    if responder.faults is not None:
        result["faults"] = dict(zip(("seed", "drop", "duplicate", "reorder"), responder.faults))
    return result


def _peer(config, peer):
    result = {"name": peer.name}
    if peer.public_key is not None:
        result["public_key"] = peer.public_key
    if len(peer.endpoints) > 1:
        result["endpoint"] = [str(endpoint) for endpoint in peer.endpoints]
    elif peer.endpoint is not None:
        result["endpoint"] = str(peer.endpoint)
    if peer.allowed_ips:
        result["allowed_ips"] = _strings(peer.allowed_ips)
    if peer.keepalive is not None:
        result["keepalive"] = peer.keepalive
    if peer.preshared_key_file is not None:
        result["preshared_key_file"] = configuration.resolve_path(config, peer.preshared_key_file)
    if peer.offload:
        result["offload"] = True
    return result


def _notes(config, secrets):
    """Comment lines for what the YAML cannot say: keys that live in memory only."""
    notes = []
    if not config.plaintext and config.private_key_file is None:
        notes.append("private_key_file: none. The private key was %s; write it to a 0600 file and name it here"
                     % ("set over the UAPI and lives in memory only" if secrets.private_key is not None
                        else "never set"))
    for peer in config.peers:
        if peer.preshared_key_file is None and peer.name in secrets.preshared_keys:
            notes.append("peers %s: its preshared key was set over the UAPI and lives in memory only; write it to a "
                         "0600 file and set preshared_key_file" % peer.name)
    return notes


def dump(config, secrets=configuration.Secrets(), header=None):
    """YAML text for ``config``; ``header`` lines and notes about in-memory keys come first as comments."""
    lines = list(header or []) + _notes(config, secrets)
    comments = "".join("# %s\n" % line for line in lines)
    return comments + yaml.safe_dump(document(config), sort_keys=False, default_flow_style=False)
