"""ICMPv4 message parser (tunrelay/wire/icmp.py).

Contract: ``IcmpMessage.parse`` raises only ``MalformedPacket``. Checks: a parsed message
emits the input byte for byte when its checksum was right (0 and 0xFFFF are both zero), and parses back to itself;
echo identifier and sequence read back from ``rest``. The first input byte can fill in the
checksum, or turn its check off.
"""

from tunrelay.wire.errors import MalformedPacket
from tunrelay.wire.icmp import IcmpMessage, is_error_type

from ._input import accepted
from ._packets import checked_or_not, same_but_checksum, with_checksum

REJECTIONS = (MalformedPacket,)
COVERS = ["tunrelay/wire/icmp.py"]
MAX_LEN = 2048


def fuzz_one(data):
    if not data:
        return
    verify, buf = checked_or_not(data, lambda packet: with_checksum(packet, 2))
    message = IcmpMessage.parse(buf, verify_checksum=verify)
    emitted = message.emit()
    if verify:
        assert same_but_checksum(emitted, buf, 2), (emitted, buf)
    assert accepted(MalformedPacket, IcmpMessage.parse, emitted) == message
    assert IcmpMessage.echo(message.type, message.identifier, message.sequence,
                            message.data).rest == message.rest
    is_error_type(message.type)
