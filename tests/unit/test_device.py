"""The device's netlink set-up, on a fake rtnetlink handle."""

import errno

from pyroute2.netlink.exceptions import NetlinkError

from tunrelay.constants import OFFLOAD_GSO_MAX_SIZE
from tunrelay.device import TunDevice


class FakeIPRoute:
    def __init__(self, refuse_gso=False):
        self.refuse_gso = refuse_gso
        self.calls = []

    def link(self, command, **arguments):
        if self.refuse_gso and "gso_max_size" in arguments:
            raise NetlinkError(errno.EOPNOTSUPP, "Operation not supported")
        self.calls.append((command, arguments))


def test_offload_devices_limit_super_packets_to_one_datagram():
    device = TunDevice("tr0", "tun", offload=True)
    device.index, device.name = 7, "tr0"
    ipr = FakeIPRoute()
    device._limit_super_packets(ipr)
    assert ipr.calls == [("set", {"index": 7, "gso_max_size": OFFLOAD_GSO_MAX_SIZE})]


class RecordingLog:
    def __init__(self):
        self.warnings = []

    def warn(self, text, **fields):
        self.warnings.append(text.format(**fields))


def test_a_kernel_that_refuses_the_limit_gets_a_warning_not_a_failed_start():
    device = TunDevice("tr0", "tun", offload=True)
    device.index, device.name = 7, "tr0"
    device.log = RecordingLog()
    device._limit_super_packets(FakeIPRoute(refuse_gso=True))
    assert len(device.log.warnings) == 1
    assert "tr0" in device.log.warnings[0] and str(OFFLOAD_GSO_MAX_SIZE) in device.log.warnings[0]
