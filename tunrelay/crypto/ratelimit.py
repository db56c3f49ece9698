"""Token-bucket limiter for handshake initiations per source (wireguard-go ``ratelimiter``).

Each key (normally the source IP) earns RATELIMIT_PACKETS_PER_SECOND tokens per second up
to RATELIMIT_BURST; an initiation costs one token.  A new key starts with a full bucket
less the packet that created it.  The table is bounded: entries idle for longer than
RATELIMIT_IDLE_EXPIRY are forgotten (their bucket would be full again anyway), and when the
table is still full the least recently seen key is evicted.  Time is passed in.
"""

from collections import OrderedDict

from .constants import (
    RATELIMIT_BURST, RATELIMIT_IDLE_EXPIRY, RATELIMIT_MAX_ENTRIES, RATELIMIT_PACKETS_PER_SECOND,
)

__all__ = ["RateLimiter"]


class RateLimiter:
    def __init__(self, rate=RATELIMIT_PACKETS_PER_SECOND, burst=RATELIMIT_BURST,
                 max_entries=RATELIMIT_MAX_ENTRIES, idle_expiry=RATELIMIT_IDLE_EXPIRY):
        self._cost = 1.0 / rate
        self._capacity = burst * self._cost
        self._max_entries = max_entries
        self._idle_expiry = max(idle_expiry, self._capacity)
        # key -> [tokens (seconds of credit), last seen]; ordered by last seen.
        self._entries = OrderedDict()

    def __len__(self):
        return len(self._entries)

    def allow(self, key, now):
        entry = self._entries.get(key)
        if entry is None:
            self._make_room(now)
            self._entries[key] = [self._capacity - self._cost, now]
            return True
        self._entries.move_to_end(key)
        tokens = min(self._capacity, entry[0] + max(0.0, now - entry[1]))
        entry[1] = now
        if tokens >= self._cost:
            entry[0] = tokens - self._cost
            return True
        entry[0] = tokens
        return False

    def _make_room(self, now):
        entries = self._entries
        while entries:
            key, (_, seen) = next(iter(entries.items()))
            if now - seen < self._idle_expiry and len(entries) < self._max_entries:
                return
            del entries[key]
