"""The control plane of who is on the other end: plaintext or WireGuard.

The relay (``tunrelay.relay``) keeps peers, paths and counters; the data path
(``tunrelay.datapath``) moves frames; a sessions object keeps what lies between: who a
path belongs to, handshakes and timers. Both strategies offer the same methods:

    core                                        the WireGuard core, or None (plaintext)
    after_batch()                               the data path's batch ended
    stream_opened(link, address, peer, probe=False) -> bool
                                                a TCP connection came up (peer known if we dialled;
                                                ``probe``: dialled only to probe an endpoint list's entry)
    stream_closed(link)
    path_known(peer, link, address)             a path we learned outside the protocol
    path_lost(peer) / peer_dead(peer)           the active path closed / the peer went silent
    endpoint_moved(peer)                        the peer's hostname resolves to a new address
    probe(peer, path=None) / reassert(peer)     a lone handshake initiation / a keepalive (endpoint lists)
    peer_added(peer) / peer_removed(peer) / peer_changed(peer)
    peer_state(peer) -> dict                    session fields for status
    stop()

WireGuard sessions add ``control_message`` (handshake and cookie messages from the data
path) and ``stage`` (a frame that must wait for a session); plaintext ones ``identify``
(the peer a new path belongs to).
"""

from tunrelay.sessions.plaintext import PlaintextSessions
from tunrelay.sessions.wireguard import WireGuardSessions

__all__ = ["PlaintextSessions", "WireGuardSessions"]
