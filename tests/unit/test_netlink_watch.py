"""Reconnects move to now when rtnetlink says a link, address or route came (back)."""

import struct

from twisted.internet.task import Clock

from tunrelay.twisted_io.netlink_watch import SETTLE, NetworkChangeWatcher, RetryClock, coming_up

RTM_NEWLINK, RTM_DELLINK, RTM_NEWROUTE = 16, 17, 24


def notice(kind, body=b"\x00" * 16):
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_new_links_addresses_and_routes_are_news_and_removals_are_not():
    assert coming_up(notice(RTM_NEWLINK)) and coming_up(notice(RTM_NEWROUTE))
    assert not coming_up(notice(RTM_DELLINK))
    assert coming_up(notice(RTM_DELLINK, b"\x00" * 3) + b"\x00" + notice(RTM_NEWLINK))   # aligned to 4


def test_malformed_notices_are_not_trusted():
    assert not coming_up(b"") and not coming_up(b"\x01" * 15)
    assert not coming_up(struct.pack("=IHHII", 8, RTM_NEWLINK, 0, 0, 0))        # shorter than its header
    assert not coming_up(struct.pack("=IHHII", 400, RTM_NEWLINK, 0, 0, 0))      # longer than the read


def test_retry_now_moves_only_pending_retries():
    clock = Clock()
    retry_clock = RetryClock(clock)
    fired = []
    retry_clock.callLater(12.2, fired.append, "long backoff")
    cancelled = retry_clock.callLater(5, fired.append, "cancelled")
    cancelled.cancel()
    retry_clock.retry_now()
    clock.advance(0)
    assert fired == ["long backoff"]
    retry_clock.retry_now()   # nothing pending: nothing fires twice
    clock.advance(20)
    assert fired == ["long backoff"]


class FakeSocket:
    def __init__(self, datagrams):
        self.datagrams = list(datagrams)

    def recv(self, size):
        if not self.datagrams:
            raise BlockingIOError()
        item = self.datagrams.pop(0)
        if isinstance(item, Exception):
            raise item
        return item


def test_a_burst_of_changes_is_one_call_after_it_settles():
    clock = Clock()
    calls = []
    watcher = NetworkChangeWatcher(clock, lambda: calls.append(clock.seconds()))
    watcher._socket = FakeSocket([notice(RTM_DELLINK), notice(RTM_NEWLINK), notice(RTM_NEWROUTE)])
    watcher._readable()
    watcher._socket = FakeSocket([notice(RTM_NEWROUTE)])
    watcher._readable()
    clock.advance(SETTLE)
    assert calls == [SETTLE]
    watcher._socket = FakeSocket([notice(RTM_DELLINK)])   # a link going away brings nothing back
    watcher._readable()
    watcher._socket = FakeSocket([OSError(105, "No buffer space available")])   # lost notices: assume news
    watcher._readable()
    clock.advance(SETTLE)
    assert calls == [SETTLE, 2 * SETTLE]
