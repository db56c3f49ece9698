"""Every limit and timer of the relay, named after what it bounds.

Protocol constants live with their protocols (``tunrelay.crypto.constants``: WireGuard's;
``tunrelay.stack``: the responder's); this module holds the relay's own bounds: batch sizes,
queues, buffers, connection counts and timers.
"""

# --- device -----------------------------------------------------------------
DEFAULT_MTU = 1420            # WireGuard's default: 1500 minus the largest encapsulation
MIN_MTU = 576                 # RFC 791 minimum reassembly size; IPv6 needs 1280 (checked at runtime)
MAX_MTU = 65535
MAX_FRAME = 65535             # the largest frame the data path carries (a 64 KiB IP packet; a 2-byte prefix's limit)
MIN_FRAME = 576
DEVICE_READ_SIZE = 65536 + 64  # one read holds a full 64 KiB frame behind a virtio-net header
DEVICE_READS_PER_TURN = 64    # frames read per wake-up: one batch for the send path
MAX_COALESCED_IP_LENGTH = 65535   # a coalesced run is one IP packet
UDP_MAX_COALESCED_PAYLOAD = 256   # UDP datagrams merged only up to this size: each must be checksummed in Python
UDP_MAX_COALESCED_SEGMENTS = 64   # the kernel refuses a UDP GSO write of more (UDP_MAX_SEGMENTS: 64, 128 since 6.3)
TCP_MAX_COALESCED_SEGMENTS = 64   # a run's writev holds a view per member: far below UIO_MAXIOV (1024)
MIN_GSO_SIZE = 48                 # the kernel never sends a smaller MSS (TCP_MIN_SND_MSS); smaller is hostile

# --- framing ----------------------------------------------------------------
PLAINTEXT_LENGTH_PREFIX = 2   # simpletun / usertunnel / OpenVPN-TCP: 2-byte big-endian length
ENCRYPTED_LENGTH_PREFIX = 4   # a 64 KiB super-packet plus WireGuard's overhead exceeds 16 bits

# --- transports -------------------------------------------------------------
ETHERTYPE_TUNNEL = 0xCDA8     # ethertap usertunnel's EtherType
UDP_MAX_PAYLOAD = 65507       # IPv4 limit; an oversized frame cannot cross UDP whole
UDP_RECEIVE_SIZE = 65535      # a GRO read holds up to 64 KiB of coalesced datagrams
UDP_READS_PER_TURN = 32       # receive calls per wake-up (each may carry many coalesced datagrams)
ETHERNET_READS_PER_TURN = 64
UDP_BATCH_LIMIT = 256         # datagrams queued for GSO before a send is forced, whatever the batch
GSO_MAX_SEGMENTS = 64         # the kernel's UDP_MAX_SEGMENTS was 64 before Linux 6.3
GSO_MAX_SEGMENT_SIZE = 1452   # a segment must fit the path: 1500 over IPv6 (1472 over IPv4)
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
TCP_BACKLOG_BYTES = 4 * 1024 * 1024   # bytes we queue beyond the kernel's send buffer before dropping
STREAM_READ_SIZE = 256 * 1024  # bytes read from a TCP connection per readable event (Twisted's default: 64 KiB)
MAX_CONNECTIONS_PER_PEER = 4  # newer connections from the same peer evict the oldest
MAX_UDP_BINDINGS = 4096       # remembered (socket, address) -> peer bindings
MAX_PENDING_STREAMS = 64      # TCP connections not yet authenticated (WireGuard mode), all sources
MAX_PENDING_STREAMS_PER_SOURCE = 8   # ...and from one IP address (one host cannot fill the table)
HANDSHAKE_DEADLINE = 15.0     # ...and each must authenticate within this (three REKEY_TIMEOUTs)
RECONNECT_INITIAL_DELAY = 1.0
RECONNECT_MAX_DELAY = 30.0
RECONNECT_FACTOR = 1.5

# --- liveness ---------------------------------------------------------------
DEFAULT_IDLE_TIMEOUT = 180.0      # close a TCP connection that has received nothing for this long
ENDPOINT_REFRESH_INTERVAL = 5.0   # at most one DNS lookup per peer this often (rehandshakes retry every 5 s)

# --- logging ----------------------------------------------------------------
DROP_LOG_INTERVAL = 10.0      # at most one log line per drop reason per interval

# --- control ----------------------------------------------------------------
DEFAULT_CONTROL_SOCKET = "/run/tunrelay/{interface}.sock"
# wg(8) finds a userspace interface NAME at exactly this path (wireguard-tools' ipc-uapi-unix.h).
DEFAULT_UAPI_SOCKET = "/var/run/wireguard/{interface}.sock"
