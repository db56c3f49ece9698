"""Reactor adapter for the tun/tap descriptor: a batch of frames in, gathered writes out.

One readable event reads up to DEVICE_READS_PER_TURN frames (each read sized for a 64 KiB
frame behind a virtio-net header) and hands them to the data path as one batch, so a busy
device cannot starve the sockets and the send path works per batch. Writes are lists of
buffers for one ``writev`` each (a virtio-net header, then a packet or a coalesced run's
headers and payload views): the kernel takes a write whole or refuses it, and a refusal
is a drop with a reason, never a queue.
"""

import errno
import os

from tunrelay.constants import DEVICE_READ_SIZE, DEVICE_READS_PER_TURN
from tunrelay.twisted_io.readers import add_reader

__all__ = ["DevicePort"]

_WRITE_ERRORS = {
    errno.EAGAIN: "device_busy",
    errno.EINVAL: "device_rejected",
    errno.EIO: "device_down",
    errno.EFAULT: "device_rejected",
    errno.EMSGSIZE: "device_rejected",
}


class DevicePort:
    def __init__(self, device, datapath, reactor, on_removed=None):
        self.device = device
        self.datapath = datapath
        self.reactor = reactor
        self.vnet = device.vnet                    # every read and write carries a virtio-net header
        self.super_packets = device.super_packets  # reads may be TSO super-packets
        self._reader = None
        # Called once when the kernel ends the descriptor (reads fail with EBADFD): the
        # interface was deleted under us, e.g. by ``ip link delete`` (wg-quick down).
        self.on_removed = on_removed

    def start(self):
        self._reader = add_reader(self.reactor, self.device.fd, self._readable, "the device")

    def stop(self):
        if self._reader is not None:
            self._reader.stop()
            self._reader = None

    def _readable(self):
        fd, read = self.device.fd, os.read
        frames = []
        for _ in range(DEVICE_READS_PER_TURN):
            try:
                frames.append(read(fd, DEVICE_READ_SIZE))
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno == errno.EINTR:
                    continue
                if error.errno in (errno.EBADFD, errno.EBADF):
                    self._removed()
                    return
                self.datapath.drops.drop("device_read_error", None, error.strerror)
                break
        if frames:
            self.datapath.from_device(frames)

    def _removed(self):
        # Stop at once: the descriptor stays readable and would wake the loop for ever.
        self.stop()
        if self.on_removed is not None:
            self.on_removed()

    def write_many(self, writes):
        """Write each list of buffers with one ``writev``; return [(index, drop reason)] for refusals."""
        fd, writev = self.device.fd, os.writev
        refused = []
        for index, write in enumerate(writes):
            try:
                writev(fd, write)
            except OSError as error:
                refused.append((index, _WRITE_ERRORS.get(error.errno, "device_error")))
        return refused
