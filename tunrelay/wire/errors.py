"""The single exception raised by every checked parser in :mod:`tunrelay.wire`.

Parsers never raise ``struct.error``, ``IndexError`` or ``ValueError`` on hostile input;
they raise :class:`MalformedPacket` with a short snake_case ``reason`` (``truncated``,
``bad_checksum``, ``bad_ihl``, ``bad_total_length``, ``bad_version``, ...) that callers
use directly as a drop-counter key.
"""

__all__ = ["MalformedPacket"]


class MalformedPacket(ValueError):
    """A packet failed validation; ``reason`` is a short snake_case drop-counter key."""

    def __init__(self, reason, detail=None):
        self.reason = reason
        self.detail = detail
        super().__init__(reason if detail is None else "%s: %s" % (reason, detail))
