"""Datagram links: one message per UDP datagram, or per raw Ethernet frame of EtherType 0xcda8.

A datagram link is one socket shared by every peer behind it; the relay tells peers apart
by the source address (plaintext) and remembers that binding. The Ethernet link is an
AF_PACKET SOCK_DGRAM socket bound to one interface and to EtherType 0xcda8, as in ethertap's
usertunnel: the kernel writes the link header from the peer's MAC we give it and strips
it on receive, so the payload is the bare frame. Only frames addressed to this host
(PACKET_HOST) are taken: never our own transmissions, never other hosts' traffic seen in
promiscuous mode.

Errors from the kernel on send (a frame larger than the path allows, a full buffer) are
drops with a reason, not exceptions. UDP sends and receives use segmentation offload where
the kernel has it (``tunrelay.twisted_io.gso``): many datagrams per system call.
"""

import errno
import socket

from twisted.internet.abstract import FileDescriptor
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from tunrelay.constants import ETHERTYPE_TUNNEL, SOCKET_BUFFER_BYTES, UDP_MAX_PAYLOAD, UDP_RECEIVE_SIZE
from tunrelay.endpoints import format_mac
from tunrelay.twisted_io.gso import GroPort, SendBatcher, enable_gro, gso_supported, segment_option

__all__ = ["UdpLink", "EthernetLink", "listen_udp", "open_ethernet_socket"]

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
_DATAGRAMS_PER_TURN = 64
UDP_BATCH_LIMIT = 256       # datagrams queued for GSO before a send is forced, whatever the turn
_GSO_REFUSALS = (errno.EINVAL, errno.EMSGSIZE, errno.EIO, errno.EOPNOTSUPP)


def _send_error(error):
    return _SEND_ERRORS.get(error.errno, "send_error")


def _enlarge_buffers(sock):
    # The FORCE variants (CAP_NET_ADMIN, held during privileged start) pass net.core.rmem_max,
    # which is 208 KiB on a stock kernel: three fragmented super-packets would fill it.
    for forced, option in ((SO_RCVBUFFORCE, socket.SO_RCVBUF), (SO_SNDBUFFORCE, socket.SO_SNDBUF)):
        for attempt in (forced, option):
            try:
                sock.setsockopt(socket.SOL_SOCKET, attempt, SOCKET_BUFFER_BYTES)
                break
            except OSError:
                continue  # unprivileged, or capped: a smaller buffer only costs throughput


def listen_udp(reactor, port, link, interface):
    """Bind ``link`` to a UDP port that reads datagrams whole (Twisted's default cuts at 8 KiB)
    and cuts coalesced (GRO) ones apart."""
    listening = GroPort(port, link, interface, UDP_RECEIVE_SIZE, reactor)
    listening.startListening()
    return listening


class _SharedSocket:
    def close_path(self, address):
        """Nothing to close: the socket serves other peers; the relay forgets the binding."""


class UdpLink(_SharedSocket, DatagramProtocol):
    """One UDP socket. With GSO, what the relay sends in one reactor turn leaves at the end
    of that turn, consecutive same-sized datagrams to one address in a single sendmsg."""

    kind = "udp"
    log = Logger()

    def __init__(self, relay):
        self.relay = relay
        self.gso = False
        self.batcher = SendBatcher()
        self._flush_call = None

    def startProtocol(self):
        sock = self.transport.socket
        _enlarge_buffers(sock)
        self.gso = gso_supported(sock)
        enable_gro(sock)

    def stopProtocol(self):
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None

    def describe(self, address):
        host, port = address[0], address[1]
        return "udp://%s:%d" % ("[%s]" % host if ":" in host else host, port)

    def datagramReceived(self, data, address):
        self.relay.message_received(self, address[:2], data)

    def receive_error(self, error):
        self.relay.drops.drop("receive_error", None, error.strerror)

    def send(self, address, message):
        if len(message) > UDP_MAX_PAYLOAD:
            return "too_big_for_transport"
        if not self.gso:
            return self._send_one(address, message)
        self.batcher.add(address, message)
        if self.batcher.queued >= UDP_BATCH_LIMIT:
            self.flush()   # bounded: a turn that sends more goes out in several batches
        elif self._flush_call is None:
            self._flush_call = self.relay.clock.callLater(0, self.flush)
        return None

    def _send_one(self, address, message):
        try:
            self.transport.socket.sendto(message, address)
        except OSError as error:
            return _send_error(error)
        return None

    def flush(self):
        """Send what this turn queued; a failure is a counted drop for each datagram lost."""
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        for address, segment_size, messages in self.batcher.take():
            if len(messages) == 1:
                self._dropped(address, self._send_one(address, messages[0]), 1)
                continue
            try:
                self.transport.socket.sendmsg([b"".join(messages)], segment_option(segment_size), 0, address)
            except OSError as error:
                if error.errno not in _GSO_REFUSALS:
                    self._dropped(address, _send_error(error), len(messages))
                    continue
                # The path is narrower than a segment, or the kernel will not segment:
                # send one by one from now on (the kernel fragments where it must).
                self.gso = False
                self.log.warn("UDP GSO refused ({error}): sending datagrams one at a time",
                              error=error.strerror)
                for message in messages:
                    self._dropped(address, self._send_one(address, message), 1)

    def _dropped(self, address, reason, count):
        if reason is not None:
            peer = self.relay.peer_of_path(self, address)
            for _ in range(count):
                self.relay.drops.drop(reason, peer)


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


class EthernetLink(_SharedSocket, FileDescriptor):
    kind = "ethernet"

    def __init__(self, relay, interface, sock, reactor=None):
        FileDescriptor.__init__(self, reactor)
        self.relay = relay
        self.interface = interface
        self.socket = sock
        self.connected = 1

    def fileno(self):
        return self.socket.fileno()

    def describe(self, address):
        return "ethernet://%s/%s" % (self.interface, format_mac(address))

    def doRead(self):
        receive = self.relay.message_received
        for _ in range(_DATAGRAMS_PER_TURN):
            try:
                data, (_, _, packet_type, _, source_mac) = self.socket.recvfrom(65536)
            except BlockingIOError:
                return None
            except OSError as error:
                self.relay.drops.drop("receive_error", None, error.strerror)
                return None
            if packet_type == PACKET_HOST:
                receive(self, source_mac, data)
        return None

    def send(self, address, message):
        try:
            self.socket.sendto(message, (self.interface, ETHERTYPE_TUNNEL, 0, 0, address))
        except OSError as error:
            return _send_error(error)
        return None

    def connectionLost(self, reason):
        FileDescriptor.connectionLost(self, reason)
        self.socket.close()
