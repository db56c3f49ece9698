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
