"""Opening the device: what each offload mode asks the kernel for, and what a refusal costs.

The kernel is faked at the ioctl boundary (``os.open``/``fcntl.ioctl``), so these run without
root; the namespace tests open real devices.
"""

import errno
import struct

import pytest

from tunrelay import device as device_module
from tunrelay.config import OFFLOAD_OFF, OFFLOAD_STANDARD, OFFLOAD_SUPER_PACKETS
from tunrelay.device import (
    IFF_VNET_HDR, TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUNSETIFF, TUNSETOFFLOAD, TUNSETVNETHDRSZ, DeviceError,
    TunDevice,
)


class FakeKernel:
    def __init__(self, refuse_vnet=False, refuse_tso=False, busy=False):
        self.refuse_vnet, self.refuse_tso, self.busy = refuse_vnet, refuse_tso, busy
        self.calls = []
        self.closed = []
        self._next_fd = 100

    def open(self, path, flags):
        self._next_fd += 1
        return self._next_fd

    def close(self, fd):
        self.closed.append(fd)

    def ioctl(self, fd, request, argument):
        if request == TUNSETIFF:
            name, flags = struct.unpack("16sH22x", argument)
            self.calls.append(("TUNSETIFF", flags & IFF_VNET_HDR != 0))
            if self.busy:
                raise OSError(errno.EBUSY, "Device or resource busy")
            if flags & IFF_VNET_HDR and self.refuse_vnet:
                raise OSError(errno.EINVAL, "Invalid argument")
            return argument
        if request == TUNSETVNETHDRSZ:
            self.calls.append(("TUNSETVNETHDRSZ", struct.unpack("i", argument)[0]))
            return 0
        if request == TUNSETOFFLOAD:
            self.calls.append(("TUNSETOFFLOAD", argument))
            if self.refuse_tso:
                raise OSError(errno.EINVAL, "Invalid argument")
            return 0
        raise AssertionError("unexpected ioctl %#x" % request)


class RecordingLog:
    def __init__(self):
        self.warnings = []

    def warn(self, text, **fields):
        self.warnings.append(text.format(**fields))

    def info(self, text, **fields):
        pass


@pytest.fixture
def kernel(monkeypatch):
    fake = FakeKernel()
    monkeypatch.setattr(device_module.os, "open", fake.open)
    monkeypatch.setattr(device_module.os, "close", fake.close)
    monkeypatch.setattr(device_module.fcntl, "ioctl", fake.ioctl)
    return fake


def opened(mode, offload):
    device = TunDevice("tr0", mode, offload)
    device.log = RecordingLog()
    device.open()
    return device


@pytest.mark.parametrize("mode", ["tun", "tap"])
def test_the_default_asks_for_virtio_headers_and_no_offload_flags(kernel, mode):
    device = opened(mode, OFFLOAD_STANDARD)
    assert device.vnet and not device.super_packets
    assert kernel.calls == [("TUNSETIFF", True), ("TUNSETVNETHDRSZ", 10)]   # reads stay finished packets
    assert device.log.warnings == []


def test_super_packets_ask_for_tso(kernel):
    device = opened("tun", OFFLOAD_SUPER_PACKETS)
    assert device.vnet and device.super_packets
    assert ("TUNSETOFFLOAD", TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6) in kernel.calls


def test_off_is_one_plain_read_and_write_per_packet(kernel):
    device = opened("tun", OFFLOAD_OFF)
    assert not device.vnet and kernel.calls == [("TUNSETIFF", False)]


def test_a_kernel_without_virtio_headers_gets_a_warning_and_the_plain_path(kernel):
    kernel.refuse_vnet = True
    device = opened("tap", OFFLOAD_STANDARD)
    assert not device.vnet and device.fd is not None
    assert kernel.calls == [("TUNSETIFF", True), ("TUNSETIFF", False)]
    assert len(device.log.warnings) == 1 and "IFF_VNET_HDR" in device.log.warnings[0]


def test_a_kernel_that_refuses_tso_gets_a_warning_not_a_failed_start(kernel):
    kernel.refuse_tso = True
    device = opened("tun", OFFLOAD_SUPER_PACKETS)
    assert device.vnet and not device.super_packets
    assert len(device.log.warnings) == 1 and "TSO" in device.log.warnings[0] and "tr0" in device.log.warnings[0]


def test_a_busy_device_is_still_one_line(kernel):
    kernel.busy = True
    with pytest.raises(DeviceError, match="cannot create tun device tr0: Device or resource busy"):
        opened("tun", OFFLOAD_STANDARD)
