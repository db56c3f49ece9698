"""ESTABLISHED with the options Linux offers: timestamps (RFC 7323) and SACK (RFC 2018)."""

import pytest

from tunrelay.stack.tcp import DataReceived, LOST_RESET
from tunrelay.stack.tcp.constants import MIN_RTO, TIMESTAMP_OPTION_LENGTH

from .helpers import MASK, Peer, flags, option, payload_of

MSS = 1460
LINUX_SYN_OPTIONS = [("MSS", MSS), ("SAckOK", b""), ("Timestamp", (1000, 0)), ("NOP", None),
                     ("WScale", 7)]


class TsPeer(Peer):
    """A peer that stamps every segment with a 1 ms clock and echoes the server."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.echo = 0

    def tsval(self):
        return int(self.clock.now * 1000) & MASK

    def stamped(self, flag_str, tsval=None, **kwargs):
        ts = (self.tsval() if tsval is None else tsval, self.echo)
        return self.send(flag_str, options=[("NOP", None), ("NOP", None), ("Timestamp", ts)],
                         **kwargs)

    def recv(self):
        out = super().recv()
        for tcp in out:
            stamp = option(tcp, "Timestamp")
            if stamp is not None:
                self.echo = stamp[0]
        return out


@pytest.fixture
def ts(stack, clock):
    peer = TsPeer(stack, clock)
    peer.send("S", options=LINUX_SYN_OPTIONS)
    synack = peer.recv_one()
    peer.rcv_nxt = (synack.seq + 1) & MASK
    peer.stamped("A")
    [event] = stack.pop_events()
    return peer, event.conn, synack


def delivered(stack):
    return b"".join(e.data for e in stack.pop_events() if isinstance(e, DataReceived))


def test_synack_echoes_timestamp_and_sack_permitted(ts):
    peer, conn, synack = ts
    assert option(synack, "Timestamp")[1] == 1000
    assert option(synack, "SAckOK") is not None
    assert conn.timestamps and conn.sack
    assert conn.sender.mss == MSS - TIMESTAMP_OPTION_LENGTH    # RFC 6691


def test_every_segment_carries_tsval_and_ts_recent(ts, stack, clock):
    peer, conn, _ = ts
    clock.advance(0.005)
    peer.stamped("PA", payload=b"hi")
    conn.send(b"d" * 3000, clock.now)
    out = peer.recv()
    assert [len(payload_of(t)) for t in out] == [1448, 1448, 104]
    stamps = [option(t, "Timestamp") for t in out]
    assert all(s[1] == int(clock.now * 1000) for s in stamps)       # TS.Recent
    assert len({s[0] for s in stamps}) == 1 and stamps[0][0] != 0


def test_dupacks_carry_sack_blocks_most_recent_first(ts, stack, clock):
    peer, conn, _ = ts
    base = peer.snd_nxt
    peer.stamped("A", seq=base + 100, payload=b"a" * 100, advance=False)
    first = peer.recv_one()
    assert first.ack == base and option(first, "SAck") == ((base + 100) & MASK,
                                                          (base + 200) & MASK)
    peer.stamped("A", seq=base + 300, payload=b"b" * 100, advance=False)
    second = option(peer.recv_one(), "SAck")
    assert second == ((base + 300) & MASK, (base + 400) & MASK,
                      (base + 100) & MASK, (base + 200) & MASK)
    peer.stamped("A", seq=base + 200, payload=b"c" * 100, advance=False)   # joins them
    assert option(peer.recv_one(), "SAck") == ((base + 100) & MASK, (base + 400) & MASK)
    peer.stamped("A", seq=base, payload=b"d" * 100, advance=False)
    final = peer.recv_one()
    assert final.ack == (base + 400) & MASK and option(final, "SAck") is None


def test_paws_rejects_an_old_timestamp_but_not_an_rst(ts, stack, clock):
    peer, conn, _ = ts
    clock.advance(1)
    peer.stamped("PA", payload=b"new")
    assert delivered(stack) == b"new"
    peer.stamped("PA", tsval=5, payload=b"old", advance=False)
    ack = peer.recv_one()
    assert flags(ack) == "A" and ack.ack == peer.snd_nxt
    assert delivered(stack) == b"" and stack.drops["paws"] == 1
    peer.stamped("R", tsval=5)
    assert [e.reason for e in stack.pop_events()] == [LOST_RESET]


def test_out_of_order_segments_do_not_move_ts_recent(ts, stack, clock):
    peer, conn, _ = ts
    recent = conn.ts_recent
    peer.stamped("A", tsval=recent + 500, seq=peer.snd_nxt + 10, payload=b"x",
                 advance=False)
    assert conn.ts_recent == recent
    peer.stamped("A", tsval=recent + 7, payload=b"y" * 10)
    assert conn.ts_recent == recent + 7


def test_echoed_timestamp_gives_an_rtt_sample_after_retransmission(ts, stack, clock):
    peer, conn, _ = ts
    conn.send(b"z" * 10, clock.now)
    peer.recv()
    while stack.stats["timeouts"] < 2:     # (a tail loss probe goes first: SACK is on)
        clock.now = stack.next_deadline()
        stack.poll(clock.now)
    retransmission = peer.recv()[-1]
    assert conn.sender.rtt.rto == pytest.approx(4 * MIN_RTO) and stack.stats["loss_probes"] == 1
    clock.advance(0.01)
    peer.rcv_nxt = (retransmission.seq + 10) & MASK
    peer.stamped("A")           # echoes the retransmission's TSval: Karn does not apply
    assert conn.sender.rtt.rto == MIN_RTO
    assert conn.sender.rtt.srtt < 0.01


def test_a_peer_that_stops_sending_timestamps_is_still_heard(ts, stack, clock):
    peer, conn, _ = ts
    conn.send(b"q", clock.now)
    out = peer.recv_one()
    peer.ack(out)                               # no option at all
    peer.send("PA", payload=b"plain")
    assert delivered(stack) == b"plain" and conn.sender.una == conn.sender.max
    clock.now = stack.next_deadline()          # the delayed ACK
    stack.poll(clock.now)
    assert option(peer.recv_one(), "Timestamp") is not None    # we keep sending ours
