"""End to end over a seeded lossy, reordering, duplicating link: 1 MiB each way at once.

The client side is tests/unit/tcp/driver.py (scapy-built, not our wire code). It raises
if the stack ever sends it an RST, so "no RST storm" is part of every run. A client that
does not offer SACK gets NewReno; one that does gets RFC 6675 recovery with RACK-TLP, and
on the same seeded link that must not need more retransmission timeouts, nor more time.
"""

import functools
import hashlib

import pytest

from tunrelay.stack.tcp import LOST_DONE

from .driver import Transfer
from .helpers import make_stack

MIB = 1 << 20
LINK = dict(loss=0.05, duplicate=0.02, reorder=0.05)
MODES = {"newreno": dict(timestamps=False, sack=False),
         "newreno+timestamps": dict(timestamps=True, sack=False),
         "sack+timestamps": dict(timestamps=True, sack=True)}


def sha(data):
    return hashlib.sha256(bytes(data)).hexdigest()


@functools.lru_cache(maxsize=None)
def transfer_in(mode):
    return Transfer(make_stack(), 1, MIB, **MODES[mode], **LINK).run()


def check(transfer):
    assert transfer.lost == LOST_DONE
    assert sha(transfer.received) == sha(transfer.upload)
    assert sha(transfer.client.received) == sha(transfer.download)
    assert transfer.finished() and transfer.stack.connections == []
    assert transfer.stack.next_deadline() is None
    for link in (transfer.c2s, transfer.s2c):      # the faults really happened
        assert link.dropped > 0.03 * link.sent and link.reordered and link.duplicated
    stats = transfer.stack.stats
    assert stats["retransmitted_segments"]
    assert stats["resets_sent"] <= 3                # only strays after the close
    assert transfer.now < 60


@pytest.mark.parametrize("mode", sorted(MODES))
def test_one_mib_each_way_under_loss_reorder_and_duplication(mode):
    transfer = transfer_in(mode)
    check(transfer)
    conn, stats = transfer.conn, transfer.stack.stats
    assert (conn.timestamps, conn.sack) == (MODES[mode]["timestamps"], MODES[mode]["sack"])
    if conn.sack:
        assert stats["sack_recoveries"] and stats["segments_marked_lost"] and not stats["fast_retransmits"]
    else:
        assert stats["fast_retransmits"] and stats["timeouts"] and not stats["sack_recoveries"]


def test_sack_recovery_beats_newreno_on_the_same_link():
    newreno, sack = transfer_in("newreno+timestamps"), transfer_in("sack+timestamps")
    assert sack.stack.stats["timeouts"] < newreno.stack.stats["timeouts"]
    assert sack.now < newreno.now


def test_one_mib_with_owner_pausing_reading_under_loss():
    transfer = Transfer(make_stack(), 7, MIB, pause_every=300000, pause=2.0, **LINK).run()
    check(transfer)
    assert transfer.pauses == 3 and transfer.client.zero_windows_seen > 0   # it did close
