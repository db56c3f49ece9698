"""SYN cookies (RFC 4987, Linux's encoding): the pure module, then LISTEN with a full SYN
queue, with scapy building the peer's segments and reading the stack's."""

import pytest

from tunrelay.stack.tcp import ConnectionAccepted, DataReceived, ESTABLISHED, LOST_DONE, TcpStack
from tunrelay.stack.tcp.constants import LOCAL_WINDOW_SHIFT, TIMESTAMP_OPTION_LENGTH
from tunrelay.stack.tcp.syncookie import (
    COUNTER_PERIOD, MSS_TABLE_IPV4, MSS_TABLE_IPV6, SynCookies, decode_timestamp,
    encode_timestamp)

from .driver import Transfer
from .helpers import CLIENT_B, MASK, PORT, SERVER_B, Peer, flags, make_stack, option

KEY = b"c" * 32
T0 = 1_000_000.0 * COUNTER_PERIOD        # the start of a counter period
SIX = b"\x0a\x00\x00\x01"
V6_LOCAL, V6_REMOTE = b"\x20\x01\x0d\xb8" + b"\0" * 11 + b"\x01", b"\x20\x01\x0d\xb8" + b"\0" * 11 + b"\x02"
TUPLE = (SERVER_B, PORT, CLIENT_B, 40000)


# -- the pure module ----------------------------------------------------------------------
class TestCookie:
    @pytest.mark.parametrize("mss, expected", [(536, 536), (100, 536), (1299, 536), (1300, 1300),
                                               (1400, 1300), (1440, 1440), (1460, 1460), (9000, 1460)])
    def test_round_trip_decodes_the_table_mss(self, mss, expected):
        cookies = SynCookies(KEY)
        cookie = cookies.make(*TUPLE, 12345, mss, T0)
        assert cookies.check(*TUPLE, 12345, cookie, T0 + 1) == expected

    def test_ipv6_uses_its_own_table(self):
        cookies = SynCookies(KEY)
        for mss, expected in [(1220, 1220), (1440, 1440), (9000, 8940), (1000, 1220)]:
            cookie = cookies.make(V6_LOCAL, 80, V6_REMOTE, 5, 7, mss, T0)
            assert cookies.check(V6_LOCAL, 80, V6_REMOTE, 5, 7, cookie, T0) == expected
        assert set(MSS_TABLE_IPV6) != set(MSS_TABLE_IPV4)

    def test_valid_into_the_next_counter_period_only(self):
        cookies = SynCookies(KEY)
        cookie = cookies.make(*TUPLE, 1, 1460, T0 + COUNTER_PERIOD - 1)   # late in its period
        assert cookies.check(*TUPLE, 1, cookie, T0 + COUNTER_PERIOD - 1) == 1460
        assert cookies.check(*TUPLE, 1, cookie, T0 + 2 * COUNTER_PERIOD - 1) == 1460
        assert cookies.check(*TUPLE, 1, cookie, T0 + 2 * COUNTER_PERIOD) is None    # stale
        assert cookies.check(*TUPLE, 1, cookie, T0 + 300 * COUNTER_PERIOD) is None
        # The count's eight bits in the cookie wrap every 256 periods; the hash does not.
        for periods in (256, 257, 512):
            assert cookies.check(*TUPLE, 1, cookie, T0 + (periods + 1) * COUNTER_PERIOD - 1) is None
        assert cookies.check(*TUPLE, 1, cookie, T0 - 1) is None                     # from the future

    def test_tampered_tuple_sequence_or_cookie_is_rejected(self):
        cookies = SynCookies(KEY)
        cookie = cookies.make(*TUPLE, 99, 1460, T0)
        local, local_port, remote, remote_port = TUPLE
        assert cookies.check(local, local_port, remote, remote_port + 1, 99, cookie, T0) is None
        assert cookies.check(local, local_port + 1, remote, remote_port, 99, cookie, T0) is None
        assert cookies.check(local, local_port, SIX, remote_port, 99, cookie, T0) is None
        assert cookies.check(*TUPLE, 99 + 4, cookie, T0) is None
        assert cookies.check(*TUPLE, 99 + 100000, cookie, T0) is None
        for bit in range(2, 32):
            assert cookies.check(*TUPLE, 99, cookie ^ (1 << bit), T0) is None, bit
        # As in Linux, the two lowest bits only move the index within the table: whoever
        # holds a cookie can pick a smaller or larger table MSS, and nothing more.
        assert cookies.check(*TUPLE, 99, (cookie - 1) & MASK, T0) == 1440
        assert SynCookies(b"d" * 32).check(*TUPLE, 99, cookie, T0) is None   # another stack's key

    @pytest.mark.parametrize("window_scale", [None, 0, 7, 14])
    @pytest.mark.parametrize("sack", [False, True])
    def test_timestamp_carries_window_scale_and_sack(self, window_scale, sack):
        for ts_now in (0x12345678, 0x12345640, 0xFFFFFFFF, 5):
            tsval = encode_timestamp(ts_now, window_scale, sack)
            assert decode_timestamp(tsval) == (window_scale, sack)
            assert 0 <= (ts_now - tsval) & MASK < 64          # never ahead of the clock

    def test_secret_must_be_a_key(self):
        with pytest.raises(ValueError):
            SynCookies(b"short")


