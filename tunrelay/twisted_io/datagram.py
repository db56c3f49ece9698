"""Datagram links: one message per UDP datagram, or per raw Ethernet frame of EtherType 0xcda8.

A datagram link is one socket shared by every peer behind it; the relay tells peers apart
by the source address (plaintext) or the receiver index (WireGuard) and remembers the
binding. The Ethernet link is an AF_PACKET SOCK_DGRAM socket bound to one interface and to
EtherType 0xcda8, as in ethertap's usertunnel: the kernel writes the link header from the
peer's MAC we give it and strips it on receive, so the payload is the bare frame. Only
frames addressed to this host (PACKET_HOST) are taken: never our own transmissions, never
other hosts' traffic seen in promiscuous mode.

Both read a batch per wake-up and hand it to the data path whole. UDP uses segmentation
offload both ways where the kernel has it (``tunrelay.twisted_io.gso``): a GRO read may
hold many datagrams, cut apart here; what the data path sends during a batch is queued and
leaves when the batch ends, runs of equal-sized datagrams to one address in one
``sendmsg``. Errors from the kernel on send (a datagram larger than the path allows, a
full buffer) are drops with a reason, not exceptions.
"""

import errno
import socket

from twisted.logger import Logger

from tunrelay.constants import (
    ETHERNET_READS_PER_TURN, ETHERTYPE_TUNNEL, SOCKET_BUFFER_BYTES, UDP_BATCH_LIMIT, UDP_MAX_PAYLOAD,
    UDP_READS_PER_TURN, UDP_RECEIVE_SIZE,
)
from tunrelay.endpoints import format_mac
from tunrelay.twisted_io.gso import GRO_CONTROL_SPACE, SendBatcher, coalesced_size, enable_gro, gso_supported, segment_option
from tunrelay.twisted_io.readers import add_reader

__all__ = ["UdpLink", "EthernetLink", "bind_udp", "open_ethernet_socket"]

_SEND_ERRORS = {
    errno.EMSGSIZE: "too_big_for_transport",
    errno.EAGAIN: "tx_queue_full",
    errno.ENOBUFS: "tx_queue_full",
    errno.ENETUNREACH: "underlay_unreachable",
    errno.EHOSTUNREACH: "underlay_unreachable",
    errno.ECONNREFUSED: "peer_refused",
    errno.ENETDOWN: "underlay_down",
}
PACKET_HOST = 0
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33   # <asm-generic/socket.h>; not exported by Python's socket
_GSO_REFUSALS = (errno.EINVAL, errno.EMSGSIZE, errno.EIO, errno.EOPNOTSUPP)


def _send_error(error):
    return _SEND_ERRORS.get(error.errno, "send_error")


def _enlarge_buffers(sock):
    # The FORCE variants (CAP_NET_ADMIN, held during privileged start) pass net.core.rmem_max,
    # which is 208 KiB on a stock kernel: a few bursts would fill it.
    for forced, option in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        for attempt in (forced, option):
            try:
                sock.setsockopt(socket.SOL_SOCKET, attempt, SOCKET_BUFFER_BYTES)
                break
            except OSError:
                continue  # unprivileged, or capped: a smaller buffer only costs throughput


