"""Primitives: HChaCha20 / XChaCha20-Poly1305 draft vectors, KDF shape, low-order points."""

import hashlib
import hmac

import pytest
from cryptography.exceptions import InvalidTag

from tunrelay.crypto import primitives

# draft-irtf-cfrg-xchacha-03 §2.2.1
HCHACHA_KEY = bytes(range(32))
HCHACHA_NONCE = bytes.fromhex("000000090000004a0000000031415927")
HCHACHA_SUBKEY = bytes.fromhex("82413b4227b27bfed30e42508a877d73a0f9e4d58a74a853c12ec41326d3ecdc")

# draft-irtf-cfrg-xchacha-03 §A.3.1
X_KEY = bytes(range(0x80, 0xA0))
X_NONCE = bytes(range(0x40, 0x58))
X_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
X_PLAINTEXT = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
               b"for the future, sunscreen would be it.")
X_SEALED = bytes.fromhex(
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
    "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
    "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
    "21f9664c97637da9768812f615c68b13b52e"
    "c0875924c1c7987947deafd8780acf49")

# The Curve25519 points of order 1, 2, 4 and 8, and non-canonical encodings of them.
LOW_ORDER_POINTS = [bytes.fromhex(h) for h in (
    "0000000000000000000000000000000000000000000000000000000000000000",
    "0100000000000000000000000000000000000000000000000000000000000000",
    "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
    "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
    "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
    "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
)]


def test_hchacha20_draft_vector():
    assert primitives.hchacha20(HCHACHA_KEY, HCHACHA_NONCE) == HCHACHA_SUBKEY


def test_hchacha20_rejects_wrong_sizes():
    with pytest.raises(ValueError):
        primitives.hchacha20(HCHACHA_KEY[:31], HCHACHA_NONCE)
    with pytest.raises(ValueError):
        primitives.hchacha20(HCHACHA_KEY, HCHACHA_NONCE + b"\x00")


def test_xchacha20_poly1305_draft_vector_both_ways():
    assert primitives.xaead_encrypt(X_KEY, X_NONCE, X_PLAINTEXT, X_AAD) == X_SEALED
    assert primitives.xaead_decrypt(X_KEY, X_NONCE, X_SEALED, X_AAD) == X_PLAINTEXT


@pytest.mark.parametrize("where", ["ciphertext", "tag", "aad", "nonce"])
def test_xchacha20_poly1305_rejects_any_change(where):
    sealed, aad, nonce = bytearray(X_SEALED), bytearray(X_AAD), bytearray(X_NONCE)
    {"ciphertext": sealed, "tag": sealed, "aad": aad, "nonce": nonce}[where][
        -1 if where == "tag" else 0] ^= 1
    with pytest.raises(InvalidTag):
        primitives.xaead_decrypt(X_KEY, bytes(nonce), bytes(sealed), bytes(aad))


def test_kdf_follows_the_whitepaper_definition():
    ck, data = b"c" * 32, b"input"
    t0 = hmac.new(ck, data, hashlib.blake2s).digest()
    t1 = hmac.new(t0, b"\x01", hashlib.blake2s).digest()
    t2 = hmac.new(t0, t1 + b"\x02", hashlib.blake2s).digest()
    t3 = hmac.new(t0, t2 + b"\x03", hashlib.blake2s).digest()
    assert primitives.kdf(ck, data, 3) == [t1, t2, t3]
    assert primitives.kdf(ck, data, 2) == [t1, t2]


def test_mac_is_keyed_blake2s_128():
    expected = hashlib.blake2s(b"m", key=b"k" * 32, digest_size=16).digest()
    assert primitives.mac(b"k" * 32, b"m") == expected
    assert len(primitives.mac(b"k" * 32, b"m")) == 16


def test_aead_nonce_is_zero_prefix_and_little_endian_counter():
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305
    key = bytes(range(32))
    expected = ChaCha20Poly1305(key).encrypt(b"\x00" * 4 + (0x0102).to_bytes(8, "little"), b"p", b"a")
    assert primitives.aead_encrypt(key, 0x0102, b"p", b"a") == expected


@pytest.mark.parametrize("point", LOW_ORDER_POINTS, ids=range(len(LOW_ORDER_POINTS)))
def test_dh_with_low_order_point_raises(point):
    with pytest.raises(primitives.LowOrderPoint):
        primitives.dh(bytes(range(1, 33)), point)


def test_dh_agrees_both_ways():
    a, b = bytes(range(1, 33)), bytes(range(2, 34))
    assert primitives.dh(a, primitives.public_key(b)) == primitives.dh(b, primitives.public_key(a))