# -- LISTEN with the SYN queue full ------------------------------------------------------------
LINUX_SYN = [("MSS", 1400), ("SAckOK", b""), ("Timestamp", (5000, 0)), ("NOP", None), ("WScale", 9)]


@pytest.fixture
def full(clock):
    """A stack whose listener's SYN queue (limit 2) is full of half-open connections."""
    stack = make_stack()
    stack._listeners[PORT].syn_queue_limit = 2
    for sport in (1, 2):
        Peer(stack, clock, sport=sport).send("S")
    stack.pop_outgoing()
    return stack


def cookie_synack(stack, clock, peer, options=LINUX_SYN):
    before = len(stack.connections)
    peer.send("S", options=options)
    synack = peer.recv_one()
    assert flags(synack) == "SA" and synack.ack == peer.snd_nxt
    assert len(stack.connections) == before               # no state for a cookie SYN
    peer.rcv_nxt = (synack.seq + 1) & MASK
    return synack


class TestCookieListen:
    def test_full_queue_answers_with_a_cookie_carrying_options_in_tsval(self, full, clock):
        peer = Peer(full, clock, sport=3)
        synack = cookie_synack(full, clock, peer)
        assert full.stats["syn_cookies_sent"] == 1 and len(full._listeners[PORT].syn_queue) == 2
        assert option(synack, "MSS") == 1460 and option(synack, "WScale") == LOCAL_WINDOW_SHIFT
        assert option(synack, "SAckOK") is not None
        tsval, tsecr = option(synack, "Timestamp")
        assert tsecr == 5000 and tsval & 0x3F == 9 | 0x10
        assert synack.window == 65535

    def test_returning_ack_establishes_with_the_decoded_options(self, full, clock):
        peer = Peer(full, clock, sport=3)
        synack = cookie_synack(full, clock, peer)
        clock.advance(0.01)
        peer.send("A", window=1000, options=[("NOP", None), ("NOP", None),
                                             ("Timestamp", (5010, option(synack, "Timestamp")[0]))])
        [event] = full.pop_events()
        conn = event.conn
        assert isinstance(event, ConnectionAccepted) and conn.state == ESTABLISHED
        assert (conn.send_mss, conn.sender.shift, conn.sack, conn.timestamps) == (1300, 9, True, True)
        assert conn.sender.wnd == 1000 << 9 and conn.sender.mss == 1300 - TIMESTAMP_OPTION_LENGTH
        assert conn.receiver.shift == LOCAL_WINDOW_SHIFT
        assert full.stats["syn_cookies_accepted"] == 1 and conn.deadline() is None
        # And it carries data both ways, its TSval running on from the cookie's.
        conn.send(b"x" * 10, clock.now)
        [data] = peer.recv()
        assert bytes(data.payload) == b"x" * 10
        assert 0 < (option(data, "Timestamp")[0] - option(synack, "Timestamp")[0]) & MASK < 100
        assert option(data, "Timestamp")[1] == 5010

    def test_without_timestamps_only_the_mss_survives(self, full, clock):
        peer = Peer(full, clock, sport=3)
        synack = cookie_synack(full, clock, peer, [("MSS", 1460), ("SAckOK", b""), ("WScale", 7)])
        assert option(synack, "WScale") is None and option(synack, "SAckOK") is None
        assert option(synack, "Timestamp") is None
        peer.send("A", window=2000)
        conn = full.pop_events()[0].conn
        assert (conn.send_mss, conn.sender.shift, conn.sack, conn.timestamps) == (1460, 0, False, False)
        assert conn.receiver.shift == 0 and conn.sender.wnd == 2000

    def test_data_on_the_returning_ack_is_delivered(self, full, clock):
        peer = Peer(full, clock, sport=3)
        cookie_synack(full, clock, peer, [("MSS", 1460)])
        peer.send("PA", payload=b"GET / HTTP/1.0\r\n\r\n")
        events = full.pop_events()
        assert isinstance(events[0], ConnectionAccepted)
        assert [e.data for e in events if isinstance(e, DataReceived)] == [b"GET / HTTP/1.0\r\n\r\n"]
        assert peer.recv() == []
        delayed_ack = events[0].conn.deadline()
        assert full.next_deadline() == delayed_ack            # before the half-open SYN-ACKs'
        full.poll(delayed_ack)
        assert peer.recv_one().ack == peer.snd_nxt

    def test_bad_cookie_is_dropped_counted_and_reset(self, full, clock):
        peer = Peer(full, clock, sport=3)
        synack = cookie_synack(full, clock, peer, [("MSS", 1460)])
        peer.send("A", ack=synack.seq + 2)
        rst = peer.recv_one()
        assert flags(rst) == "R" and rst.seq == (synack.seq + 2) & MASK
        assert full.drops["syn_cookie_invalid"] == 1 and full.pop_events() == []
        assert len(full.connections) == 2

    def test_stale_cookie_is_rejected(self, full, clock):
        peer = Peer(full, clock, sport=3)
        cookie_synack(full, clock, peer, [("MSS", 1460)])
        clock.advance(3 * COUNTER_PERIOD)
        for half_open in full.connections:           # their SYN-ACKs gave up long ago
            full._remove(half_open)
        for sport in (10, 11, 12):                   # the flood goes on: cookies still checked
            Peer(full, clock, sport=sport).send("S")
        full.pop_outgoing()
        peer.send("A")
        assert full.drops["syn_cookie_invalid"] == 1 and full.pop_events() == []

    def test_acks_are_not_taken_as_cookies_long_after_the_last_one(self, full, clock):
        peer = Peer(full, clock, sport=3)
        cookie_synack(full, clock, peer, [("MSS", 1460)])
        clock.advance(121)
        peer.send("A")
        assert full.drops["ack_to_listener"] == 1 and full.drops["syn_cookie_invalid"] == 0

    def test_accept_queue_full_drops_the_cookie_ack(self, clock):
        stack = make_stack(backlog=1)
        stack._listeners[PORT].syn_queue_limit = 0
        first, second = Peer(stack, clock, sport=1), Peer(stack, clock, sport=2)
        cookie_synack(stack, clock, first, [("MSS", 1460)])
        cookie_synack(stack, clock, second, [("MSS", 1460)])
        first.send("A")
        second.send("A")
        assert stack.drops["accept_queue_full"] == 1 and len(stack.connections) == 1