def bind_udp(host, port):
    """A non-blocking UDP socket bound to ``host``:``port`` (``::`` takes IPv4 too), with large buffers."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setblocking(False)
        sock.bind((host, port))
        _enlarge_buffers(sock)
    except OSError:
        sock.close()
        raise
    return sock


class _SharedSocket:
    def close_path(self, address):
        """Nothing to close: the socket serves other peers; the relay forgets the binding."""

    def flush(self):
        """Nothing queued: every message left when it was given."""


class UdpLink(_SharedSocket):
    """One UDP socket. With GSO, what the data path sends in one batch leaves when it ends,
    consecutive same-sized datagrams to one address in a single sendmsg."""

    kind = "udp"
    log = Logger()

    def __init__(self, datapath, sock, reactor):
        self.datapath = datapath
        self.socket = sock
        self.reactor = reactor
        self.gso = gso_supported(sock)
        enable_gro(sock)
        self.batcher = SendBatcher()
        self._reader = None

    def start(self):
        self._reader = add_reader(self.reactor, self.socket.fileno(), self._readable, self.describe_local())

    def stopListening(self):
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        self.socket.close()

    def getHost(self):
        return self.socket.getsockname()

    def describe_local(self):
        host, port = self.socket.getsockname()[:2]
        return self.describe((host, port))

    def describe(self, address):
        host, port = address[0], address[1]
        return "udp://%s:%d" % ("[%s]" % host if ":" in host else host, port)

    def _readable(self):
        receive = self.socket.recvmsg
        batch = []
        for _ in range(UDP_READS_PER_TURN):
            try:
                data, ancillary, _, address = receive(UDP_RECEIVE_SIZE, GRO_CONTROL_SPACE)
            except (BlockingIOError, ConnectionRefusedError):
                break   # drained; or an ICMP error for an earlier send, which UDP cannot act on
            except OSError as error:
                self.datapath.drops.drop("receive_error", None, error.strerror)
                break
            address = address[:2]
            size = coalesced_size(ancillary) if ancillary else 0
            if 0 < size < len(data):
                view = memoryview(data)
                batch.extend((address, view[start:start + size]) for start in range(0, len(data), size))
            else:
                batch.append((address, data))
        if batch:
            self.datapath.received(self, batch)

    def send(self, address, data, body=None):
        """Queue one datagram: ``data``, or a header ``data`` and its ``body`` (gathered by the
        kernel, never joined here)."""
        if body is None:
            size, parts = len(data), (data,)
        else:
            size, parts = len(data) + len(body), (data, body)
        if size > UDP_MAX_PAYLOAD:
            return "too_big_for_transport"
        if not self.gso:
            return self._send_one(address, parts)
        batcher = self.batcher
        if not batcher.queued:
            self.datapath.dirty_links.add(self)
        batcher.add(address, parts, size)
        if batcher.queued >= UDP_BATCH_LIMIT:
            self.flush()   # bounded: a batch that sends more goes out in several sends
            self.datapath.dirty_links.add(self)
        return None

    def _send_one(self, address, parts):
        try:
            self.socket.sendmsg(parts, (), 0, address)
        except OSError as error:
            return _send_error(error)
        return None

    def flush(self):
        """Send what this batch queued; a failure is a counted drop for each datagram lost."""
        for address, segment_size, messages in self.batcher.take():
            if len(messages) == 1:
                self._dropped(address, self._send_one(address, messages[0]), 1)
                continue
            try:
                self.socket.sendmsg([part for message in messages for part in message],
                                    segment_option(segment_size), 0, address)
            except OSError as error:
                if error.errno not in _GSO_REFUSALS:
                    self._dropped(address, _send_error(error), len(messages))
                    continue
                # The path is narrower than a segment, or the kernel will not segment:
                # send one by one from now on (the kernel fragments where it must).
                self.gso = False
                self.log.warn("UDP GSO refused ({error}): sending datagrams one at a time", error=error.strerror)
                for message in messages:
                    self._dropped(address, self._send_one(address, message), 1)

    def _dropped(self, address, reason, count):
        if reason is not None:
            peer = self.datapath.relay.peer_of_path(self, address)
            if peer is not None:
                # Counted as sent when queued; a datagram the kernel refused was not.
                counters = peer.counters
                counters.tx_packets = max(0, counters.tx_packets - count)
            for _ in range(count):
                self.datapath.drops.drop(reason, peer)


def open_ethernet_socket(interface):
    """An AF_PACKET socket for EtherType 0xcda8 on ``interface`` (needs CAP_NET_RAW)."""
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETHERTYPE_TUNNEL))
    try:
        sock.bind((interface, ETHERTYPE_TUNNEL))
        sock.setblocking(False)
        _enlarge_buffers(sock)
    except OSError:
        sock.close()
        raise
    return sock


class EthernetLink(_SharedSocket):
    kind = "ethernet"

    def __init__(self, datapath, interface, sock, reactor):
        self.datapath = datapath
        self.interface = interface
        self.socket = sock
        self.reactor = reactor
        self._reader = None

    def start(self):
        self._reader = add_reader(self.reactor, self.socket.fileno(), self._readable, "ethernet://" + self.interface)

    def stop(self):
        if self._reader is not None:
            self._reader.stop()
            self._reader = None
        self.socket.close()

    def describe(self, address):
        return "ethernet://%s/%s" % (self.interface, format_mac(address))

    def _readable(self):
        batch = []
        for _ in range(ETHERNET_READS_PER_TURN):
            try:
                data, (_, _, packet_type, _, source_mac) = self.socket.recvfrom(65536)
            except BlockingIOError:
                break
            except OSError as error:
                self.datapath.drops.drop("receive_error", None, error.strerror)
                break
            if packet_type == PACKET_HOST:
                batch.append((source_mac, data))
        if batch:
            self.datapath.received(self, batch)

    def send(self, address, data, body=None):
        try:
            self.socket.sendto(data if body is None else data + body, (self.interface, ETHERTYPE_TUNNEL, 0, 0, address))
        except OSError as error:
            return _send_error(error)
        return None
