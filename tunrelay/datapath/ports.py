"""The forwarding plane's ports besides the peers: the device and the in-process responder."""

__all__ = ["DEVICE_PORT", "RESPONDER_PORT", "is_peer"]

DEVICE_PORT = "device"        # the tun/tap side, as a switch port and a routing ingress
RESPONDER_PORT = "responder"  # the in-process responder stack


def is_peer(port):
    return port is not DEVICE_PORT and port is not RESPONDER_PORT
