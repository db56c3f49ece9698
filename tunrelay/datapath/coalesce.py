"""Receive-side coalescing (userspace GRO): one device write per run of a flow's segments.

What a receive batch delivers to the device is gathered here and leaves as few writes as
the rules allow; a tun/tap opened with IFF_VNET_HDR takes a whole run behind one
virtio-net header, and the kernel's receive path (the dominant cost of a tun write) runs
once per run instead of once per packet. The rules are wireguard-go's
(tun/offload_linux.go) and the kernel's GRO self-tests': coalesce only within one batch,
never with a timer, and only

- TCP (IPv4 without options and not a fragment, or IPv6 without extension headers) with
  the same addresses, ports and ACK number, flags ACK or ACK|PSH, identical TCP options and
  urgent pointer, equal TOS/DF/TTL (IPv6: traffic class and hop limit), the sequence exactly contiguous,
  equal payload sizes except a shorter last one, and nothing after a PSH; a run stays
  within 65535 bytes of IP packet;
- UDP (USO, RFC 768) with the same addresses and ports, equal IP fields, equal sizes except
  a shorter last one, a verified checksum on every datagram, and at most
  UDP_MAX_COALESCED_SEGMENTS of them (the kernel refuses more). The data path leaves this
  off (``udp=False``): see ``tunrelay.datapath.Datapath`` for what it cost a receiver.

Checksums. A UDP run is written with F_NEEDS_CSUM, so the kernel trusts it: every datagram's
checksum is verified here first, which costs a sum over its bytes, so only datagrams up
to UDP_MAX_COALESCED_PAYLOAD are merged. A TCP run is written with a *full* checksum and no
F_NEEDS_CSUM, and the kernel verifies all of it: the run's checksum is derived from the
segments' own checksums without reading their payloads (a correct segment's payload sum
is minus the sum of its pseudo-header and TCP header, modulo 0xFFFF; sums add, and a sum
one byte out of step is times 256, RFC 1071 §2). So any segment whose checksum was wrong
makes the run's checksum wrong, and the kernel drops the run and counts it
(TcpInCsumErrors), as it would have dropped that segment; a run that passes is byte for byte
what the peer sent. The head's IPv4 header checksum is verified here (20 bytes; the members'
kept fields must equal the head's). Summing every payload in Python instead would cost
more than decrypting it.

``take`` returns the writes, each a list of buffers for one ``os.writev``: the 10-byte
virtio-net header, then the packet, or the run's rewritten headers followed by views of
every segment's payload (no copy); and beside them who each write came from, so that a
refused write is counted against its peer.
"""

import struct

from tunrelay.constants import (MAX_COALESCED_IP_LENGTH, TCP_MAX_COALESCED_SEGMENTS, UDP_MAX_COALESCED_PAYLOAD,
                                UDP_MAX_COALESCED_SEGMENTS)

from . import vnet
from .headers import IPV4_HEAD, IPV4_HEAD_SIZE

__all__ = ["Coalescer"]

_PLAIN = vnet.PLAIN_HEADER
_ACK, _ACK_PSH, _PSH = 0x10, 0x18, 0x08
_U16 = struct.Struct("!H")
_ETHERTYPE_IPV4, _ETHERTYPE_IPV6 = b"\x08\x00", b"\x86\xdd"
# The fields a TCP segment is judged by, in one read: IPv4 TOS, flags/fragment, TTL, then
# addresses and ports, sequence, ACK, data offset and flags; IPv6 version/class/label and
# hop limit, then the same.
_TCP4 = struct.Struct("!xBxxxxHBxxx12sIIBB")
_TCP6 = struct.Struct("!IxxxB36sIIBB")
_NOP_NOP_TIMESTAMP = 0x0101080A   # the option words of a Linux segment: NOP, NOP, timestamp, length 10


