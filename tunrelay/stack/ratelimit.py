"""Token bucket on an injected clock, for RFC 1812 §4.3.2.8 ICMP error rate limiting.

The bucket starts full (``burst`` tokens) and refills at ``rate`` tokens per second up
to ``burst``. A clock that steps backwards refills nothing rather than draining tokens.
"""

__all__ = ["TokenBucket"]


class TokenBucket:
    def __init__(self, rate, burst):
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = float(rate)
        self.burst = float(burst)
        self._tokens = float(burst)
        self._last = None

    def consume(self, now, tokens=1.0):
        """Take ``tokens`` if available at time ``now``; return whether they were taken."""
        if self._last is not None and now > self._last:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        if self._last is None or now > self._last:
            self._last = now
        if self._tokens >= tokens:
            self._tokens -= tokens
            return True
        return False
