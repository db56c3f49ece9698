"""A UAPI ``set`` replayed on a relay's configuration: (config, secrets, Set) -> (config, secrets).

Theory of operation
-------------------
wireguard-go changes its running device line by line (``device/uapi.go``). A tunrelay's
running state is a frozen ``RelayConfig`` plus its ``Secrets``, and it changes only by
building a new pair and handing it to the service, the same path a SIGHUP reload takes. So
:func:`apply_set` replays the operations in order, with wireguard-go's meaning, on a draft
of the running configuration and returns the new pair, or raises ``UapiError`` and nothing
changes. The meanings:

- ``private_key``: the all-zero key removes it; a peer whose public key is the new key's
  public key is removed. ``listen_port``: the port of every UDP listen address, or one
  ``udp://0.0.0.0:PORT`` when there is none; 0 removes them (the relay then sends from an
  ephemeral port). ``fwmark``: SO_MARK on the UDP sockets. ``replace_peers``: every peer
  goes; the sections that follow may add them back.
- ``public_key`` selects a peer, creating it; ``update_only`` undoes the creation and
  ``remove`` removes it, and the rest of such a section changes nothing (nor does a section
  for the device's own public key). ``preshared_key``: the all-zero key removes it.
  ``endpoint``: ``udp://IP:PORT``. ``persistent_keepalive_interval``: 0 is off.
- ``replace_allowed_ips`` empties the peer's list; ``allowed_ip`` adds a prefix and takes
  it from whichever peer had it (wireguard-go's trie has one owner per prefix), except
  multicast prefixes, which tunrelay peers share as group memberships;
  ``allowed_ip=-PREFIX`` takes it from this peer only.

Peers keep their names (a peer removed by ``replace_peers`` and added back keeps its name
too); a new peer is named by ``config.default_peer_name``. A peer whose fields did not change
keeps its very ``PeerConfig``, so ``Relay.reconfigure`` leaves its sessions, paths and
counters alone: ``wg syncconf`` with an unchanged peer touches nothing. A key set here has no
file: ``private_key_file`` (or the peer's ``preshared_key_file``) becomes None and the key
lives only in the returned Secrets.
"""

from dataclasses import replace

from tunrelay import endpoints
from tunrelay.config import PeerConfig, Secrets, default_peer_name
from tunrelay.crypto import keys
from tunrelay.uapi.protocol import (
    ERRNO_INVALID, AllowedIP, Endpoint, Fwmark, ListenPort, PersistentKeepalive, PresharedKey, PrivateKey,
    Remove, ReplaceAllowedIPs, ReplacePeers, UapiError, UpdateOnly,
)

__all__ = ["apply_set", "with_udp_port"]


class _Draft:
    """One peer while a request is replayed; ``original`` is its running PeerConfig, if any."""

    def __init__(self, public_key, original=None, preshared_key=None, fresh=False):
        """``fresh``: made again after replace_peers or remove, so wg's fields start empty (as
        wireguard-go's new peer), while tunrelay's own (``offload``) come from ``original``."""
        self.public_key = public_key
        self.name = original.name if original is not None else None
        self.original = original
        kept = original if original is not None and not fresh else None
        self.endpoint = kept.endpoint if kept is not None else None
        self.allowed_ips = list(kept.allowed_ips) if kept is not None else []
        self.keepalive = kept.keepalive if kept is not None else None
        self.original_preshared_key = preshared_key
        self.preshared_key = preshared_key if not fresh else None

    def peer_config(self):
        original = self.original
        if original is None:
            return PeerConfig(name=self.name, public_key=keys.encode_key(self.public_key), endpoint=self.endpoint,
                              allowed_ips=tuple(self.allowed_ips), keepalive=self.keepalive)
        # The same networks in another order are no change: keep the running order.
        allowed = original.allowed_ips if set(self.allowed_ips) == set(original.allowed_ips) else tuple(
            self.allowed_ips)
        psk_file = (original.preshared_key_file if self.preshared_key == self.original_preshared_key else None)
        # wg sets one endpoint: a new one replaces the whole list, the same one keeps it.
        fallbacks = original.fallback_endpoints if self.endpoint == original.endpoint else ()
        changed = replace(original, endpoint=self.endpoint, fallback_endpoints=fallbacks, allowed_ips=allowed,
                          keepalive=self.keepalive, preshared_key_file=psk_file)
        return original if changed == original else changed


