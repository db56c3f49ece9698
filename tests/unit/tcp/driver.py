"""A test-only client-side TCP and a seeded lossy link, for end-to-end transfers.

The stack under test only listens, so the other end is this deliberately simple client:
SYN with MSS and window scale, a go-back-N sender with a doubling RTO and fast
retransmit on three duplicate ACKs, a receiver that buffers out-of-order data and ACKs
every segment at once (with SACK blocks, most recent first, when SACK was offered), FIN
in both directions. It builds and parses with scapy, never
with tunrelay.wire.tcp.

``LossyLink`` is modelled on smoltcp's phy/fault_injector: per packet, a seeded drop
probability, a duplication probability, and a random extra delay that reorders.
"""

import heapq

from .helpers import CLIENT_B, MASK, SERVER_B, build, flags, option, parse, payload_of

CLIENT_MSS = 1460
CLIENT_WSCALE = 2
CLIENT_WINDOW_FIELD = 0xFFFF
CLIENT_MAX_FLIGHT = 48 * 1024
CLIENT_INITIAL_RTO = 0.3
CLIENT_MAX_RTO = 4.0


def _lt(a, b):
    return 0 < ((b - a) & MASK) < 1 << 31


class LossyLink:
    """A FIFO link with latency ``delay``; per packet, a seeded chance to be lost, to be
    duplicated, and to be held back by up to ``reorder_delay`` (which reorders it)."""

    def __init__(self, rng, loss=0.05, duplicate=0.02, reorder=0.05, delay=0.005,
                 reorder_delay=0.02):
        self.rng = rng
        self.loss = loss
        self.duplicate = duplicate
        self.reorder = reorder
        self.delay = delay
        self.reorder_delay = reorder_delay
        self._heap = []
        self._counter = 0
        self._fifo = 0.0
        self.sent = self.dropped = self.duplicated = self.reordered = 0

    def send(self, now, packet):
        self.sent += 1
        if self.rng.random() < self.loss:
            self.dropped += 1
            return
        copies = 1
        if self.rng.random() < self.duplicate:
            copies = 2
            self.duplicated += 1
        for _ in range(copies):
            self._counter += 1
            arrival = self._fifo = max(now + self.delay, self._fifo)
            if self.rng.random() < self.reorder:
                self.reordered += 1
                arrival += self.rng.random() * self.reorder_delay
            heapq.heappush(self._heap, (arrival, self._counter, packet))

    def next_time(self):
        return self._heap[0][0] if self._heap else None

    def due(self, now):
        out = []
        while self._heap and self._heap[0][0] <= now:
            out.append(heapq.heappop(self._heap)[2])
        return out


