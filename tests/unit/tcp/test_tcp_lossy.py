"""End to end over a seeded lossy, reordering, duplicating link: 1 MiB each way at once.

The client side is tests/unit/tcp/driver.py (scapy-built, not our wire code). It raises
if the stack ever sends it an RST, so "no RST storm" is part of every run.
"""

import hashlib

import pytest

from tunrelay.stack.tcp import LOST_DONE

from .driver import Transfer
from .helpers import make_stack

MIB = 1 << 20


def sha(data):
    return hashlib.sha256(bytes(data)).hexdigest()


def check(transfer):
    assert transfer.lost == LOST_DONE
    assert sha(transfer.received) == sha(transfer.upload)
    assert sha(transfer.client.received) == sha(transfer.download)
    assert transfer.finished() and transfer.stack.connections == []
    assert transfer.stack.next_deadline() is None
    for link in (transfer.c2s, transfer.s2c):      # the faults really happened
        assert link.dropped > 0.03 * link.sent and link.reordered and link.duplicated
    stats = transfer.stack.stats
    assert stats["retransmitted_segments"] and stats["fast_retransmits"] and stats["timeouts"]
    assert stats["resets_sent"] <= 3                # only strays after the close
    assert transfer.now < 60


@pytest.mark.parametrize("timestamps", [False, True], ids=["plain", "timestamps+sack"])
def test_one_mib_each_way_under_loss_reorder_and_duplication(timestamps):
    transfer = Transfer(make_stack(), 1, MIB, loss=0.05, duplicate=0.02, reorder=0.05,
                        timestamps=timestamps).run()
    check(transfer)
    assert transfer.conn.timestamps == transfer.conn.sack == timestamps


def test_one_mib_with_owner_pausing_reading_under_loss():
    transfer = Transfer(make_stack(), 7, MIB, pause_every=300000, pause=2.0,
                        loss=0.05, duplicate=0.02, reorder=0.05).run()
    check(transfer)
    assert transfer.pauses == 3 and transfer.client.zero_windows_seen > 0   # it did close