class _Run:
    """The segments of one flow merged so far, headed by the first one."""

    __slots__ = ("head", "ip", "l4", "headers_end", "gso_size", "ip_total", "next_seq",
                 "closed", "same", "options", "checksums", "weights", "odd", "udp", "packets", "owner", "constant")

    def __init__(self, head, ip, l4, headers_end, udp, same, options, owner, constant):
        self.head = head                  # the first packet (its headers are the run's)
        self.ip = ip                      # offset of the IP header (the L2 header length)
        self.l4 = l4                      # offset of the TCP/UDP header
        self.headers_end = headers_end    # the same for every member
        # What every member adds to the run's checksum alike: the pseudo-header's addresses
        # (summed as integers), and for a TCP run read from its integers the header words
        # all members share; ``checksums`` holds the rest, member by member.
        self.constant = constant
        self.gso_size = len(head) - headers_end
        self.ip_total = len(head) - ip
        self.next_seq = None
        self.closed = False
        self.same = same                  # header bytes every member must share
        self.options = options            # TCP options bytes (compared, never merged)
        self.checksums = 0                # TCP: unfolded sum of members' varying header words
        self.weights = 1                  # TCP: how many times ``constant`` belongs in that sum
        self.odd = self.gso_size & 1      # the next payload starts at an odd offset
        self.udp = udp
        self.packets = [head]
        self.owner = owner


