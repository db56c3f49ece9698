"""Helpers for wire targets: fill in a checksum so fuzzed packets get past the check."""

import struct

from tunrelay.wire.checksum import internet_checksum

from ._input import FuzzInput


def with_checksum(buf, field, covered=None, initial=0):
    """``buf`` with the 16-bit checksum at ``field`` made correct over ``buf[:covered]``."""
    if len(buf) < field + 2:
        return buf
    packet = bytearray(buf)
    packet[field:field + 2] = b"\x00\x00"
    end = len(packet) if covered is None else covered
    struct.pack_into("!H", packet, field, internet_checksum(packet[:end], initial))
    return bytes(packet)


def with_ipv4_header_checksum(buf):
    if not buf:
        return buf
    return with_checksum(buf, 10, covered=(buf[0] & 0x0F) * 4)


def same_but_checksum(first, second, field):
    """Equal bytes, except that the checksum at ``field`` may be 0x0000 in one and 0xFFFF
    in the other: both are zero in one's complement and both verify (RFC 1071)."""
    first, second = bytes(first), bytes(second)
    if first[:field] + first[field + 2:] != second[:field] + second[field + 2:]:
        return False
    pair = {first[field:field + 2], second[field:field + 2]}
    return len(pair) == 1 or pair == {b"\x00\x00", b"\xff\xff"}


def with_pseudo_header(data):
    """``(options, source, destination, rest)`` for a transport-layer target: the first byte
    picks no addresses, IPv4 or IPv6 ones (``options % 3``), which the input holds next."""
    inp = FuzzInput(data)
    options = inp.u8()
    source = destination = None
    if options % 3:
        size = 4 if options % 3 == 1 else 16
        source, destination = inp.exact(size), inp.exact(size)
    return options, source, destination, inp.rest()


def checked_or_not(data, fill_in):
    """``(verify, packet)`` for a target whose parser checks a checksum: bit 0 of the first
    byte fills it in with ``fill_in(packet)``, bit 1 turns the check off."""
    options, packet = data[0], data[1:]
    if options & 1:
        packet = fill_in(packet)
    return not options & 2, packet
