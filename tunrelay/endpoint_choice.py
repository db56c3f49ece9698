"""Which of a peer's endpoints to use, when it gives several in preference order.

Theory of operation
-------------------
``peers[].endpoint`` may be a list, e.g. ``[udp://host:51820, tcp://host:51820]``: where UDP
is blocked, tinc falls back to TCP on its own, and so does tunrelay. This module is the
pure decision (time injected, no I/O); the service carries out what it returns.

WireGuard has no ping, and a healthy peer may legitimately stay silent for up to
KEEPALIVE_TIMEOUT (it answers data with a keepalive only after 10 s, whitepaper §6.5). The
one message that must come back at once is a handshake response. So an endpoint is judged by
what it authenticates while we send:

- **Solicit.** We sent (data or a handshake) after the last authenticated message, and have
  heard nothing for SOLICIT_AFTER: ask for a fresh handshake on the current endpoint. Its
  response arrives within a round trip on a working path. (The cost: a peer that only ever
  sends one way handshakes every few seconds. That is the price of noticing a dead path in
  seconds rather than WireGuard's 15.)
- **Fail over.** Still nothing authenticated FAILOVER_AFTER after the last message (or
  after this endpoint was chosen): move to the next endpoint in the list, wrapping round.
  The caller starts a new handshake there.
- **Probe back.** While a less preferred endpoint is in use, the more preferred ones are
  probed, one per turn (the core keeps one pending handshake per peer, so two probes at
  once would void each other), with a handshake initiation sent to it alone: the traffic
  stays where it works. A round of probes starts after PROBE_INITIAL and then with the
  interval doubling up to PROBE_MAX. A response authenticates the peer from that endpoint;
  the caller reports it with ``answered`` and the choice returns there.
- **Reassert.** The far side roams to wherever a valid initiation came from (whitepaper
  §2.1), before it knows whether its answer gets back. If the probed path works only one
  way, its traffic would now go there and be lost. So PROBE_ANSWER_WAIT after a probe that
  was not answered, an authenticated keepalive goes over the endpoint in use, and the far
  side roams back.

Nothing here runs for a peer with one endpoint.
"""

from dataclasses import dataclass

__all__ = ["EndpointChoice", "Solicit", "Use", "Probe", "Reassert",
           "SOLICIT_AFTER", "FAILOVER_AFTER", "PROBE_INITIAL", "PROBE_MAX", "PROBE_ANSWER_WAIT"]

SOLICIT_AFTER = 2.5    # seconds of one-sided silence before we ask for a handshake
FAILOVER_AFTER = 6.0   # ...and before we give the endpoint up (a response had 3.5 s to come)
PROBE_INITIAL = 5.0
PROBE_MAX = 30.0       # so a preferred endpoint that answers again is back within about 30 s
PROBE_ANSWER_WAIT = 1.0   # a probe's answer takes a round trip; after this, reassert the path in use


@dataclass(frozen=True)
class Solicit:
    """Ask for a new handshake on the current endpoint."""


@dataclass(frozen=True)
class Use:
    """Send over endpoint ``index`` instead of ``previous`` from now on; ``fresh``: with a
    new handshake there (a failover), else the session already runs there (an answer)."""
    index: int
    previous: int
    fresh: bool


@dataclass(frozen=True)
class Probe:
    """Send one handshake initiation to endpoint ``index``, leaving the traffic where it is."""
    index: int


@dataclass(frozen=True)
class Reassert:
    """Send an authenticated keepalive over the endpoint in use (a probe went unanswered)."""


class EndpointChoice:
    """The endpoint in use among ``names`` (their display strings, most preferred first)."""

    def __init__(self, names, now):
        if len(names) < 2:
            raise ValueError("a choice needs at least two endpoints")
        self.names = tuple(names)
        self.index = 0
        self.reason = "first in the list"
        self._since = now
        self._solicited = None      # when we last asked for a handshake during this silence
        self._probe_at = None
        self._probe_interval = PROBE_INITIAL
        self._probe_next = 0         # the endpoint this round of probes tries next
        self._reassert_at = None

    @property
    def current(self):
        return self.names[self.index]

    def check(self, now, last_received, last_sent):
        """Decide from the peer's last authenticated receive and last send (None: never).

        Returns a list of Solicit, Use, Reassert and Probe actions, in the order to carry them out.
        """
        actions = []
        heard = max(last_received, self._since) if last_received is not None else self._since
        unanswered = last_sent is not None and (last_received is None or last_sent > last_received)
        silence = now - heard
        if unanswered and silence >= FAILOVER_AFTER:
            actions.append(self._fail_over(now, silence))
        elif unanswered and silence >= SOLICIT_AFTER and (self._solicited is None or self._solicited < heard):
            self._solicited = now
            actions.append(Solicit())
        if self._reassert_at is not None and now >= self._reassert_at:
            self._reassert_at = None
            actions.append(Reassert())
        # Not in the same turn as a solicitation or a failover: the core keeps one pending
        # handshake per peer, and a probe's would replace theirs.
        if (not any(type(action) is not Reassert for action in actions) and self.index > 0
                and self._probe_at is not None and now >= self._probe_at):
            actions.append(Probe(self._probe_next))
            self._reassert_at = now + PROBE_ANSWER_WAIT
            self._probe_next += 1
            if self._probe_next < self.index:
                self._probe_at = now + PROBE_ANSWER_WAIT   # the rest of this round, one a turn
            else:
                self._probe_next = 0
                self._probe_interval = min(self._probe_interval * 2, PROBE_MAX)
                self._probe_at = now + self._probe_interval
        return actions

    def answered(self, index, now):
        """An authenticated message came from endpoint ``index``: a Use if that is better."""
        if index >= self.index:
            return None
        previous = self.index
        self.reason = "%s answered again" % self.names[index]
        self._choose(index, now)
        return Use(index, previous, fresh=False)

    def _fail_over(self, now, silence):
        previous = self.index
        self.reason = "%s authenticated nothing for %.0f s" % (self.current, silence)
        self._choose((previous + 1) % len(self.names), now)
        return Use(self.index, previous, fresh=True)

    def _choose(self, index, now):
        self.index = index
        self._since = now
        self._solicited = None
        self._probe_interval = PROBE_INITIAL
        self._probe_at = now + PROBE_INITIAL if index > 0 else None
        self._probe_next = 0
        self._reassert_at = None

    def describe(self):
        """For status: the endpoint in use and why."""
        return {"endpoint_in_use": self.current, "endpoint_reason": self.reason,
                "endpoints": list(self.names)}
