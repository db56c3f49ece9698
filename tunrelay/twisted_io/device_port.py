"""Reactor adapter for the tun/tap descriptor: read frames into the relay, write frames out.

Reads are batched (up to DEVICE_READS_PER_TURN frames per readable event) so a busy device
cannot starve the sockets, and each read is sized for a 64 KiB frame. Writes go straight to
the descriptor: the kernel either takes a frame whole or refuses it, and a refusal is a
drop with a reason, never a queue.
"""

import errno

from twisted.internet.abstract import FileDescriptor

from tunrelay.constants import DEVICE_READ_SIZE, DEVICE_READS_PER_TURN

__all__ = ["DevicePort"]

_WRITE_ERRORS = {
    errno.EAGAIN: "device_busy",
    errno.EINVAL: "device_rejected",
    errno.EIO: "device_down",
    errno.EFAULT: "device_rejected",
    errno.EMSGSIZE: "device_rejected",
}


class DevicePort(FileDescriptor):
    def __init__(self, device, relay, reactor=None, on_removed=None):
        FileDescriptor.__init__(self, reactor)
        self.device = device
        self.relay = relay
        self.connected = 1
        # Called once the kernel ends the descriptor (POLLERR, reads fail with EBADFD): the
        # interface was deleted under us, e.g. by ``ip link delete`` (wg-quick down).
        self.on_removed = on_removed

    def fileno(self):
        return self.device.fd if self.device.fd is not None else -1

    def doRead(self):
        read = self.device.read
        deliver = self.relay.device_frame
        for _ in range(DEVICE_READS_PER_TURN):
            try:
                frame = read(DEVICE_READ_SIZE)
            except BlockingIOError:
                return None
            except OSError as error:
                if error.errno == errno.EINTR:
                    continue
                self.relay.drops.drop("device_read_error", None, error.strerror)
                return None
            deliver(frame)
        return None

    def write(self, frame):
        """Write one frame; return a drop reason, or None when the kernel took it."""
        try:
            self.device.write(frame)
        except OSError as error:
            return _WRITE_ERRORS.get(error.errno, "device_error")
        return None

    def connectionLost(self, reason):
        FileDescriptor.connectionLost(self, reason)
        if self.on_removed is not None:
            self.on_removed()
