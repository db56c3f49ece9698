"""The batched data path (tunrelay/datapath): what the network and the device hand it.

Two encrypted relays in memory (``tunrelay.testing.RelayPair``: tun, the default
configuration, so virtio-net headers and coalesced device writes) complete a handshake,
then run a program carved from the input, step by step:

- A's device hands A a batch: well-formed IPv4 TCP or UDP packets of one or two flows
  (fuzzed sizes, flags, sequence steps, TTL, options, checksums right or wrong), or raw
  bytes, behind a plain or a fuzzed virtio-net header. What A sends crosses to B as one
  batch after fuzzed damage: bit flips, truncation, duplicates, reordering, losses;
- raw datagrams arrive at B from A's address or from a stranger;
- A turns hostile (or buggy): it seals a plaintext of its own making with its session key,
  a transport packet with fuzzed bytes overwritten (lengths, IHL, version) or raw bytes,
  so that B's checks after decryption (IP length, padding, allowed IPs) meet what only an
  authenticated peer can send;
- the clock moves (rekeying, session expiry, keepalives run on it).

Contract: nothing raises; bad input is a counted drop. Checks, on what B writes to its
device: every packet comes from A's allowed IP (198.51.100.1); a plain write is exactly a
packet A's device handed A (or hostile A sealed), cut to its IP length (unless the input
gave A a non-plain virtio-net header, which A may act on: cut a super-packet, fill in a
checksum); a coalesced write (a GSO type in its virtio-net header) is an IPv4 TCP or UDP
packet whose lengths agree with the write and whose segment size fits it; and B never
writes more segments than A sealed packets, however often the network repeats a message
(the replay window).
"""

import struct

from tunrelay import config as configuration
from tunrelay.datapath.vnet import GSO_NONE, VNET_HEADER, pack
from tunrelay.testing import RelayPair, encrypted_peer_config

from ._input import FuzzInput
from ._packets import with_checksum, with_ipv4_header_checksum

REJECTIONS = ()
COVERS = ["tunrelay/datapath/__init__.py", "tunrelay/datapath/receive.py", "tunrelay/datapath/send.py",
          "tunrelay/datapath/coalesce.py", "tunrelay/datapath/headers.py", "tunrelay/datapath/segment.py",
          "tunrelay/crypto/keypair.py", "tunrelay/crypto/replay.py"]
MAX_LEN = 4096

KEY_A = bytes([0x40 + n for n in range(32)])
KEY_B = bytes([0x80 + n for n in range(32)])
A_OVERLAY, B_OVERLAY = bytes([198, 51, 100, 1]), bytes([198, 51, 100, 2])
A_UNDERLAY, STRANGER = ("192.0.2.1", 51820), ("192.0.2.99", 51820)
MAX_STEPS = 12
_PSEUDO = struct.Struct("!4s4sBBH")
# Parsed once: YAML would cost more than the rest of an input.
CONFIG_A = configuration.parse(encrypted_peer_config(1, 2, KEY_B))
CONFIG_B = configuration.parse(encrypted_peer_config(2, 1, KEY_A))


def _pair():
    pair = RelayPair(CONFIG_A, CONFIG_B, key_a=KEY_A, key_b=KEY_B)
    pair.ping_both_ways()
    pair.link_a.deliver = None        # from here on the target carries A's messages to B itself
    pair.b.device.written.clear()
    pair.b.device.writes.clear()
    return pair


def _transport_packet(inp, flow, sequence):
    """A checksummed IPv4 packet from A to B: TCP (ACK, maybe PSH or other flags) or UDP."""
    options = inp.u8()
    payload = bytes([options]) * (inp.u16() % 1400)
    source = A_OVERLAY if options & 0x80 == 0 else inp.exact(4)
    port = 40000 + flow
    if options & 1:
        transport = struct.pack("!HHH2s", port, 5201, 8 + len(payload), b"\x00\x00") + payload
        protocol, checksum_field = 17, 6
    else:
        flags = 0x10 if options & 6 == 0 else (0x18 if options & 6 == 2 else inp.u8())
        tcp_options = b"\x01\x01\x08\x0a" + inp.exact(8) if options & 8 else b""
        offset = (20 + len(tcp_options)) // 4 << 4
        transport = struct.pack("!HHIIBBHHH", port, 5201, sequence, 1, offset, flags, 502, 0, 0) + tcp_options
        transport += payload
        protocol, checksum_field = 6, 16
    ttl = 64 if options & 0x10 == 0 else inp.u8()
    pseudo = _PSEUDO.pack(source, B_OVERLAY, 0, protocol, len(transport))
    if options & 0x20 == 0:   # otherwise the checksum stays wrong (zero)
        transport = with_checksum(transport, checksum_field, initial=_sum(pseudo))
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(transport), 0, 0x4000, ttl, protocol, 0, source,
                         B_OVERLAY)
    return with_ipv4_header_checksum(header + transport), len(payload)


def _sum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return total


