"""Noise state machine: cacophony vectors, and the WireGuard handshake built on it."""

import json
import pathlib

import pytest

from tunrelay.crypto import keys, messages, noise
from tunrelay.crypto.constants import CONSTRUCTION, IDENTIFIER

VECTORS = json.loads(
    (pathlib.Path(__file__).parents[2] / "vectors" / "noise-ik-cacophony.json").read_text())["vectors"]


def _run_vector(vector):
    h = bytes.fromhex
    pattern = vector["protocol_name"].split("_")[1]
    psk = h(vector["init_psks"][0]) if "init_psks" in vector else None
    initiator = noise.HandshakeState(
        pattern, True, h(vector["init_prologue"]), s=h(vector["init_static"]),
        e=h(vector["init_ephemeral"]), rs=h(vector["init_remote_static"]), psk=psk)
    responder = noise.HandshakeState(
        pattern, False, h(vector["resp_prologue"]), s=h(vector["resp_static"]),
        e=h(vector["resp_ephemeral"]), psk=psk)
    return initiator, responder


@pytest.mark.parametrize("vector", VECTORS, ids=[v["protocol_name"] for v in VECTORS])
def test_cacophony_vector(vector):
    h = bytes.fromhex
    initiator, responder = _run_vector(vector)
    steps = vector["messages"]
    assert initiator.write_message(h(steps[0]["payload"])).hex() == steps[0]["ciphertext"]
    assert responder.read_message(h(steps[0]["ciphertext"])) == h(steps[0]["payload"])
    assert responder.write_message(h(steps[1]["payload"])).hex() == steps[1]["ciphertext"]
    assert initiator.read_message(h(steps[1]["ciphertext"])) == h(steps[1]["payload"])
    assert initiator.finished and responder.finished
    assert initiator.handshake_hash.hex() == vector["handshake_hash"]
    assert responder.handshake_hash.hex() == vector["handshake_hash"]
    i_send, i_recv = initiator.split()
    r_recv, r_send = responder.split()
    # After the handshake, cacophony alternates: initiator, responder, initiator, ...
    for number, step in enumerate(steps[2:]):
        sender, receiver = (i_send, r_recv) if number % 2 == 0 else (r_send, i_recv)
        ciphertext = sender.encrypt_with_ad(b"", h(step["payload"]))
        assert ciphertext.hex() == step["ciphertext"]
        assert receiver.decrypt_with_ad(b"", ciphertext) == h(step["payload"])


def test_cacophony_tampered_message_fails():
    vector = VECTORS[1]
    initiator, responder = _run_vector(vector)
    message = bytearray(initiator.write_message(b"x"))
    message[40] ^= 1
    with pytest.raises(noise.HandshakeError) as info:
        responder.read_message(bytes(message))
    assert info.value.reason == "decrypt_failed"


def test_symmetric_state_hashes_long_protocol_names_and_pads_short_ones():
    from tunrelay.crypto import primitives
    assert noise.SymmetricState(CONSTRUCTION).h == primitives.hash(CONSTRUCTION)
    assert noise.SymmetricState(b"short").h == b"short" + bytes(27)


# --- WireGuard on top ---------------------------------------------------------------

I_PRIV = keys.clamp(bytes(range(1, 33)))
R_PRIV = keys.clamp(bytes(range(101, 133)))
PSK = bytes(range(200, 232))


def wireguard_handshake(psk_i=PSK, psk_r=PSK):
    handshake, initiation = noise.create_initiation(
        I_PRIV, keys.public_key(R_PRIV), psk_i, 7, noise.tai64n(1_700_000_000.5),
        ephemeral=keys.clamp(bytes(range(50, 82))))
    consumed = noise.consume_initiation(R_PRIV, initiation)
    response, responder_keys = consumed.create_response(psk_r, 9, ephemeral=keys.clamp(bytes(32)))
    return handshake, initiation, consumed, response, responder_keys


