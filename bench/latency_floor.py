#!/usr/bin/env python3
"""Where a Python relay's round-trip time goes: idle ping RTT through several relays in turn.

- ``plain``: the least a Python relay can do per packet: one epoll loop, read the tun
  device, ChaCha20-Poly1305, sendto; and back (fixed all-zero key, no handshake, no
  checks: a yardstick, never a tunnel to use);
- ``twisted``: the same work on Twisted's default reactor (epoll; a FileDescriptor for the
  device, a DatagramProtocol for UDP), i.e. the cost of the reactor's dispatch alone: the
  bare Twisted relay;
- ``twisted-uvloop``: the same Twisted classes on Twisted's asyncio reactor over uvloop;
- ``uvloop-direct``: Twisted's asyncio reactor over uvloop, the two descriptors registered
  with the loop's ``add_reader`` directly (what tunrelay does by default);
- ``tunrelay``: the real relay, encrypted tun over UDP, default configuration (compare.py's
  tunrelay-tun-udp);
- ``tunrelay-epoll``: the same relay on Twisted's epoll reactor (``twistd --reactor=epoll``),
  to show what the event loop alone is worth;
- ``openvpn``: OpenVPN 2.6 over UDP (compare.py's openvpn-udp).

Each gets fresh namespaces (the integration tests' lab: underlay 192.0.2.1 <-> .2, overlay
198.51.100.1 <-> .2, MTU 1400) and ``ping -c PINGS -i INTERVAL``; the cases run round-robin
``--rounds`` times and the medians of the per-round medians are printed, so that a noisy
spell on a shared machine hits every case alike.

    sudo python3 bench/latency_floor.py [--rounds 3] [--pings 100] [--interval 0.02]
"""

import argparse
import fcntl
import json
import os
import re
import statistics
import struct
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

TUNSETIFF, IFF_TUN, IFF_NO_PI = 0x400454CA, 0x0001, 0x1000
PORT = 51821
_HEADER = struct.Struct("<IIQ")


def _open_tun(name, address):
    from pyroute2 import IPRoute

    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
    with IPRoute() as ipr:
        index = ipr.link_lookup(ifname=name)[0]
        ipr.addr("add", index=index, address=address, prefixlen=24)
        ipr.link("set", index=index, mtu=1400, state="up")
    return fd


class _Yardstick:
    """The per-packet work both minimal relays share."""

    def __init__(self, fd, remote):
        from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

        self.fd, self.peer, self.counter = fd, (remote, PORT), 0
        self.aead = ChaCha20Poly1305(bytes(32))

    def seal(self, packet):
        self.counter += 1
        return _HEADER.pack(4, 0, self.counter) + self.aead.encrypt(
            b"\0\0\0\0" + self.counter.to_bytes(8, "little"), packet, None)

    def open_to_device(self, message):
        counter = _HEADER.unpack_from(message)[2]
        os.write(self.fd, self.aead.decrypt(b"\0\0\0\0" + counter.to_bytes(8, "little"),
                                            memoryview(message)[_HEADER.size:], None))


def run_plain(local, remote, address):
    import select
    import socket

    work = _Yardstick(_open_tun("lf0", address), remote)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((local, PORT))
    sock.setblocking(False)
    poller = select.epoll()
    poller.register(work.fd, select.EPOLLIN)
    poller.register(sock.fileno(), select.EPOLLIN)
    print("ready", flush=True)
    while True:
        for fd, _ in poller.poll():
            while True:
                try:
                    if fd == work.fd:
                        sock.sendto(work.seal(os.read(work.fd, 65600)), work.peer)
                    else:
                        work.open_to_device(sock.recv(65600))
                except BlockingIOError:
                    break


def _install_uvloop_reactor():
    import asyncio

    import uvloop
    from twisted.internet import asyncioreactor

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    return loop


def run_uvloop_direct(local, remote, address):
    import socket

    loop = _install_uvloop_reactor()
    from twisted.internet import reactor

    work = _Yardstick(_open_tun("lf0", address), remote)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((local, PORT))
    sock.setblocking(False)

    def device_readable():
        while True:
            try:
                sock.sendto(work.seal(os.read(work.fd, 65600)), work.peer)
            except BlockingIOError:
                return

    def socket_readable():
        while True:
            try:
                work.open_to_device(sock.recv(65600))
            except BlockingIOError:
                return

    loop.add_reader(work.fd, device_readable)
    loop.add_reader(sock.fileno(), socket_readable)
    print("ready", flush=True)
    reactor.run()