class DriverClient:
    def __init__(self, upload, sport=45000, dport=80, isn=0xFFFFF000, timestamps=False, sack=None):
        self.upload = upload
        self.timestamps = timestamps
        self.sack = timestamps if sack is None else sack
        self.last_out_of_order = None
        self.now = 0.0
        self.ts_echo = 0
        self.sport = sport
        self.dport = dport
        self.isn = isn & MASK
        self.una = self.nxt = self.max = self.isn
        self.rcv_nxt = None
        self.peer_shift = 0
        self.peer_window = 0
        self.received = bytearray()
        self.ooo = {}
        self.fin_received = False
        self.established = False
        self.rto = CLIENT_INITIAL_RTO
        self.deadline = None
        self.dupacks = 0
        self.outgoing = []
        self.retransmissions = 0
        self.probes = 0
        self.zero_windows_seen = 0

    # sequence helpers: byte i of the upload is at isn + 1 + i, the FIN after the last
    def _data_start(self):
        return (self.isn + 1) & MASK

    def _fin_seq(self):
        return (self.isn + 1 + len(self.upload)) & MASK

    @property
    def done_sending(self):
        return self.una == ((self._fin_seq() + 1) & MASK)

    def _syn(self):
        options = [("MSS", CLIENT_MSS), ("WScale", CLIENT_WSCALE)]
        if self.sack:
            options.append(("SAckOK", b""))
        self._emit("S", self.isn, 0, options=options)

    def start(self, now):
        self.now = now
        self._syn()
        self.nxt = self.max = (self.isn + 1) & MASK
        self.deadline = now + self.rto

    def _emit(self, flag_str, seq, ack, payload=b"", options=()):
        if self.timestamps:
            stamp = (int(self.now * 1000) & MASK, self.ts_echo)
            options = list(options) + [("NOP", None), ("NOP", None), ("Timestamp", stamp)]
        self.outgoing.append(build(self.sport, self.dport, flag_str, seq, ack,
                                   CLIENT_WINDOW_FIELD, payload, options))

    def _ack_now(self):
        self._emit("A", self.nxt, self.rcv_nxt, options=self._sack_option())

    def _sack_option(self):
        """RFC 2018: the held ranges, the one with the latest arrival first."""
        if not self.sack or not self.ooo:
            return ()
        ranges = []
        for seq in sorted(self.ooo, key=lambda seq: (seq - self.rcv_nxt) & MASK):
            data, fin = self.ooo[seq]
            end = (seq + len(data) + fin) & MASK
            if ranges and not _lt(ranges[-1][1], seq):
                if _lt(ranges[-1][1], end):
                    ranges[-1][1] = end
            else:
                ranges.append([seq, end])
        latest = [r for r in ranges if not _lt(self.last_out_of_order, r[0])
                  and _lt(self.last_out_of_order, r[1])]
        ordered = latest + [r for r in reversed(ranges) if r not in latest]
        limit = 3 if self.timestamps else 4
        return [("NOP", None), ("NOP", None),
                ("SAck", tuple(edge for block in ordered[:limit] for edge in block))]

    def _send_from(self, seq, now, limit):
        """Send one segment at ``seq``; return its sequence length."""
        offset = (seq - self._data_start()) & MASK
        chunk = self.upload[offset:offset + min(CLIENT_MSS, limit)]
        fin = offset + len(chunk) == len(self.upload)
        flag_str = "A" + ("F" if fin else "") + ("P" if chunk else "")
        self._emit(flag_str, seq, self.rcv_nxt, chunk)
        if _lt(seq, self.max):
            self.retransmissions += 1
        if self.deadline is None:
            self.deadline = now + self.rto
        return len(chunk) + fin

    def output(self, now):
        if not self.established:
            return
        while True:
            flight = (self.nxt - self.una) & MASK
            room = min(self.peer_window, CLIENT_MAX_FLIGHT) - flight
            if self.nxt == ((self._fin_seq() + 1) & MASK):
                return
            if self.nxt != self._fin_seq() and room <= 0:
                if self.peer_window == 0 and self.deadline is None:
                    self.deadline = now + self.rto      # persist: probe the closed window
                return
            length = self._send_from(self.nxt, now, max(room, 0))
            self.nxt = (self.nxt + length) & MASK
            if _lt(self.max, self.nxt):
                self.max = self.nxt

    def on_segment(self, segment, now):
        self.now = now
        tcp = parse((SERVER_B, CLIENT_B, segment))
        f = flags(tcp)
        stamp = option(tcp, "Timestamp")
        if stamp is not None:
            self.ts_echo = stamp[0]
        if "R" in f:
            raise AssertionError("the stack reset the connection: %r" % tcp.summary())
        if not self.established:
            if "S" in f and "A" in f and tcp.ack == ((self.isn + 1) & MASK):
                self.established = True
                self.rcv_nxt = (tcp.seq + 1) & MASK
                self.peer_shift = option(tcp, "WScale") or 0
                self.peer_window = tcp.window  # never scaled in a SYN
                self.una = tcp.ack
                self.deadline = None
                self.rto = CLIENT_INITIAL_RTO
                self._ack_now()
                self.output(now)
            return
        if "S" in f:   # a retransmitted SYN-ACK: our ACK got lost
            self._ack_now()
            return
        self._process_ack(tcp, now)
        self._process_data(tcp, f)
        self.output(now)

    def _process_ack(self, tcp, now):
        window = tcp.window << self.peer_shift
        if window == 0:
            self.zero_windows_seen += 1
        ack = tcp.ack
        if _lt(self.una, ack) and not _lt(self.max, ack):
            self.una = ack
            if _lt(self.nxt, ack):
                self.nxt = ack
            self.dupacks = 0
            self.rto = CLIENT_INITIAL_RTO
            self.deadline = None if self.una == self.max else now + self.rto
        elif ack == self.una and not payload_of(tcp) and self.una != self.max:
            self.dupacks += 1
            if self.dupacks == 3:
                self._send_from(self.una, now, CLIENT_MSS)
        self.peer_window = window
        if window and self.una == self.max and self.deadline is not None:
            self.deadline = None     # the window opened: no more probing

    def _process_data(self, tcp, f):
        data = payload_of(tcp)
        seq = tcp.seq
        if data or "F" in f:
            if _lt(seq, self.rcv_nxt):
                end = (seq + len(data) + ("F" in f)) & MASK
                if not _lt(self.rcv_nxt, end):
                    self._ack_now()   # entirely old: a retransmission we already have
                    return
                data = data[(self.rcv_nxt - seq) & MASK:]
                seq = self.rcv_nxt
            self.ooo[seq] = (data, "F" in f)
            self.last_out_of_order = seq
            while self.rcv_nxt in self.ooo:
                chunk, fin = self.ooo.pop(self.rcv_nxt)
                self.received += chunk
                self.rcv_nxt = (self.rcv_nxt + len(chunk)) & MASK
                if fin:
                    self.fin_received = True
                    self.rcv_nxt = (self.rcv_nxt + 1) & MASK
            self._ack_now()

    def poll(self, now):
        self.now = now
        if self.deadline is not None and now >= self.deadline:
            self.rto = min(self.rto * 2, CLIENT_MAX_RTO)
            self.deadline = now + self.rto
            if not self.established:
                self._syn()
                return
            if self.una == self.max and self.peer_window == 0:
                self.probes += 1
                self._emit("A", (self.una - 1) & MASK, self.rcv_nxt)
                return
            self.nxt = self.una
            self.dupacks = 0
            length = self._send_from(self.nxt, now, CLIENT_MSS)
            self.nxt = (self.nxt + length) & MASK

    def next_deadline(self):
        return self.deadline


