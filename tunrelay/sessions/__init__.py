"""Who a message is from, and what is on the wire: plaintext or WireGuard.

The relay (``tunrelay.relay``) forwards frames between ports and keeps paths and counters;
a sessions object turns a received message into (peer, frame) and a frame for a peer into
messages on a path. Both strategies offer the same methods:

    message_received(link, address, message)   a message from a transport
    send(peer, frame)                          a frame to deliver to a peer
    stream_opened(link, address, peer) -> bool  a TCP connection came up (peer known if we dialled)
    stream_closed(link)
    path_known(peer, link, address)             a path we learned outside the protocol
    path_lost(peer) / peer_dead(peer)           the active path closed / the peer went silent
    endpoint_moved(peer)                        the peer's hostname resolves to a new address
    peer_added(peer) / peer_removed(peer) / peer_changed(peer)
    peer_state(peer) -> dict                    session fields for status
    stop()
"""

from tunrelay.sessions.plaintext import PlaintextSessions
from tunrelay.sessions.wireguard import WireGuardSessions

__all__ = ["PlaintextSessions", "WireGuardSessions"]