def with_udp_port(listen, port):
    """``listen`` after wg's ``listen_port=PORT`` (see the module docstring)."""
    if port == 0:
        return tuple(address for address in listen if address.transport != "udp")
    if any(address.transport == "udp" for address in listen):
        return tuple(replace(address, port=port) if address.transport == "udp" else address for address in listen)
    return tuple(listen) + (endpoints.Endpoint("udp", host="0.0.0.0", port=port),)


def apply_set(config, secrets, request):
    """The (RelayConfig, Secrets) that result from ``request`` (a protocol.Set); raise UapiError."""
    if config.plaintext:
        raise UapiError(ERRNO_INVALID, "plaintext", "this relay is in plaintext mode: it has no keys to set")
    private_key, private_key_file = secrets.private_key, config.private_key_file
    listen, fwmark = config.listen, config.fwmark
    drafts, running = {}, {}        # public key -> _Draft (in config order); public key -> (PeerConfig, psk)
    for peer in config.peers:
        raw = keys.decode_key(peer.public_key)
        running[raw] = (peer, secrets.preshared_keys.get(peer.name))
        drafts[raw] = _Draft(raw, *running[raw])
    for operation in request.device:
        kind = type(operation)
        if kind is PrivateKey and operation.key != private_key:
            private_key, private_key_file = operation.key, None
            if private_key is not None:
                drafts.pop(keys.public_key(private_key), None)
        elif kind is ListenPort:
            listen = with_udp_port(listen, operation.port)
        elif kind is Fwmark:
            fwmark = operation.mark
        elif kind is ReplacePeers:
            drafts.clear()
    own_public_key = keys.public_key(private_key) if private_key is not None else None
    owners = {network: draft for draft in drafts.values() for network in draft.allowed_ips}
    for section in request.peers:
        _apply_section(drafts, running, owners, own_public_key, section)
    peers = _peer_configs(drafts)
    new_config = replace(config, private_key_file=private_key_file, listen=listen, fwmark=fwmark, peers=peers)
    preshared = {draft.name: draft.preshared_key for draft in drafts.values() if draft.preshared_key is not None}
    return new_config, Secrets(private_key, preshared)


def _apply_section(drafts, running, owners, own_public_key, section):
    key = section.public_key
    draft, created = None, False
    if key != own_public_key:   # wireguard-go's "dummy" peer: the device's own key configures nothing
        draft = drafts.get(key)
        if draft is None:
            if keys.is_low_order(key):
                raise UapiError(ERRNO_INVALID, "bad_key", "failed to create new peer: a low-order public key")
            draft = drafts[key] = _Draft(key, *running.get(key, (None, None)), fresh=True)
            created = True
    for operation in section.operations:
        kind = type(operation)
        if kind is UpdateOnly:
            if created and draft is not None:
                del drafts[key]
                draft = None
        elif kind is Remove:
            if draft is not None:
                del drafts[key]
                draft = None
        elif draft is None:
            continue
        elif kind is PresharedKey:
            draft.preshared_key = operation.key
        elif kind is Endpoint:
            draft.endpoint = endpoints.Endpoint("udp", host=operation.host, port=operation.port)
        elif kind is PersistentKeepalive:
            draft.keepalive = operation.seconds or None
        elif kind is ReplaceAllowedIPs:
            draft.allowed_ips = []
        elif kind is AllowedIP:
            _allowed_ip(draft, owners, operation)


def _allowed_ip(draft, owners, operation):
    network = operation.network
    if operation.remove:
        if network in draft.allowed_ips:
            draft.allowed_ips.remove(network)
        return
    if not network.is_multicast:
        previous = owners.get(network)
        if previous is not None and previous is not draft and network in previous.allowed_ips:
            previous.allowed_ips.remove(network)
        owners[network] = draft
    if network not in draft.allowed_ips:
        draft.allowed_ips.append(network)


def _peer_configs(drafts):
    taken = {draft.name for draft in drafts.values() if draft.name is not None}
    for draft in drafts.values():
        if draft.name is None:
            draft.name = default_peer_name(draft.public_key, taken)
            taken.add(draft.name)
    return tuple(draft.peer_config() for draft in drafts.values())
