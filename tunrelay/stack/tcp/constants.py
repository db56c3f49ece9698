"""Every limit and timer of the TCP responder, named after the specification it comes from.

Times are seconds on the injected clock; sizes are bytes unless named otherwise. The
sources are RFC 9293 (TCP), RFC 6298 (RTO), RFC 5681 and RFC 6582 (congestion control),
RFC 7323 (window scaling), RFC 6528 (ISNs) and RFC 5961 (blind-attack defences); the
choices they leave open are justified next to the constant, usually by what Linux does,
since Linux is the peer the responder must get along with.
"""

from tunrelay.wire.tcp import MAX_WINDOW_SHIFT

# --- sequence space (RFC 9293 §3.4) -------------------------------------------------
SEQ_MODULUS = 1 << 32
SEQ_MASK = SEQ_MODULUS - 1
SEQ_HALF = 1 << 31

# --- segment sizes (RFC 9293 §3.7.1, RFC 6691) ----------------------------------------
# The send MSS a peer implies by omitting the option: 576 - 40 over IPv4, and over IPv6
# the minimum MTU less 60 bytes of headers (RFC 8200 §8.3).
DEFAULT_SEND_MSS = 536
DEFAULT_SEND_MSS_IPV6 = 1220
# How much larger the IPv6 header is than IPv4's, and so how much less the IPv6 MSS.
IPV6_HEADER_EXTRA = 20
# What we advertise by default: a 1500-byte MTU minus 40 bytes of IPv4 and TCP header.
DEFAULT_LOCAL_MSS = 1460
# A peer advertising a tiny MSS would make us cut every byte of the send buffer into
# its own segment (CVE-2019-11479); 88 is the historic Linux TCP_MIN_MSS.
MIN_SEND_MSS = 88
# The MSS option is 16 bits wide.
MAX_MSS_OPTION = 0xFFFF

# --- buffers and windows (RFC 9293 §3.8.6, RFC 7323 §2) -------------------------------
# The largest value of the 16-bit window field.
MAX_WINDOW_FIELD = 0xFFFF
# Silly window syndrome avoidance (RFC 9293 §3.8.6.2): the receiver only re-opens its
# window by at least min(buffer / SWS_DIVISOR, MSS), and the sender only sends a short
# segment if it is at least the peer's largest window / SWS_DIVISOR (Fr and Fs = 1/2).
SWS_DIVISOR = 2
RECEIVE_BUFFER_SIZE = 256 * 1024
SEND_BUFFER_SIZE = 256 * 1024
# WritableAgain is only raised once this much room is free, so a producer resumed by the
# adapter can write a useful amount before it is paused again.
SEND_BUFFER_LOW_WATER = SEND_BUFFER_SIZE // 4
# The out-of-order queue holds at most this many disjoint byte ranges; its bytes are in
# any case bounded by the advertised window.
MAX_OUT_OF_ORDER_RANGES = 64


def window_shift_for(buffer_size):
    """The smallest RFC 7323 shift that lets a 16-bit window field cover ``buffer_size``."""
    shift = 0
    while (buffer_size >> shift) > MAX_WINDOW_FIELD and shift < MAX_WINDOW_SHIFT:
        shift += 1
    return shift


LOCAL_WINDOW_SHIFT = window_shift_for(RECEIVE_BUFFER_SIZE)

# --- options (RFC 7323, RFC 2018) --------------------------------------------------------
# RFC 7323 §5.4 allows a timestamp clock of 1 ms to 1 s per tick; 1 ms like Linux, so that
# RTT samples on a sub-millisecond tun link are not all rounded up to a second.
TIMESTAMP_HZ = 1000
# NOP, NOP, kind, length, TSval, TSecr: what a timestamp costs every segment, and so
# what the payload gives up (RFC 6691: the MSS excludes options).
TIMESTAMP_OPTION_LENGTH = 12
# An echoed timestamp further back than this is not an RTT sample but a confused peer.
MAX_TIMESTAMP_RTT = 2 * 60.0
# SACK blocks fit in the 40 option bytes: four alone, three next to a timestamp.
MAX_SACK_BLOCKS = 4
MAX_SACK_BLOCKS_WITH_TIMESTAMPS = 3

# --- acknowledgements (RFC 9293 §3.8.6.3, RFC 5681 §4.2) ------------------------------
# Linux's TCP_DELACK_MIN: far below the 500 ms MUST and the 200 ms this project targets,
# and short enough that a request/response peer without Nagle interplay is not stalled.
DELAYED_ACK_TIMEOUT = 0.04
# RFC 5681 §4.2: "an ACK SHOULD be generated for at least every second full-sized segment".
ACK_EVERY_FULL_SEGMENTS = 2