def run_twisted(local, remote, address, uvloop=False):
    if uvloop:
        _install_uvloop_reactor()
    from twisted.internet import reactor
    from twisted.internet.abstract import FileDescriptor
    from twisted.internet.protocol import DatagramProtocol

    work = _Yardstick(_open_tun("lf0", address), remote)

    class Link(DatagramProtocol):
        def datagramReceived(self, data, source):
            work.open_to_device(data)

    class Device(FileDescriptor):
        def fileno(self):
            return work.fd

        def doRead(self):
            while True:
                try:
                    packet = os.read(work.fd, 65600)
                except BlockingIOError:
                    return
                link.transport.write(work.seal(packet), work.peer)

    link = Link()
    reactor.listenUDP(PORT, link, interface=local)
    device = Device(reactor)
    device.connected = 1
    device.startReading()
    print("ready", flush=True)
    reactor.run()


def start_yardstick(a, b, kind):
    processes = []
    for host, local, remote, address in ((a, "192.0.2.1", "192.0.2.2", "198.51.100.1"),
                                         (b, "192.0.2.2", "192.0.2.1", "198.51.100.2")):
        process = host.popen(sys.executable, os.path.abspath(__file__), "--serve", kind, local, remote, address,
                             stdout=subprocess.PIPE, text=True)   # the lab stops it on close
        processes.append(process)
    for process in processes:
        if process.stdout.readline().strip() != "ready":
            raise RuntimeError("the %s yardstick relay did not start" % kind)


SERVERS = {"plain": run_plain, "twisted": run_twisted, "twisted-uvloop": lambda *a: run_twisted(*a, uvloop=True),
           "uvloop-direct": run_uvloop_direct}
KINDS = ("plain", "twisted", "twisted-uvloop", "uvloop-direct", "tunrelay", "tunrelay-epoll", "openvpn")


def median_rtt(kind, pings, interval, directory):
    import compare
    from tests.integration.netns import Lab

    lab = Lab(directory)
    try:
        a, b = lab.underlay(ipv6=False)
        if kind in SERVERS:
            start_yardstick(a, b, kind)
        elif kind == "openvpn":
            compare.start_openvpn(a, b, directory, "udp")
        else:
            compare.start_tunrelay(lab, a, b, directory, "tun-udp", "encrypted",
                                   extra_twistd=("--reactor=epoll",) if kind == "tunrelay-epoll" else ())
        b.ping(compare.OVERLAY_A, timeout=30)
        a.ping(compare.OVERLAY_B)
        result = a.exec("ping", "-n", "-c", str(pings), "-i", str(interval), compare.OVERLAY_B, check=False,
                        timeout=pings * interval + 30)
        times = [float(value) for value in re.findall(r"time=([0-9.]+) ms", result.stdout)]
        if not times:
            raise RuntimeError("%s: no ping answered" % kind)
        return statistics.median(times)
    finally:
        lab.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--serve", nargs=4, metavar=("KIND", "LOCAL", "REMOTE", "ADDRESS"), help=argparse.SUPPRESS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pings", type=int, default=100)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument("--only", default="", help="comma-separated kinds (default all): " + ", ".join(KINDS))
    arguments = parser.parse_args()
    if arguments.serve:
        kind, local, remote, address = arguments.serve
        SERVERS[kind](local, remote, address)
        return
    kinds = [kind for kind in arguments.only.split(",") if kind] if arguments.only else KINDS
    medians = {kind: [] for kind in kinds}
    with tempfile.TemporaryDirectory() as directory:
        os.chmod(directory, 0o755)
        for number in range(arguments.rounds):
            for kind in kinds:
                case_directory = os.path.join(directory, "%s-%d" % (kind, number))
                os.makedirs(case_directory)
                os.chmod(case_directory, 0o755)
                medians[kind].append(median_rtt(kind, arguments.pings, arguments.interval, case_directory))
                print("round %d: %-9s median RTT %.3f ms" % (number + 1, kind, medians[kind][-1]),
                      file=sys.stderr, flush=True)
    result = {kind: statistics.median(medians[kind]) for kind in kinds}
    openvpn, twisted = result.get("openvpn"), result.get("twisted")
    print("%-15s %14s %10s %10s  %s" % ("relay", "median RTT ms", "/ OpenVPN", "/ twisted", "per round"))
    for kind in kinds:
        value = result[kind]
        print("%-15s %14.3f %10s %10s  %s" % (
            kind, value, "%.2f" % (value / openvpn) if openvpn else "-", "%.2f" % (value / twisted) if twisted else "-",
            ", ".join("%.3f" % sample for sample in medians[kind])))
    print(json.dumps({"medians_ms": result, "rounds_ms": medians}))


if __name__ == "__main__":
    main()
