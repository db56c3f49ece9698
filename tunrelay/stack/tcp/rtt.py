"""Retransmission timeout estimation, RFC 6298.

SRTT and RTTVAR follow §2.2 and §2.3; the RTO is clamped to [MIN_RTO, MAX_RTO] (see
constants.py for why the floor is 200 ms). Karn's rule (§3) is the caller's job: it only
feeds samples from segments that were never retransmitted. ``back_off`` doubles the RTO
on expiry (§5.5); the doubled value stays until a fresh sample arrives, which is what
keeps a path that lost its ACKs from being hammered at the old rate.
"""

from tunrelay.stack.tcp.constants import (
    CLOCK_GRANULARITY, INITIAL_RTO, MAX_RTO, MIN_RTO, RTO_ALPHA, RTO_BETA, RTO_K)

__all__ = ["RttEstimator"]


class RttEstimator:
    def __init__(self):
        self.srtt = None
        self.rttvar = None
        self.rto = INITIAL_RTO

    def sample(self, rtt):
        rtt = max(rtt, 0.0)
        if self.srtt is None:
            self.srtt = rtt
            self.rttvar = rtt / 2
        else:
            self.rttvar = (1 - RTO_BETA) * self.rttvar + RTO_BETA * abs(self.srtt - rtt)
            self.srtt = (1 - RTO_ALPHA) * self.srtt + RTO_ALPHA * rtt
        self.rto = _clamp(self.srtt + max(CLOCK_GRANULARITY, RTO_K * self.rttvar))

    def back_off(self):
        self.rto = min(self.rto * 2, MAX_RTO)

    def raise_floor(self, floor):
        if self.srtt is None:
            self.rto = max(self.rto, floor)


def _clamp(rto):
    return min(max(rto, MIN_RTO), MAX_RTO)