class Coalescer:
    """Gathers one batch's packets for the device. ``l2`` is 0 (tun) or 14 (tap: Ethernet)."""

    def __init__(self, l2=0, tcp=True, udp=True):
        self.l2 = l2
        self.tcp = tcp
        self.udp = udp
        self._writes = []     # in arrival order: a _Run, or (packet, owner), or (frame, owner, framed)
        self._open = {}       # flow key -> the run new segments of that flow may join
        self._last_key = self._last_run = None   # the run the last parsed segment opened

    def __len__(self):
        return len(self._writes)

    def add_framed(self, frame, owner):
        """A frame that is written as it is (its own virtio-net header included)."""
        self._writes.append((frame, owner, True))

    def add(self, packet, owner, head=None):
        """A packet (tun) or frame (tap) for the device, from ``owner`` (a peer, or None).

        ``head`` is the packet's ``IPV4_HEAD`` when the caller has read it already (tun): an
        IPv4 TCP segment is then judged by the integers it holds, without new slices. Without
        it, a tun IPv4 packet is read here, so that every segment of a flow takes the same path
        and keys the same runs (a segment too short for IPV4_HEAD is read zero-padded: the
        padding lands where only options would be read, and a segment that short has none)."""
        if head is None and not self.l2 and len(packet) >= 20 and packet[0] == 0x45 and (
                packet[2] << 8 | packet[3]) == len(packet):
            head = IPV4_HEAD.unpack_from(packet if len(packet) >= IPV4_HEAD_SIZE
                                         else bytes(packet).ljust(IPV4_HEAD_SIZE, b"\x00"))
        if head is not None:
            (_, tos, size, fragment, ttl, protocol, source, destination, ports, sequence, ack, offset, flags,
             window, checksum, urgent, option0, option1, option2) = head
            if protocol == 6 and self.tcp and not fragment & 0x3FFF:   # TCP, not a fragment
                headers_end = 20 + (offset >> 4) * 4
                if (flags == _ACK or flags == _ACK_PSH) and 40 <= headers_end < size:
                    if offset == 0x50:
                        options = None
                    elif offset == 0x80 and option0 == _NOP_NOP_TIMESTAMP:   # what Linux sends
                        options = (option1, option2)
                    else:
                        options = packet[40:headers_end]
                    key = (source, destination, ports, ack)
                    payload = size - headers_end
                    # The words of this member's TCP header and pseudo-header that vary within
                    # a run (a 32-bit field is congruent to the sum of its halves, mod 0xFFFF);
                    # the rest is the run's ``constant``.
                    varying = sequence + window + checksum + size + flags
                    # A batch is mostly one flow's segments in a row: the last run first, then the table.
                    run = self._last_run if key == self._last_key else self._open.get(key)
                    if run is not None:
                        # The urgent pointer is summed once, from the head: a member must match it.
                        if (not run.closed and sequence == run.next_seq
                                and (tos, fragment, ttl, offset, urgent) == run.same
                                and options == run.options and payload <= run.gso_size
                                and run.ip_total + payload <= MAX_COALESCED_IP_LENGTH
                                and len(run.packets) < TCP_MAX_COALESCED_SEGMENTS):
                            self._join(run, packet, payload, sequence, varying, flags)
                            return
                        run.closed = True
                    if not int.from_bytes(packet[:20], "big") % 0xFFFF:   # a head's header checksum: see _add_tcp
                        options_sum = (0 if options is None else option0 + option1 + option2
                                       if type(options) is tuple else int.from_bytes(options, "big"))
                        constant = source + destination + 6 - 20 + ports + ack + (offset << 8) + urgent + options_sum
                        run = _Run(packet, 0, 20, headers_end, False, (tos, fragment, ttl, offset, urgent), options, owner,
                                   constant)
                        self._open_run(run, key, sequence, payload, varying, flags)
                        self._last_key, self._last_run = key, run
                        return
                self._writes.append((packet, owner))
                return
            if protocol != 17:
                self._writes.append((packet, owner))
                return
        if type(packet) is not bytes:
            packet = bytes(packet)   # a plaintext datagram is a view into its read; keys need bytes
        l2 = self.l2
        size = len(packet)
        if size < l2 + 28:          # not even an IPv4 header and a UDP header
            self._writes.append((packet, owner))
            return
        if l2:
            ethertype = packet[12:14]
            version = 4 if ethertype == _ETHERTYPE_IPV4 else 6 if ethertype == _ETHERTYPE_IPV6 else 0
            if packet[l2] >> 4 != version:
                self._writes.append((packet, owner))
                return
        first = packet[l2]
        if first == 0x45:
            protocol = packet[l2 + 9]
            if protocol == 6 and self.tcp and size > l2 + 40:
                tos, fragment, ttl, flow, sequence, ack, offset, flags = _TCP4.unpack_from(packet, l2)
                if not fragment & 0x3FFF:   # not a fragment (MF or an offset)
                    self._add_tcp(packet, size, l2 + 20, (tos, fragment, ttl, offset, packet[l2 + 38:l2 + 40]), flow,
                                  sequence, ack, offset, flags, owner)
                    return
            elif protocol == 17 and self.udp and not packet[l2 + 6] & 0x3F and not packet[l2 + 7]:
                self._add_udp(packet, size, l2 + 20, l2 + 12, owner)
                return
        elif first >> 4 == 6 and size > l2 + 48:
            protocol = packet[l2 + 6]
            if protocol == 6 and self.tcp and size > l2 + 60:
                head, hop_limit, flow, sequence, ack, offset, flags = _TCP6.unpack_from(packet, l2)
                self._add_tcp(packet, size, l2 + 40, (head >> 20, hop_limit, offset, packet[l2 + 58:l2 + 60]), flow,
                              sequence, ack, offset, flags, owner)
                return
            if protocol == 17 and self.udp:
                self._add_udp(packet, size, l2 + 40, l2 + 8, owner)
                return
        self._writes.append((packet, owner))

    @staticmethod
    def _join(run, packet, payload, sequence, member_sum, flags):
        run.packets.append(packet)
        run.ip_total += payload
        run.next_seq = (sequence + payload) & 0xFFFFFFFF
        # A payload that starts one byte out of step in the run sums to 256 times its own sum.
        if run.odd:
            run.checksums += member_sum * 256
            run.weights += 256
        else:
            run.checksums += member_sum
            run.weights += 1
        if payload & 1:
            run.odd = not run.odd
        if flags == _ACK_PSH or payload < run.gso_size:
            run.closed = True      # nothing may follow a PSH or a short segment

    def _open_run(self, run, key, sequence, payload, member_sum, flags):
        run.next_seq = (sequence + payload) & 0xFFFFFFFF
        run.checksums = member_sum
        run.closed = flags == _ACK_PSH
        self._open[key] = run
        self._writes.append(run)

    def _add_tcp(self, packet, size, l4, same, flow, sequence, ack, offset, flags, owner):
        """``same``: what every member must share with the head (TOS, DF and TTL, or traffic
        class and hop limit; the data offset and urgent pointer); ``flow``: addresses and ports."""
        headers_end = l4 + (offset >> 4) * 4
        if (flags != _ACK and flags != _ACK_PSH) or headers_end >= size or headers_end < l4 + 20:
            self._writes.append((packet, owner))
            return
        if self.l2:
            flow = packet[:12] + flow   # and the MACs
        key = (flow, ack)
        options = packet[l4 + 20:headers_end] if headers_end > l4 + 20 else b""
        payload = size - headers_end
        # This member's share of the run's checksum: its pseudo-header (length part; the
        # addresses are added once per member at write time) and its whole TCP header.
        member_sum = int.from_bytes(packet[l4:headers_end], "big") + (size - l4) + 6
        run = self._open.get(key)
        if run is not None:
            if (not run.closed and sequence == run.next_seq and same == run.same and options == run.options
                    and payload <= run.gso_size and run.ip_total + payload <= MAX_COALESCED_IP_LENGTH
                    and len(run.packets) < TCP_MAX_COALESCED_SEGMENTS):
                self._join(run, packet, payload, sequence, member_sum, flags)
                return
            run.closed = True
        ip = self.l2
        if packet[ip] == 0x45 and int.from_bytes(packet[ip:ip + 20], "big") % 0xFFFF:
            # A head whose IPv4 header checksum is wrong is written as it is, for the kernel to
            # drop. Members need no such check: every header field a run keeps (addresses, TOS,
            # DF, TTL) must equal the head's, and their lengths are checked against their sizes.
            self._writes.append((packet, owner))
            return
        run = _Run(packet, ip, l4, headers_end, False, same, options, owner,
                   int.from_bytes(packet[ip + 12:ip + 20] if packet[ip] == 0x45 else packet[ip + 8:ip + 40], "big"))
        self._open_run(run, key, sequence, payload, member_sum, flags)

    def _add_udp(self, packet, size, l4, addresses, owner):
        ip = self.l2
        payload = size - l4 - 8
        if payload <= 0 or payload > UDP_MAX_COALESCED_PAYLOAD or packet[l4 + 6:l4 + 8] == b"\x00\x00":
            self._writes.append((packet, owner))   # too large to verify cheaply, or sent without a checksum
            return
        # Verify the datagram's checksum: pseudo-header plus the whole datagram sums to 0 mod 0xFFFF.
        length = size - l4
        total = (int.from_bytes(packet[addresses:l4], "big") + 17 + length
                 + int.from_bytes(packet[l4:], "big") * (256 if length & 1 else 1))
        if total % 0xFFFF:
            self._writes.append((packet, owner))   # the kernel drops it and counts it, as it should
            return
        key = packet[addresses:l4 + 4] if not ip else packet[:12] + packet[addresses:l4 + 4]
        same = packet[ip:ip + 2] + packet[ip + 6:ip + 10] if packet[ip] == 0x45 else packet[ip:ip + 2] + packet[ip + 6:ip + 8]
        run = self._open.get(key)
        if run is not None:
            if (not run.closed and same == run.same and payload <= run.gso_size
                    and run.ip_total + payload <= MAX_COALESCED_IP_LENGTH
                    and len(run.packets) < UDP_MAX_COALESCED_SEGMENTS):
                run.packets.append(packet)
                run.ip_total += payload
                if payload < run.gso_size:
                    run.closed = True
                return
            run.closed = True
        run = _Run(packet, ip, l4, l4 + 8, True, same, b"", owner, int.from_bytes(packet[addresses:l4], "big"))
        self._open[key] = run
        self._writes.append(run)

    def take(self):
        """The batch's device writes (lists of buffers for one writev each) and the owner of
        each; empties the batch."""
        items, self._writes = self._writes, []
        self._open.clear()
        self._last_key = self._last_run = None
        writes, owners = [], []
        for item in items:
            if type(item) is _Run:
                writes.append([_PLAIN, item.head] if len(item.packets) == 1 else self._run_write(item))
                owners.append(item.owner)
            else:
                writes.append([item[0]] if len(item) == 3 else [_PLAIN, item[0]])
                owners.append(item[1])
        return writes, owners

    @staticmethod
    def packets_of(write):
        """The ordinary packets a run's write stands for (to write them one by one instead)."""
        return write.packets if isinstance(write, _RunWrite) else None

    def _run_write(self, run):
        head, ip, l4 = run.head, run.ip, run.l4
        headers = bytearray(head[:run.headers_end])
        ipv4 = headers[ip] == 0x45
        if ipv4:
            headers[ip + 2:ip + 4] = _U16.pack(run.ip_total)
            headers[ip + 10:ip + 12] = b"\x00\x00"
            headers[ip + 10:ip + 12] = _U16.pack(0xFFFF - (int.from_bytes(headers[ip:ip + 20], "big") % 0xFFFF or 0xFFFF))
        else:
            headers[ip + 4:ip + 6] = _U16.pack(run.ip_total - 40)
        l4_length = run.ip_total - (l4 - ip)
        if run.udp:
            headers[l4 + 4:l4 + 6] = _U16.pack(l4_length)
            # F_NEEDS_CSUM: the field holds the pseudo-header sum, the kernel adds the rest.
            pseudo = (run.constant + 17 + l4_length) % 0xFFFF or 0xFFFF   # a UDP run's constant: the addresses
            headers[l4 + 6:l4 + 8] = _U16.pack(pseudo)
            header = vnet.pack(vnet.F_NEEDS_CSUM, vnet.GSO_UDP_L4, l4 + 8, run.gso_size, l4, 6)
        else:
            if run.packets[-1][l4 + 13] == _ACK_PSH:
                headers[l4 + 13] |= _PSH
            headers[l4 + 16:l4 + 18] = b"\x00\x00"
            # Members' payload sums: minus (their pseudo-header + TCP header) each, modulo 0xFFFF.
            payload_sums = -(run.checksums + run.weights * run.constant)
            addresses = int.from_bytes(headers[ip + 12:ip + 20] if ipv4 else headers[ip + 8:ip + 40], "big")
            merged = addresses + 6 + l4_length + int.from_bytes(headers[l4:], "big") + payload_sums
            headers[l4 + 16:l4 + 18] = _U16.pack(0xFFFF - (merged % 0xFFFF or 0xFFFF))
            header = vnet.pack(0, vnet.GSO_TCPV4 if ipv4 else vnet.GSO_TCPV6, run.headers_end, run.gso_size, 0, 0)
        end = run.headers_end
        # Each member's payload, cut out once here (a slice copies; cheaper than a view).
        return _RunWrite([header, headers] + [packet[end:] for packet in run.packets], run.packets, run.udp)

    def refused(self, write):
        """The kernel would not take a coalesced ``write``: stop coalescing its kind; return the kind."""
        if write.udp:
            self.udp = False
            return "UDP"
        self.tcp = False
        return "TCP"


class _RunWrite(list):
    """A coalesced write; remembers its packets in case the kernel refuses the super-packet."""

    __slots__ = ("packets", "udp")

    def __init__(self, buffers, packets, udp):
        list.__init__(self, buffers)
        self.packets = packets
        self.udp = udp