# --- retransmission timer (RFC 6298) --------------------------------------------------
INITIAL_RTO = 1.0           # RFC 6298 §2.1
# RFC 6298 §2.4 says 1 s SHOULD; we use Linux's 200 ms (TCP_RTO_MIN) because the
# responder sits on a tun link whose RTT is usually well under a millisecond, where a
# one-second floor turns every tail loss into a second of dead air. §2.4 permits this.
MIN_RTO = 0.2
MAX_RTO = 60.0              # RFC 6298 §2.5 allows a maximum of at least 60 s
CLOCK_GRANULARITY = 0.001   # RFC 6298 G: our clock is a float, 1 ms is a safe bound
RTO_ALPHA = 1 / 8           # RFC 6298 §2.3
RTO_BETA = 1 / 4
RTO_K = 4
# RFC 6298 §5.7: after a retransmitted SYN(-ACK) the RTO for data starts at 3 s.
RTO_AFTER_SYN_RETRANSMISSION = 3.0
# Give-up bounds (RFC 9293 §3.8.3 R2): consecutive expiries without progress, after which
# the connection is aborted and reported lost. Linux uses 15 and 5 respectively.
MAX_RETRANSMISSIONS = 12
MAX_SYNACK_RETRANSMISSIONS = 5
# Zero-window probes that went unanswered in a row (any ACK resets the count: RFC 9293
# §3.8.6.1 says a peer that keeps answering may keep its window closed forever).
MAX_UNANSWERED_PROBES = 12
# Caps the doubling of the probe interval (the interval itself is capped at MAX_RTO;
# this only keeps 2**n finite for a peer that answers a closed window for ever).
MAX_PROBE_BACKOFF_EXPONENT = 16

# --- congestion control (RFC 5681, RFC 6582) ------------------------------------------
DUPACK_THRESHOLD = 3        # RFC 5681 §3.2
# RFC 3042 limited transmit: one new segment on each of the first two duplicate ACKs.
LIMITED_TRANSMIT_SEGMENTS = 2
# RFC 5827 early retransmit: below this many outstanding segments, with nothing new that
# may be sent, the duplicate-ACK threshold drops to one less than the outstanding count.
EARLY_RETRANSMIT_SEGMENTS = 4
# RFC 5681 §3.1: ssthresh starts "arbitrarily high".
INITIAL_SSTHRESH = 1 << 30

# --- SACK-based recovery (RFC 6675) and RACK-TLP (RFC 8985) ----------------------------
# RFC 8985 §6.2 step 4: the reordering window multiplier returns to 1 after this many
# recoveries without a D-SACK.
RACK_REORDER_PERSIST = 16
# How far an echoed timestamp may be off the clock it came from (one tick).
TIMESTAMP_RESOLUTION = 1.0 / TIMESTAMP_HZ
# RFC 8985 §7.2: PTO = 2 * SRTT, plus WCDelAckT (the worst-case delayed ACK, 200 ms) when
# only one segment is out, since the peer may hold its ACK for that one. The floor is ours,
# like Linux's TCP_TIMEOUT_MIN: on a sub-millisecond tun link 2 * SRTT would fire before a
# busy reactor even read the ACK, and a spurious probe is a wasted segment.
TLP_DELAYED_ACK_ALLOWANCE = 0.2
TLP_MIN_PTO = 0.01
# Without an RTT sample yet, RFC 8985 §7.2 says PTO = 1 s.
TLP_INITIAL_PTO = 1.0

# --- closing (RFC 9293 §3.6, §3.10.7.4) -----------------------------------------------
# RFC 9293 says 2 minutes; Linux's TIME-WAIT is a fixed 60 s, i.e. an MSL of 30 s.
MAXIMUM_SEGMENT_LIFETIME = 30.0
TIME_WAIT_DURATION = 2 * MAXIMUM_SEGMENT_LIFETIME
# Linux's tcp_fin_timeout: how long a connection the owner fully closed may wait in
# FIN-WAIT-2 for a FIN that a dead or hostile peer may never send.
FIN_WAIT_2_TIMEOUT = 60.0
# Like Linux's tcp_max_tw_buckets: past this, the oldest TIME-WAIT entry is dropped early.
MAX_TIME_WAIT_CONNECTIONS = 4096

# --- listener queues (RFC 9293 §3.10.7.2, RFC 4987) -----------------------------------
DEFAULT_BACKLOG = 128
MAX_ACCEPT_BACKLOG = 1024
# Half-open connections per listener; past this SYNs are answered with SYN cookies
# (listener.py, syncookie.py).
SYN_QUEUE_LIMIT = 256
# Like Linux's TCP_SYNCOOKIE_VALID: ACKs are only checked as cookies for this long after a
# listener last sent one; otherwise an ACK to a listener is simply reset.
SYN_COOKIE_VALIDITY = 120.0

# --- RFC 6528 initial sequence numbers -------------------------------------------------
ISN_CLOCK_HZ = 250_000      # RFC 6528 §3: M is a timer that ticks every 4 microseconds

# --- RFC 5961 and reset/ACK storm suppression -----------------------------------------
# Stack-wide budget for challenge ACKs (RFC 5961 §7; Linux's historic default is
# 1000/s, but the responder only ever serves a handful of peers).
CHALLENGE_ACK_RATE = 100.0
CHALLENGE_ACK_BURST = 100
# Stack-wide budget for resets sent to segments that match no connection.
RESET_RATE = 200.0
RESET_BURST = 200
# Per connection: answers to out-of-window pure ACKs, as Linux's tcp_invalid_ratelimit.
# This is what stops a peer that disagrees about the window from ping-ponging ACKs.
OUT_OF_WINDOW_ACK_INTERVAL = 0.5
