"""The tun/tap device: opened through /dev/net/tun, configured over rtnetlink with pyroute2.

Theory of operation (Linux Documentation/networking/tuntap.rst): TUNSETIFF on an open
/dev/net/tun attaches the file descriptor to a new or existing interface. IFF_NO_PI means
every read returns exactly one frame (an IP packet for tun, an Ethernet frame for tap) with
no 4-byte packet-information header, which is the format simpletun and usertunnel peers
exchange. We never set TUNSETPERSIST, so the kernel deletes the interface, with its
addresses and routes, when the last descriptor closes: teardown is guaranteed even after
twistd has dropped the privileges that netlink would need.

Offload (``interface.offload``, see ``tunrelay.datapath``). By default the device is opened
with IFF_VNET_HDR: every read and write carries a 10-byte virtio-net header. Reads stay
ordinary, finished packets (no TUNSETOFFLOAD flags, so the kernel computes every checksum
in C), while a write may carry a whole coalesced TCP or UDP run. With ``offload: true``
(tun) TUNSETOFFLOAD(CSUM|TSO4|TSO6) also lets the kernel hand us TCP super-packets of up
to 64 KiB. A kernel that refuses IFF_VNET_HDR or an offload flag gets a one-line warning
and the plainer path, never a failed start. ``vnet`` and ``super_packets`` say what was
granted.

Link settings (MTU, addresses, routes, up) go over rtnetlink (RFC 3549) via pyroute2;
the product never runs ``ip``.
"""

import errno
import fcntl
import os
import struct

from twisted.logger import Logger

from tunrelay.config import OFFLOAD_OFF, OFFLOAD_SUPER_PACKETS

__all__ = ["DeviceError", "TunDevice"]

TUNSETIFF = 0x400454CA
TUNSETOFFLOAD = 0x400454D0
TUNSETVNETHDRSZ = 0x400454D8
IFF_TUN = 0x0001
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
IFF_VNET_HDR = 0x4000
TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 = 0x01, 0x02, 0x04
IFA_F_NODAD = 0x02
TUN_PATH = "/dev/net/tun"


class DeviceError(Exception):
    """The device could not be created or configured; the message says why, in one line."""


class TunDevice:
    log = Logger()

    def __init__(self, name, mode, offload=OFFLOAD_OFF):
        self.requested_name = name
        self.mode = mode
        self.offload = offload
        self.name = None
        self.fd = None
        self.index = None
        self.vnet = False            # reads and writes carry a virtio-net header
        self.super_packets = False   # reads may be TSO super-packets

    def open(self):
        self.vnet = self.offload != OFFLOAD_OFF
        try:
            fd = self._attach(self.vnet)
        except DeviceError:
            if not self.vnet:
                raise
            fd = self._attach(False)   # raises again if the device itself cannot be had
            self.vnet = False
            self.log.warn("the kernel refused IFF_VNET_HDR on {device}: no offload, one write per packet",
                          device=self.requested_name)
        self.fd = fd
        if self.vnet:
            try:
                fcntl.ioctl(fd, TUNSETVNETHDRSZ, struct.pack("i", 10))
            except OSError as error:
                self.close()
                raise DeviceError("cannot set the virtio-net header size on %s: %s"
                                  % (self.requested_name, error.strerror)) from None
            if self.offload == OFFLOAD_SUPER_PACKETS:
                self._ask_for_super_packets()
        return fd

    def _attach(self, vnet):
        flags = (IFF_TUN if self.mode == "tun" else IFF_TAP) | IFF_NO_PI | (IFF_VNET_HDR if vnet else 0)
        try:
            fd = os.open(TUN_PATH, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as error:
            raise DeviceError("cannot open %s: %s" % (TUN_PATH, error.strerror)) from None
        try:
            request = struct.pack("16sH22x", self.requested_name.encode(), flags)
            reply = fcntl.ioctl(fd, TUNSETIFF, request)
        except OSError as error:
            os.close(fd)
            hint = " (is another process using %s?)" % self.requested_name if error.errno == errno.EBUSY else ""
            raise DeviceError("cannot create %s device %s: %s%s" % (self.mode, self.requested_name, error.strerror, hint)) from None
        self.name = reply[:16].split(b"\x00", 1)[0].decode()
        return fd

    def _ask_for_super_packets(self):
        try:
            fcntl.ioctl(self.fd, TUNSETOFFLOAD, TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6)
        except OSError as error:
            self.log.warn("the kernel refused TSO on {device} ({error}): ordinary packets only",
                          device=self.requested_name, error=error.strerror)
            return
        self.super_packets = True

    def configure(self, mtu, addresses, routes):
        """Set MTU, addresses and routes and bring the link up, all over netlink."""
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError

        step = "look up"
        try:
            with IPRoute() as ipr:
                self.index = ipr.link_lookup(ifname=self.name)[0]
                step = "set the MTU of"
                ipr.link("set", index=self.index, mtu=mtu)
                for interface in addresses:
                    step = "add address %s to" % interface
                    flags = {"flags": IFA_F_NODAD} if interface.version == 6 and self.mode == "tun" else {}
                    ipr.addr("add", index=self.index, address=str(interface.ip),
                             prefixlen=interface.network.prefixlen, **flags)
                step = "bring up"
                ipr.link("set", index=self.index, state="up")
                for network in routes:
                    step = "add route %s via" % network
                    ipr.route("add", dst=str(network), oif=self.index,
                              family=10 if network.version == 6 else 2)
        except (NetlinkError, OSError, IndexError) as error:
            reason = getattr(error, "strerror", None) or (error.args[1] if len(error.args) > 1 else error)
            raise DeviceError("cannot %s %s: %s" % (step, self.name, reason)) from None

    def read(self, size):
        return os.read(self.fd, size)

    def write(self, frame):
        return os.write(self.fd, frame)

    def close(self):
        """Close the descriptor; the kernel removes the non-persistent device with it."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
            self.log.info("device {device} closed and removed", device=self.name)
