"""Curve25519 keys in WireGuard's formats.

Private keys are 32 random bytes clamped as RFC 7748 §5 describes, which is what
``wg genkey`` prints; public keys are X25519(private, 9) as ``wg pubkey`` prints.
Both travel as standard base64 of exactly 32 bytes.

Errors never carry key material: messages name the path, the mode or the length,
never the bytes or the base64 text.
"""

import base64
import binascii
import os
import stat

from . import primitives
from .constants import KEY_SIZE

# A key file holds 44 base64 characters and a newline; reading more is never needed.
_KEY_FILE_READ_LIMIT = 4096

__all__ = [
    "KeyHandlingError", "InvalidKey", "InsecureKeyFile", "generate_private_key", "clamp",
    "public_key", "encode_key", "decode_key", "load_key_file", "is_low_order",
]


class KeyHandlingError(ValueError):
    """Base class for key handling errors."""


class InvalidKey(KeyHandlingError):
    """A key has the wrong length or is not valid base64."""


class InsecureKeyFile(KeyHandlingError):
    """A key file is readable or writable by group or others."""


def clamp(key):
    if len(key) != KEY_SIZE:
        raise InvalidKey("a private key is %d bytes, got %d" % (KEY_SIZE, len(key)))
    b = bytearray(key)
    b[0] &= 248
    b[31] = (b[31] & 127) | 64
    return bytes(b)


def generate_private_key(rng=os.urandom):
    return clamp(rng(KEY_SIZE))


def public_key(private_key):
    if len(private_key) != KEY_SIZE:
        raise InvalidKey("a private key is %d bytes, got %d" % (KEY_SIZE, len(private_key)))
    return primitives.public_key(private_key)


def encode_key(key):
    if len(key) != KEY_SIZE:
        raise InvalidKey("a key is %d bytes, got %d" % (KEY_SIZE, len(key)))
    return base64.standard_b64encode(key).decode("ascii")


def decode_key(text):
    if isinstance(text, str):
        try:
            text = text.strip().encode("ascii")
        except UnicodeEncodeError:
            raise InvalidKey("a key must be base64 (non-ASCII text given)") from None
    else:
        text = bytes(text).strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidKey("a key must be base64 of %d bytes (invalid base64)" % KEY_SIZE) from None
    if len(raw) != KEY_SIZE:
        raise InvalidKey("a key must be base64 of %d bytes, got %d bytes" % (KEY_SIZE, len(raw)))
    return raw


def load_key_file(path):
    """Read one base64 key from ``path``, refusing files that others may read or write.

    The check is on the open file descriptor so a swap between check and read is harmless.
    """
    path = os.fspath(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise InsecureKeyFile("key file %s is not a regular file" % path)
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            raise InsecureKeyFile(
                "key file %s has mode %04o; it must not be accessible by group or others "
                "(chmod 600 %s)" % (path, mode, path))
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(_KEY_FILE_READ_LIMIT)
    finally:
        os.close(fd)
    try:
        return decode_key(data)
    except InvalidKey as exc:
        raise InvalidKey("key file %s: %s" % (path, exc)) from None


def is_low_order(public_value):
    """True if X25519 with ``public_value`` gives the all-zero secret for any scalar."""
    # Low-order points annihilate every clamped scalar, so one fixed scalar decides.
    try:
        primitives.dh(clamp(b"\x01" * KEY_SIZE), public_value)
    except primitives.LowOrderPoint:
        return True
    return False
