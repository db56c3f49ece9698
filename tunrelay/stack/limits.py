"""Every limit and timer of the responder stack, named after what it bounds.

Times are seconds on the injected clock. Byte limits count stored payload bytes plus a
fixed per-item overhead, so that floods of tiny items are charged for what they cost.
"""

# --- IPv4 (RFC 791, RFC 1122 §3.2.1) -------------------------------------------------
IPV4_MIN_MTU = 68              # RFC 791: every module must pass a 68-byte datagram unfragmented
IPV4_MAX_DATAGRAM = 65535      # the 16-bit total-length field
IPV4_DEFAULT_TTL = 64          # RFC 1700 / Linux net.ipv4.ip_default_ttl

# --- fragment reassembly (RFC 791 §3.2, RFC 815, RFC 1122 §3.3.2) ---------------------
REASSEMBLY_TIMEOUT = 30.0      # Linux ipfrag_time; RFC 1122 recommends 60-120 s, RFC 791 15 s
REASSEMBLY_MAX_DATAGRAMS = 64  # datagrams in progress at once
REASSEMBLY_MAX_TOTAL_BYTES = 1024 * 1024   # all incomplete datagrams together
REASSEMBLY_MAX_FRAGMENTS = 256 # stored pieces of one datagram; bounds the O(n) insert cost
REASSEMBLY_ENTRY_OVERHEAD = 64 # bytes charged per datagram in progress
REASSEMBLY_PIECE_OVERHEAD = 32 # bytes charged per stored piece

# --- IPv6 (RFC 8200) ----------------------------------------------------------------
IPV6_MIN_MTU = 1280            # RFC 8200 §5
IPV6_DEFAULT_HOP_LIMIT = 64    # Linux net.ipv6.conf.*.hop_limit
# RFC 8200 §4.5: reassembly is abandoned 60 s after the first-arriving fragment. The other
# bounds are IPv4's (REASSEMBLY_*), for a datagram of up to 40 + 65535 bytes.
IPV6_REASSEMBLY_TIMEOUT = 60.0

# --- Neighbour Discovery (RFC 4861 §10) ------------------------------------------------
# One lifetime for an entry, as for ARP: RFC 4861 lets an unconfirmed entry go STALE after
# REACHABLE_TIME (30 s) and keep being used until probed; ours is simply re-resolved by the
# next packet after ND_CACHE_TIMEOUT, which costs one solicitation round trip.
ND_CACHE_TIMEOUT = 60.0
ND_RETRANS_TIMER = 1.0         # RetransTimer: between solicitations for one address
ND_MAX_MULTICAST_SOLICIT = 3   # then the queued packets are dropped
ND_MAX_NEIGHBOR_ADVERTISEMENT = 3   # unsolicited NAs at start (§7.2.6)
ND_ANNOUNCE_INTERVAL = 1.0     # "separated by at least RetransTimer seconds"

# --- ARP (RFC 826, RFC 1122 §2.3.2, RFC 5227) -----------------------------------------
ARP_CACHE_TIMEOUT = 60.0       # an entry not re-confirmed by an ARP packet for this long ages out
ARP_CACHE_MAX_ENTRIES = 256    # least recently confirmed entry evicted beyond this
ARP_REQUEST_INTERVAL = 1.0     # between requests for one unresolved address (RFC 1122: <= 1/s)
ARP_MAX_REQUESTS = 3           # Linux mcast_solicit; then the queued packets are dropped
ARP_QUEUE_MAX_PACKETS = 64     # packets waiting for one address to resolve
ARP_QUEUE_MAX_BYTES = 128 * 1024  # bytes waiting for one address (a fragmented 64 KiB reply fits)
ARP_MAX_PENDING = 32           # addresses being resolved at once
ARP_ANNOUNCE_NUM = 2           # RFC 5227 §1.1 ANNOUNCE_NUM: gratuitous ARPs at start
ARP_ANNOUNCE_INTERVAL = 2.0    # RFC 5227 §1.1 ANNOUNCE_INTERVAL

# --- ICMP (RFC 792, RFC 1122 §3.2.2, RFC 1812 §4.3.2.8) --------------------------------
ICMP_ERROR_RATE = 10.0         # sustained ICMP errors per second (token refill rate)
ICMP_ERROR_BURST = 10          # token-bucket depth
ICMP_ERROR_MAX_DATAGRAM = 576  # RFC 1812 §4.3.2.3: quote as much as fits in 576 bytes

# --- ICMPv6 (RFC 4443 §2.4) -------------------------------------------------------------
ICMPV6_ERROR_RATE = ICMP_ERROR_RATE    # (f): a token bucket, like IPv4's
ICMPV6_ERROR_BURST = ICMP_ERROR_BURST
ICMPV6_ERROR_MAX_PACKET = IPV6_MIN_MTU  # (c): as much as fits without exceeding the minimum MTU
