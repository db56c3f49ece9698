"""tunrelay: a Twisted-based tun/tap relay for Linux."""

__version__ = "0.1.0"