def _device_batch(inp):
    """A batch from A's device: frames behind virtio-net headers, and the packets they hold."""
    frames, sequences = [], [1000, 500000]
    for _ in range(1 + inp.u8() % 16):
        kind = inp.u8()
        if kind % 4 == 3:
            packet = inp.sized(1500)
        else:
            flow = kind >> 7
            packet, size = _transport_packet(inp, flow, sequences[flow])
            sequences[flow] = (sequences[flow] + (size if kind & 0x40 == 0 else inp.u16())) & 0xFFFFFFFF
        header = pack(0, GSO_NONE, 0, 0, 0, 0) if kind & 0x20 == 0 else inp.exact(VNET_HEADER)
        frames.append(header + packet)
    return frames


def _hostile_plaintext(inp):
    """What an authenticated but hostile A seals itself: a transport packet with up to three
    bytes overwritten, or raw bytes; padded to 16 as a sender pads, so that B sees exactly it."""
    how = inp.u8()
    if how & 3 == 3:
        plaintext = bytearray(inp.sized(1500))
    else:
        plaintext = bytearray(_transport_packet(inp, how >> 7, inp.u32())[0])
        for _ in range(how >> 2 & 3):
            position = inp.u8() % len(plaintext)
            plaintext[position] = inp.u8()
    return bytes(plaintext) + bytes(-len(plaintext) % 16)


def _damaged(inp, messages):
    """A's messages as the network hands them to B: flipped, cut, repeated, reordered, lost."""
    result = []
    for message in messages:
        action = inp.u8()
        if action < 160:
            result.append(message)
        elif action < 190 and message:
            damaged = bytearray(message)
            damaged[inp.u16() % len(damaged)] ^= 1 << (action % 8)
            result.append(bytes(damaged))
        elif action < 210:
            result.append(message[:inp.u16() % (len(message) + 1)])
        elif action < 235:
            result.extend((message, message))
        elif action < 250 and result:
            result.insert(0, message)
        # else: lost
    return result


def _ip_length(packet):
    """The length the IP header claims, or None for something that is no IP packet."""
    if len(packet) >= 20 and packet[0] >> 4 == 4:
        return struct.unpack_from("!H", packet, 2)[0]
    if len(packet) >= 40 and packet[0] >> 4 == 6:
        return 40 + struct.unpack_from("!H", packet, 4)[0]
    return None


def _segments(header, packet):
    """How many packets one device write stands for; asserts what a coalesced write must be."""
    assert _ip_length(packet) == len(packet), (header, packet[:40].hex())
    if header is None or header.gso_type == GSO_NONE:
        return 1
    assert packet[0] >> 4 == 4 and packet[9] in (6, 17), (header, packet[:40].hex())
    header_length = (packet[0] & 15) * 4
    transport_header = 8 if packet[9] == 17 else (packet[header_length + 12] >> 4) * 4
    payload = len(packet) - header_length - transport_header
    assert 0 < header.gso_size <= payload, (header.gso_size, payload)
    return -(-payload // header.gso_size)


def fuzz_one(data):
    inp = FuzzInput(data)
    pair = _pair()
    a, b = pair.a, pair.b
    handed = set()
    exact = True     # until A's device hands a frame behind a non-plain header, which A may cut up
    hostile_seals = 0
    for _ in range(MAX_STEPS):
        if not inp.remaining:
            break
        choice = inp.u8()
        step = choice % 8
        if step == 6 and choice & 0x80:
            keypair = a.peers["peer2"].wg.current
            if keypair is None or not keypair.usable_for_sending(pair.clock.seconds()):
                continue
            plaintext = _hostile_plaintext(inp)
            length = _ip_length(plaintext)
            if length is not None and length <= len(plaintext):
                handed.add(plaintext[:length])
            hostile_seals += 1
            message = b"".join(keypair.seal(plaintext))
            b.datapath.received(pair.link_b, [(A_UNDERLAY, m) for m in _damaged(inp, [message])])
        elif step < 5:
            frames = _device_batch(inp)
            for frame in frames:
                exact = exact and not any(frame[:VNET_HEADER])
                packet = frame[VNET_HEADER:]
                length = _ip_length(packet)
                if length is not None and length <= len(packet):
                    handed.add(packet[:length])
            a.datapath.from_device(frames)
            messages = [message for _, message in pair.link_a.sent]
            pair.link_a.sent.clear()
            b.datapath.received(pair.link_b, [(A_UNDERLAY, m) for m in _damaged(inp, messages)])
        elif step < 7:
            source = A_UNDERLAY if step == 5 else STRANGER
            b.datapath.received(pair.link_b, [(source, inp.sized(300)) for _ in range(1 + inp.u8() % 4)])
        else:
            pair.clock.advance(inp.u16() % 400)
            pair.link_a.sent.clear()
    sealed = a.peers["peer2"].counters.tx_packets + hostile_seals
    written = 0
    for header, frame in b.device.writes:
        packet = frame[VNET_HEADER:]
        assert packet[12:16] == A_OVERLAY, packet[:20].hex()
        if exact and header.gso_type == GSO_NONE:
            assert packet in handed, packet[:40].hex()
        written += _segments(header, packet)
    assert written <= sealed, (written, sealed)
