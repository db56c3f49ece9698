"""Checked packet parsers and emitters; every parser raises only ``errors.MalformedPacket``.

ethernet, arp, ipv4, ipv6 (with the receive-side extension-header chain), icmp (v4),
icmpv6 (with Neighbour Discovery messages), udp, tcp (header); ``ip.route_key`` classifies
a raw IP packet cheaply for the forwarding plane; ``checksum`` holds RFC 1071 sums.
"""
