"""Drops are always counted but logged at most once per reason per interval."""

from twisted.internet.task import Clock
from twisted.logger import capturedLogs

from tunrelay.stats import Counters, DropReporter


class NamedPeer:
    def __init__(self, name):
        self.name = name
        self.counters = Counters()


def test_flood_is_counted_but_logged_once_per_interval():
    clock = Clock()
    reporter = DropReporter(clock, interval=10)
    peer = NamedPeer("b")
    with capturedLogs() as events:
        for _ in range(1000):
            reporter.drop("not_ip", peer)
        reporter.drop("no_route")
        clock.advance(10)
        reporter.drop("not_ip", peer)
    assert peer.counters.drops["not_ip"] == 1001
    assert reporter.counters.drops["no_route"] == 1
    lines = [event for event in events if event.get("reason") == "not_ip"]
    assert len(lines) == 2
    assert lines[1]["suppressed"] == 999
    assert [event["reason"] for event in events].count("no_route") == 1


def test_log_names_reason_and_peer_but_no_payload():
    reporter = DropReporter(Clock())
    with capturedLogs() as events:
        reporter.drop("source_not_allowed", NamedPeer("site-b"), "from 203.0.113.9")
    assert events[0]["log_format"].startswith("dropped ({reason}) from {peer}")
    assert events[0]["peer"] == "site-b" and events[0]["detail"] == ": from 203.0.113.9"
