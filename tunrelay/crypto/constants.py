"""Every WireGuard limit and timer the protocol core uses, named after the paper.

Values come from the WireGuard whitepaper (Donenfeld, NDSS 2017), §5 (messages), §5.3
(cookies) and §6 (timers), and agree with wireguard-go's ``device/constants.go``.
Times are seconds (floats): the core never reads a clock, callers pass ``now``.
"""

# Noise and WireGuard identifiers (whitepaper §5.4).
CONSTRUCTION = b"Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s"
IDENTIFIER = b"WireGuard v1 zx2c4 Jason@zx2c4.com"
LABEL_MAC1 = b"mac1----"
LABEL_COOKIE = b"cookie--"

KEY_SIZE = 32
HASH_SIZE = 32
TAG_SIZE = 16
MAC_SIZE = 16
COOKIE_SIZE = 16
COOKIE_NONCE_SIZE = 24
TIMESTAMP_SIZE = 12

# Message types and exact sizes (whitepaper §5.4.2-§5.4.7).
MESSAGE_INITIATION = 1
MESSAGE_RESPONSE = 2
MESSAGE_COOKIE_REPLY = 3
MESSAGE_TRANSPORT = 4
INITIATION_SIZE = 148
RESPONSE_SIZE = 92
COOKIE_REPLY_SIZE = 64
TRANSPORT_HEADER_SIZE = 16
TRANSPORT_MIN_SIZE = TRANSPORT_HEADER_SIZE + TAG_SIZE  # an empty payload is a keepalive
PADDING_MULTIPLE = 16
# Largest plaintext a transport message may carry: a 64 KiB (TSO6) super-packet behind a
# 10-byte virtio-net header, as tunrelay peers that opt into offload exchange them.
MAX_PLAINTEXT_SIZE = 65536 + 64
MAX_TRANSPORT_SIZE = TRANSPORT_HEADER_SIZE + MAX_PLAINTEXT_SIZE + PADDING_MULTIPLE + TAG_SIZE

# Timers (whitepaper §6.1, §6.4).
REKEY_AFTER_MESSAGES = 2**60
REJECT_AFTER_MESSAGES = 2**64 - 2**13 - 1
REKEY_AFTER_TIME = 120.0
REJECT_AFTER_TIME = 180.0
REKEY_ATTEMPT_TIME = 90.0
REKEY_TIMEOUT = 5.0
REKEY_TIMEOUT_JITTER_MAX = 0.333
KEEPALIVE_TIMEOUT = 10.0
# Number of initiations sent before giving up for one attempt (90 s / 5 s).
MAX_TIMER_HANDSHAKES = int(REKEY_ATTEMPT_TIME / REKEY_TIMEOUT)
# Keys are wiped this long after the last session was derived (whitepaper §6.3).
ZERO_KEY_MATERIAL_AFTER = REJECT_AFTER_TIME * 3
# Minimum spacing between two initiations accepted from one peer (wireguard-go: 1 s / 50).
HANDSHAKE_INITIATION_RATE = 1.0 / 50

# Cookies (whitepaper §5.4.7).
COOKIE_SECRET_MAX_AGE = 120.0
# How long an initiator keeps using a received cookie for mac2.
COOKIE_REFRESH_TIME = 120.0
# "Under load": more than this many handshake messages within UNDER_LOAD_WINDOW,
# and the state then lasts UNDER_LOAD_AFTER (wireguard-go keeps it for 1 s).
UNDER_LOAD_HANDSHAKES = 64
UNDER_LOAD_WINDOW = 1.0
UNDER_LOAD_AFTER = 1.0

# Replay window (RFC 6479; the Linux kernel's receive counter design).
REPLAY_BITMAP_BITS = 8192
REPLAY_WORD_BITS = 64
REPLAY_WINDOW_SIZE = REPLAY_BITMAP_BITS - REPLAY_WORD_BITS

# Initiation rate limiter per source (wireguard-go ratelimiter).
RATELIMIT_PACKETS_PER_SECOND = 20
RATELIMIT_BURST = 5
RATELIMIT_MAX_ENTRIES = 4096
RATELIMIT_IDLE_EXPIRY = 1.0

# Packets queued per peer while a handshake is in flight (wireguard-go QueueStagedSize).
MAX_STAGED_PACKETS = 128