@pytest.mark.parametrize("options", [dict(timestamps=True, sack=True), dict(timestamps=False, sack=False)])
def test_a_cookie_connection_transfers_256_kib_each_way(options):
    stack = make_stack()
    stack._listeners[PORT].syn_queue_limit = 0       # every SYN gets a cookie
    transfer = Transfer(stack, 7, 256 * 1024, **options).run()
    assert transfer.lost == LOST_DONE and stack.stats["syn_cookies_accepted"] == 1
    assert bytes(transfer.received) == transfer.upload
    assert bytes(transfer.client.received) == transfer.download
    assert (transfer.conn.timestamps, transfer.conn.sack) == (options["timestamps"], options["sack"])


def test_ipv6_cookie_uses_the_ipv6_mss_table():
    from scapy.layers.inet import TCP
    from scapy.layers.inet6 import IPv6

    server, client = "2001:db8::1", "2001:db8::2"
    stack = TcpStack(V6_LOCAL, b"k" * 32)
    stack.listen(PORT).syn_queue_limit = 0

    def segment(**fields):
        return bytes(IPv6(src=client, dst=server) / TCP(sport=5000, dport=PORT, **fields))[40:]

    stack.segment_received(V6_REMOTE, V6_LOCAL, segment(flags="S", seq=77, options=[("MSS", 1430)]), T0)
    [(_, _, synack_bytes)] = stack.pop_outgoing()
    synack = TCP(synack_bytes)
    assert synack.flags == "SA" and option(synack, "MSS") == 1440 and stack.stats["syn_cookies_sent"] == 1
    stack.segment_received(V6_REMOTE, V6_LOCAL, segment(flags="A", seq=78, ack=synack.seq + 1), T0 + 0.001)
    [event] = stack.pop_events()
    assert event.conn.state == ESTABLISHED and event.conn.send_mss == 1420      # 1430 -> table 1420
