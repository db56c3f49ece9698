"""What ``get=1`` reports, read from the same state ``tunrelay status`` shows.

``device_state`` joins the running configuration (public keys, which the status document
does not carry), the secrets (wg prints the private and preshared keys, as wireguard-go
does, to root on a 0600 socket) and ``Relay.snapshot()`` (endpoint, latest handshake,
transfer, allowed IPs), so wg and ``tunrelay status`` can never disagree.

Mapping to wg's fields:

- ``endpoint``: the peer's active path when it is UDP with an IP literal (what
  ``tunrelay status`` shows as ``udp://IP:PORT``), else the configured UDP endpoint when it
  is an IP literal; TCP and Ethernet peers have no endpoint wg could use;
- ``last_handshake_time_*``: the status document's ``latest_handshake`` (Unix seconds);
- ``rx_bytes``/``tx_bytes``: the status document's counters, which count the frames
  accepted from and sent to the peer (wireguard-go counts the encrypted messages on the
  wire, about 32 bytes more per packet);
- ``persistent_keepalive_interval``: the peer's ``keepalive``, 0 when off.
"""

import ipaddress

from tunrelay import endpoints
from tunrelay.crypto import keys
from tunrelay.uapi.protocol import DeviceState, PeerState

__all__ = ["device_state"]


def device_state(config, secrets, snapshot, listen_port):
    """A protocol.DeviceState; ``listen_port`` is the bound UDP port (or None)."""
    by_name = {peer["name"]: peer for peer in snapshot.get("peers", [])}
    peers = []
    for peer in config.peers:
        status = by_name.get(peer.name, {})
        peers.append(PeerState(
            public_key=keys.decode_key(peer.public_key),
            preshared_key=secrets.preshared_keys.get(peer.name),
            endpoint=_endpoint(status.get("endpoint"), peer.endpoint),
            last_handshake=status.get("latest_handshake"),
            rx_bytes=status.get("rx_bytes", 0),
            tx_bytes=status.get("tx_bytes", 0),
            keepalive=int(peer.keepalive or 0),
            allowed_ips=tuple(status.get("allowed_ips", [str(network) for network in peer.allowed_ips]))))
    return DeviceState(private_key=secrets.private_key, listen_port=listen_port, fwmark=config.fwmark,
                       peers=tuple(peers))


def _endpoint(described, configured):
    for candidate in (described, str(configured) if configured is not None else None):
        if not candidate or not candidate.startswith("udp://"):
            continue
        try:
            endpoint = endpoints.parse_endpoint(candidate)
            ipaddress.ip_address(endpoint.host)
        except ValueError:
            continue   # a hostname not resolved yet: nothing wg could use
        return endpoint.host, endpoint.port
    return None
