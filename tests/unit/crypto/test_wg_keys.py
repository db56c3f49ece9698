"""Key generation, encoding and key files."""

import os

import pytest

from tunrelay.crypto import keys

# RFC 7748 §6.1 (Alice).
RFC7748_PRIVATE = bytes.fromhex("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
RFC7748_PUBLIC = bytes.fromhex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
# Produced by `wg genkey` / `wg pubkey` (wireguard-tools v1.0.20210914) for this test only.
WG_PRIVATE = "oLAVNODHrKrW8HYCZDgudKqpypjKpC41yMq0hyryU2k="
WG_PUBLIC = "6Acr+ppA1IAxl0NgyDDf7F/cx0C22FTlRJxC6hmydgU="


def test_public_key_matches_rfc7748():
    assert keys.public_key(RFC7748_PRIVATE) == RFC7748_PUBLIC


def test_public_key_matches_wg_pubkey():
    assert keys.encode_key(keys.public_key(keys.decode_key(WG_PRIVATE))) == WG_PUBLIC


def test_generated_keys_are_clamped():
    private = keys.generate_private_key(lambda n: b"\xff" * n)
    assert private[0] & 7 == 0 and private[31] & 0x80 == 0 and private[31] & 0x40
    private = keys.generate_private_key(lambda n: b"\x00" * n)
    assert private[31] == 0x40


def test_wg_genkey_output_is_already_clamped():
    raw = keys.decode_key(WG_PRIVATE)
    assert keys.clamp(raw) == raw


def test_encode_decode_round_trip():
    key = bytes(range(32))
    assert keys.decode_key(keys.encode_key(key)) == key
    assert keys.decode_key(keys.encode_key(key).encode() + b"\n") == key


@pytest.mark.parametrize("text", [
    "", "AAAA", keys.encode_key(bytes(32))[:-2], "!" * 44, keys.encode_key(bytes(32)) + "AAAA",
    "é" * 44, "A" * 43 + "=" + "A",
])
def test_decode_rejects_bad_text(text):
    with pytest.raises(keys.InvalidKey):
        keys.decode_key(text)


@pytest.mark.parametrize("size", [0, 31, 33])
def test_encode_rejects_wrong_length(size):
    with pytest.raises(keys.InvalidKey):
        keys.encode_key(bytes(size))


def write_key(tmp_path, mode, text=WG_PRIVATE):
    path = tmp_path / "private.key"
    path.write_text(text + "\n")
    os.chmod(path, mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400])
def test_load_key_file_accepts_owner_only(tmp_path, mode):
    assert keys.load_key_file(write_key(tmp_path, mode)) == keys.decode_key(WG_PRIVATE)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644, 0o666])
def test_load_key_file_refuses_group_or_other_access(tmp_path, mode):
    path = write_key(tmp_path, mode)
    with pytest.raises(keys.InsecureKeyFile) as info:
        keys.load_key_file(path)
    message = str(info.value)
    assert str(path) in message and "%04o" % mode in message
    assert WG_PRIVATE not in message and WG_PRIVATE[:8] not in message


def test_load_key_file_bad_content_names_path_not_content(tmp_path):
    path = write_key(tmp_path, 0o600, text="c2VjcmV0LXNlY3JldA==")
    with pytest.raises(keys.InvalidKey) as info:
        keys.load_key_file(path)
    assert str(path) in str(info.value) and "c2VjcmV0" not in str(info.value)


def test_load_key_file_refuses_symlink(tmp_path):
    target = write_key(tmp_path, 0o600)
    link = tmp_path / "link.key"
    link.symlink_to(target)
    with pytest.raises(OSError):
        keys.load_key_file(link)


def test_low_order_detection():
    assert keys.is_low_order(bytes(32))
    assert not keys.is_low_order(RFC7748_PUBLIC)
