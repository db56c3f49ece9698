"""Every limit and timer tunrelay uses, named after what it bounds."""

# --- device -----------------------------------------------------------------
DEFAULT_MTU = 1420            # WireGuard's default: 1500 minus the largest encapsulation
MIN_MTU = 576                 # RFC 791 minimum reassembly size; IPv6 needs 1280 (checked at runtime)
MAX_MTU = 65535
DEVICE_READ_SIZE = 65536 + 64  # one read holds a full 64 KiB frame (room for a vnet header)
DEVICE_READS_PER_TURN = 64    # frames read per reactor turn before yielding to other sockets

# --- framing ----------------------------------------------------------------
PLAINTEXT_LENGTH_PREFIX = 2   # simpletun / usertunnel / OpenVPN-TCP: 2-byte big-endian length
MAX_FRAME_SIZE = 65535        # largest frame a 2-byte prefix can carry: 64 KiB data path
MIN_FRAME_SIZE = 576

# --- transports -------------------------------------------------------------
ETHERTYPE_TUNNEL = 0xCDA8     # ethertap usertunnel's EtherType
UDP_MAX_PAYLOAD = 65507       # IPv4 limit; an oversized frame cannot cross UDP whole
UDP_RECEIVE_SIZE = 65535      # read whole datagrams: a large MTU or a super-packet exceeds Twisted's 8 KiB default
# The largest offload frame (10-byte vnet header + IP packet) that still fits one UDP datagram once
# WireGuard adds its 16-byte header, padding to 16 and 16-byte tag; the kernel IP-fragments it on the
# wire. The device's gso_max_size is set from it so TSO never builds a larger super-packet.
OFFLOAD_FRAME_LIMIT = (UDP_MAX_PAYLOAD - 32) // 16 * 16
OFFLOAD_GSO_MAX_SIZE = OFFLOAD_FRAME_LIMIT - 10
SOCKET_BUFFER_BYTES = 4 * 1024 * 1024
TCP_BACKLOG_BYTES = 4 * 1024 * 1024   # bytes we queue beyond the kernel's send buffer before dropping
STREAM_READ_SIZE = 256 * 1024  # bytes read from a TCP connection per readable event (Twisted's default: 64 KiB)
MAX_CONNECTIONS_PER_PEER = 4  # newer connections from the same peer evict the oldest
MAX_UDP_BINDINGS = 4096       # remembered (socket, address) -> peer bindings
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
