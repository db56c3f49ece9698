"""The status document: the relay's state and counters as plain data.

This is the schema behind ``tunrelay status --json``, the metrics endpoint and the
responder's status page (documented in ``tunrelay/control/schema.md``). Times are the
injected clock's seconds (Unix time under a real reactor) or None.
"""

__all__ = ["snapshot"]


def snapshot(relay):
    config = relay.config
    return {
        "interface": {"name": config.interface.name, "mode": config.interface.mode,
                      "mtu": config.interface.mtu,
                      "addresses": [str(address) for address in config.interface.addresses]},
        "listen": [str(address) for address in config.listen],
        "plaintext": config.plaintext,
        "device": dict(relay.device_counters.as_dict(), tx_writes=relay.datapath.device_writes),
        "drops": dict(relay.drops.counters.drops),
        "peers": [_peer(relay, peer) for peer in relay.peers.values()],
        "routes_via_peers": [{"network": str(network), "gateway": str(gateway), "peer": name}
                             for network, gateway, name in relay.next_hops.routes()],
        "routes_not_followed": {"unowned": relay.next_hops.unowned, "conflicting": relay.next_hops.conflicting,
                                "over_limit": relay.next_hops.truncated},
        "responder": relay.responder.snapshot() if relay.responder is not None else None,
    }


def _peer(relay, peer):
    link = peer.active_path[0] if peer.active_path is not None else None
    return dict(
        name=peer.name,
        endpoint=peer.describe_path() or (str(peer.endpoint) if peer.endpoint else None),
        transport=link.kind if link is not None else (peer.endpoint.transport if peer.endpoint else None),
        **relay.sessions.peer_state(peer),
        last_received=peer.last_received,
        alive=not peer.dead,
        paths=len(peer.paths),
        allowed_ips=[str(network) for network in peer.config.allowed_ips],
        keepalive=peer.config.keepalive,
        **(peer.endpoint_choice.describe() if peer.endpoint_choice is not None else {}),
        **peer.counters.as_dict())
