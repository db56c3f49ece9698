"""UDP segmentation offload both ways: many datagrams per system call.

Sending (UDP_SEGMENT, Linux 4.18+, ``udp(7)``): one ``sendmsg`` carries a buffer of
equal-sized datagrams (only the last may be shorter) and a control message with their
size; the kernel sends one large packet through its stack and cuts it as late as it can
(on the veth into a namespace it stays whole). ``SendBatcher`` decides, without touching a
socket, which consecutive datagrams may share such a send: same destination, same size
(a shorter one closes the group), at most GSO_MAX_SEGMENTS of them and UDP_MAX_PAYLOAD
bytes in all. A datagram above GSO_MAX_SEGMENT_SIZE is sent on its own, since a segment
must fit the path MTU. A datagram may be given as several buffers (a WireGuard header and
its ciphertext): the send gathers them, nothing is joined in Python.

Receiving (UDP_GRO, Linux 5.0+): a socket with UDP_GRO set may be handed several
datagrams of one flow coalesced in one buffer, with their size in a control message;
the link cuts them apart again (as views) before the data path sees them. A peer without
GSO (or a socket without GRO) simply sees ordinary datagrams: the wire format is unchanged.
"""

import socket
import struct

from tunrelay.constants import GSO_MAX_SEGMENT_SIZE, GSO_MAX_SEGMENTS, UDP_MAX_PAYLOAD

__all__ = ["GRO_CONTROL_SPACE", "SendBatcher", "coalesced_size", "enable_gro", "gso_supported", "segment_option"]

UDP_SEGMENT, UDP_GRO = 103, 104      # <linux/udp.h>; not exported by Python's socket module
GRO_CONTROL_SPACE = socket.CMSG_SPACE(struct.calcsize("i"))
_SEGMENT_SIZE = struct.Struct("=H")
_GRO_SIZE = struct.Struct("=i")


def gso_supported(sock):
    """True if the kernel takes UDP_SEGMENT on this socket (0 = no segmentation by default)."""
    try:
        sock.setsockopt(socket.SOL_UDP, UDP_SEGMENT, 0)
    except OSError:
        return False
    return True


def enable_gro(sock):
    try:
        sock.setsockopt(socket.SOL_UDP, UDP_GRO, 1)
    except OSError:
        return False   # an older kernel: every datagram arrives alone, which is fine
    return True


def segment_option(size):
    """The control message that tells sendmsg to cut the buffer into ``size``-byte datagrams."""
    return [(socket.SOL_UDP, UDP_SEGMENT, _SEGMENT_SIZE.pack(size))]


class _Group:
    __slots__ = ("address", "segment_size", "messages", "total", "closed")

    def __init__(self, address, message, size, closed=False):
        self.address = address
        self.segment_size = size
        self.messages = [message]
        self.total = size
        self.closed = closed


class SendBatcher:
    """Datagrams queued during one batch, grouped for UDP_SEGMENT sends. A message is a tuple
    of buffers that together make one datagram."""

    def __init__(self, max_segments=GSO_MAX_SEGMENTS, max_segment_size=GSO_MAX_SEGMENT_SIZE):
        self.max_segments = max_segments
        self.max_segment_size = max_segment_size
        self._groups = []
        self.queued = 0

    def add(self, address, message, size):
        self.queued += 1
        if size > self.max_segment_size:
            self._groups.append(_Group(address, message, size, closed=True))
            return
        group = self._groups[-1] if self._groups else None
        if (group is None or group.closed or group.address != address or size > group.segment_size
                or len(group.messages) >= self.max_segments or group.total + size > UDP_MAX_PAYLOAD):
            self._groups.append(_Group(address, message, size))
            return
        group.messages.append(message)
        group.total += size
        if size < group.segment_size:
            group.closed = True   # only the last segment may be shorter

    def take(self):
        """The queued groups as (address, segment size, [messages]), oldest first; empties the queue."""
        groups, self._groups, self.queued = self._groups, [], 0
        return [(group.address, group.segment_size, group.messages) for group in groups]


def coalesced_size(ancillary):
    """The segment size a UDP_GRO read reports, or 0 for an ordinary datagram."""
    for level, kind, data in ancillary:
        if level == socket.SOL_UDP and kind == UDP_GRO and len(data) >= _GRO_SIZE.size:
            return _GRO_SIZE.unpack_from(data)[0]
    return 0