def test_wireguard_initial_chaining_key_and_hash_follow_whitepaper():
    from tunrelay.crypto import primitives
    state = noise._wireguard_state(True, I_PRIV, keys.public_key(R_PRIV))
    c = primitives.hash(CONSTRUCTION)
    assert state.symmetric.ck == c
    assert state.symmetric.h == primitives.hash(primitives.hash(c, IDENTIFIER), keys.public_key(R_PRIV))


def test_wireguard_handshake_derives_mirrored_keys():
    handshake, initiation, consumed, response, responder_keys = wireguard_handshake()
    assert consumed.remote_public == keys.public_key(I_PRIV)
    assert consumed.remote_index == 7 and consumed.timestamp == noise.tai64n(1_700_000_000.5)
    assert len(initiation.pack()) == 148 and len(response.pack()) == 92
    initiator_keys = handshake.consume_response(response)
    assert initiator_keys.send_key == responder_keys.receive_key
    assert initiator_keys.receive_key == responder_keys.send_key
    assert initiator_keys.send_key != initiator_keys.receive_key
    assert (initiator_keys.local_index, initiator_keys.remote_index) == (7, 9)
    assert (responder_keys.local_index, responder_keys.remote_index) == (9, 7)
    assert initiator_keys.is_initiator and not responder_keys.is_initiator


def test_wireguard_psk_mismatch_fails_at_the_initiator():
    handshake, _, _, response, _ = wireguard_handshake(psk_r=bytes(32))
    with pytest.raises(noise.HandshakeError) as info:
        handshake.consume_response(response)
    assert info.value.reason == "decrypt_failed"


def test_forged_response_does_not_spoil_the_pending_handshake():
    handshake, _, _, response, responder_keys = wireguard_handshake()
    forged = messages.Response(response.sender, response.receiver, response.ephemeral,
                                     bytes(16))
    with pytest.raises(noise.HandshakeError):
        handshake.consume_response(forged)
    assert handshake.consume_response(response).send_key == responder_keys.receive_key


def test_initiation_to_the_wrong_responder_fails():
    _, initiation, _, _, _ = wireguard_handshake()
    with pytest.raises(noise.HandshakeError) as info:
        noise.consume_initiation(keys.clamp(bytes(range(7, 39))), initiation)
    assert info.value.reason == "decrypt_failed"


def test_low_order_ephemeral_is_rejected():
    _, initiation, _, _, _ = wireguard_handshake()
    bad = messages.Initiation(initiation.sender, bytes(32), initiation.encrypted_static,
                                    initiation.encrypted_timestamp)
    with pytest.raises(noise.HandshakeError) as info:
        noise.consume_initiation(R_PRIV, bad)
    assert info.value.reason == "low_order_key"


def test_tai64n_format_and_order():
    stamp = noise.tai64n(0.0)
    assert stamp == (2**62 + 10).to_bytes(8, "big") + bytes(4)
    later = [noise.tai64n(1_700_000_000 + i * 0.02) for i in range(50)]
    assert later == sorted(later) and len(set(later)) == 50
    # Sub-2^24 ns detail is whitened away.
    assert noise.tai64n(1.0) == noise.tai64n(1.001)
    assert noise.tai64n(1.0) < noise.tai64n(1.02)


def test_generic_read_of_a_truncated_message_is_a_handshake_error():
    _, responder = _run_vector(VECTORS[0])
    with pytest.raises(noise.HandshakeError) as info:
        responder.read_message(bytes(20))
    assert info.value.reason == "truncated"
    _, responder = _run_vector(VECTORS[0])
    genuine = bytes.fromhex(VECTORS[0]["messages"][0]["ciphertext"])
    with pytest.raises(noise.HandshakeError) as info:
        responder.read_message(genuine[:40])  # a full ephemeral, then a cut static
    assert info.value.reason == "decrypt_failed"