class Transfer:
    """Upload and download ``size`` bytes at once between a DriverClient and a TcpStack.

    The server-side owner echoes nothing: it sends its own ``download`` while collecting
    the upload, honours WritableAgain, closes after the peer's FIN, and can pause reading
    for ``pause`` seconds each time another ``pause_every`` bytes have arrived.
    """

    MAX_STEPS = 200000

    def __init__(self, stack, seed, size, pause_every=None, pause=0.0, timestamps=False, sack=None,
                 **link):
        import random
        rng = random.Random(seed)
        self.stack = stack
        self.upload = rng.randbytes(size)
        self.download = rng.randbytes(size)
        self.c2s = LossyLink(random.Random(seed + 1), **link)
        self.s2c = LossyLink(random.Random(seed + 2), **link)
        self.client = DriverClient(self.upload, timestamps=timestamps, sack=sack)
        self.pause_every = pause_every
        self.pause = pause
        self.conn = None
        self.received = bytearray()
        self.sent = 0
        self.peer_closed = False
        self.lost = None
        self.closed = False
        self.resume_at = None
        self.next_pause = pause_every
        self.pauses = 0
        self.now = 0.0

    def _owner(self, now):
        from tunrelay.stack.tcp import (
            ConnectionAccepted, ConnectionLost, DataReceived, PeerClosed)
        for event in self.stack.pop_events():
            if isinstance(event, ConnectionAccepted):
                self.conn = event.conn
            elif isinstance(event, DataReceived):
                self.received += event.data
            elif isinstance(event, PeerClosed):
                self.peer_closed = True
            elif isinstance(event, ConnectionLost):
                self.lost = event.reason
        conn = self.conn
        if conn is None or self.lost is not None:
            return
        if self.resume_at is not None and now >= self.resume_at:
            self.resume_at = None
            conn.resume_reading(now)
        elif (self.next_pause is not None and len(self.received) >= self.next_pause
              and self.resume_at is None):
            self.next_pause += self.pause_every
            self.pauses += 1
            conn.pause_reading()
            self.resume_at = now + self.pause
        if not self.closed:
            while self.sent < len(self.download):
                accepted = conn.send(self.download[self.sent:self.sent + 65536], now)
                if not accepted:
                    break
                self.sent += accepted
            if self.sent == len(self.download) and self.peer_closed:
                conn.close(now)
                self.closed = True

    def finished(self):
        return (self.lost is not None and self.client.fin_received
                and self.client.done_sending and not self.stack.connections)

    def run(self):
        stack, client = self.stack, self.client
        now = 0.0
        client.start(now)
        for _ in range(self.MAX_STEPS):
            for segment in self.c2s.due(now):
                stack.segment_received(CLIENT_B, SERVER_B, segment, now)
            for segment in self.s2c.due(now):
                client.on_segment(segment, now)
            stack.poll(now)
            client.poll(now)
            self._owner(now)
            for _, _, segment in stack.pop_outgoing():
                self.s2c.send(now, segment)
            for segment in client.outgoing:
                self.c2s.send(now, segment)
            client.outgoing.clear()
            if self.finished():
                break
            times = [t for t in (self.c2s.next_time(), self.s2c.next_time(),
                                 stack.next_deadline(), client.next_deadline(),
                                 self.resume_at) if t is not None]
            if not times:
                break
            now = max(now, min(times))
        self.now = now
        return self
