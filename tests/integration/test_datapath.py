"""The data path against the real kernel: exact frames, coalesced writes, and loss.

- Frames cross byte for byte: what A's kernel hands A's relay (captured with tcpdump on A's
  device) is exactly what B's relay hands B's kernel (captured on B's device), in tun and
  tap, over every transport, encrypted and plaintext: no WireGuard padding, no trimming.
- A TCP transfer arrives in coalesced writes (far fewer device writes than packets) that
  the kernel accepts: the checksum it verifies is the one the relay derived.
- 20 MB cross sha256-exact with 5% random loss of underlay packets in both directions.
"""

import json
import signal
import struct
import subprocess

import pytest

from .conftest import require_tool
from .netns import checksum_errors, transfer, wait_for
from .test_two_hosts import CASES, OVERLAY_A, OVERLAY_B, start_pair

PING_SIZES = (0, 1, 7, 15, 16, 17, 100, 999, 1000, 1372)   # 1372 + 28 fills the 1400-byte MTU


class Capture:
    def __init__(self, host, path, device="tr0", expression="icmp or arp"):
        self.path = path
        self.errors = open(path + ".log", "w")
        # --immediate-mode: each frame is handed over at once (tcpdump otherwise waits for a block
        # of them, and what it holds when stopped is never written).
        self.process = host.popen("tcpdump", "-i", device, "--immediate-mode", "-U", "-n", "-w", path, expression,
                                  stdout=subprocess.DEVNULL, stderr=self.errors)
        wait_for(lambda: "listening on" in open(path + ".log").read() or self.process.poll() is not None, 10,
                 message="tcpdump on %s to listen" % device)

    def frames(self, at_least=0):
        """Every frame captured, exactly as the device saw it (classic pcap, read by hand), once
        at least ``at_least`` are written."""
        wait_for(lambda: len(self._read()) >= at_least, 10, message="%d frames in %s" % (at_least, self.path))
        self.process.send_signal(signal.SIGINT)
        self.process.wait(10)
        self.errors.close()
        return self._read()

    def _read(self):
        with open(self.path, "rb") as stream:
            data = stream.read()
        if len(data) < 24:
            return []
        magic = data[:4]
        order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        frames, offset = [], 24
        while offset + 16 <= len(data):
            captured, original = struct.unpack_from(order + "II", data, offset + 8)
            assert captured == original, "tcpdump cut a frame short"
            frames.append(data[offset + 16:offset + 16 + captured])
            offset += 16 + captured
        return frames


def echo_frames(frames, mode, kind):
    """The ICMP echo requests (8) or replies (0) among captured frames, as captured."""
    offset = 14 if mode == "tap" else 0
    selected = []
    for frame in frames:
        if mode == "tap" and frame[12:14] != b"\x08\x00":
            continue
        ip = frame[offset:]
        if len(ip) >= 21 and ip[0] >> 4 == 4 and ip[9] == 1 and ip[(ip[0] & 15) * 4] == kind:
            selected.append(frame)
    return selected


@pytest.mark.parametrize("security", ["encrypted", "plaintext"])
@pytest.mark.parametrize("case", ["tun-tcp", "tun-udp", "tap-tcp", "tap-udp", "tap-ethernet"])
def test_frames_cross_byte_exact(lab, tmp_path, case, security):
    require_tool("tcpdump")
    mode, a_listen, b_endpoint, b_listen = CASES[case]
    a, b, relay_a, relay_b = start_pair(lab, mode, a_listen, b_endpoint, b_listen, secure=security == "encrypted")
    b.ping(OVERLAY_A)   # B knows A's endpoint; A learns B's from it
    a.ping(OVERLAY_B)
    sent_capture = Capture(a, str(tmp_path / "a.pcap"))
    received_capture = Capture(b, str(tmp_path / "b.pcap"))
    for size in PING_SIZES:
        result = a.exec("ping", "-c", "1", "-W", "2", "-s", str(size), "-p", "a5", OVERLAY_B, check=False)
        assert result.returncode == 0, result.stdout
    # Each side's device sees every request and every reply (more in tap mode: ARP).
    sent, received = sent_capture.frames(2 * len(PING_SIZES)), received_capture.frames(2 * len(PING_SIZES))
    for kind in (8, 0):   # requests A -> B, then replies B -> A
        leaving = echo_frames(sent if kind == 8 else received, mode, kind)
        arriving = echo_frames(received if kind == 8 else sent, mode, kind)
        assert len(leaving) == len(PING_SIZES) and arriving == leaving   # every byte, every length
    assert "Traceback" not in relay_a.log() + relay_b.log()


def status(relay):
    return json.loads(relay.tool("status", "-s", relay.config["control_socket"], "--json").stdout)


@pytest.mark.parametrize("case", ["tun-udp", "tap-udp"])
def test_a_transfer_arrives_in_coalesced_writes_the_kernel_accepts(lab, tmp_path, case):
    mode, a_listen, b_endpoint, b_listen = CASES[case]
    a, b, relay_a, relay_b = start_pair(lab, mode, a_listen, b_endpoint, b_listen, secure=True)
    b.ping(OVERLAY_A)
    a.ping(OVERLAY_B)
    errors_before = checksum_errors(b)
    sent, received = transfer(a, b, OVERLAY_B, tmp_path)
    assert sent == received
    device = status(relay_b)["device"]
    # Every packet B's kernel got came in far fewer writes, and it refused none of them.
    assert device["tx_writes"] * 4 < device["tx_packets"], device
    assert checksum_errors(b) == errors_before
    assert "refused a coalesced" not in relay_b.log() and "Traceback" not in relay_b.log()


@pytest.mark.parametrize("case", ["tun-udp", "tun-tcp"])
def test_20mb_cross_exactly_under_5_percent_loss_each_way(lab, tmp_path, case):
    require_tool("nft")
    mode, a_listen, b_endpoint, b_listen = CASES[case]
    a, b, relay_a, relay_b = start_pair(lab, mode, a_listen, b_endpoint, b_listen, secure=True)
    b.ping(OVERLAY_A)
    a.ping(OVERLAY_B)
    for host in (a, b):
        host.lose_underlay_packets(5)
    sent, received = transfer(a, b, OVERLAY_B, tmp_path, timeout=300)
    assert sent == received
    dropped = [host.underlay_packets_lost() for host in (a, b)]
    assert min(dropped) > 50, "the loss must really have happened both ways: %s" % dropped
    assert "Traceback" not in relay_a.log() + relay_b.log()
