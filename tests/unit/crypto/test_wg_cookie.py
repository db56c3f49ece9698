"""mac1 / mac2 / cookie replies between a CookieGenerator and a CookieChecker."""

import itertools

from tunrelay.crypto import keys, messages
from tunrelay.crypto.constants import COOKIE_SECRET_MAX_AGE
from tunrelay.crypto.cookie import CookieChecker, CookieGenerator

RESPONDER_PUBLIC = keys.public_key(keys.clamp(bytes(range(32))))
MESSAGE = messages.Initiation(1, b"e" * 32, b"s" * 48, b"t" * 28).pack()
T = 5000.0


def counting_rng():
    counter = itertools.count()
    return lambda n: bytes((next(counter) + i) & 0xFF for i in range(n))


def setup():
    return CookieGenerator(RESPONDER_PUBLIC), CookieChecker(RESPONDER_PUBLIC, counting_rng())


def test_mac1_checks_and_binds_to_the_responder_key():
    generator, checker = setup()
    stamped = generator.stamp(MESSAGE, T)
    assert checker.check_mac1(stamped)
    assert stamped[-16:] == bytes(16)  # no cookie yet: mac2 is zero
    other = CookieChecker(keys.public_key(keys.clamp(bytes(range(1, 33)))))
    assert not other.check_mac1(stamped)
    tampered = bytearray(stamped)
    tampered[10] ^= 1
    assert not checker.check_mac1(bytes(tampered))


def test_cookie_round_trip_gives_valid_mac2_for_that_source_only():
    generator, checker = setup()
    stamped = generator.stamp(MESSAGE, T)
    assert not checker.check_mac2(stamped, b"src", T)
    reply = messages.parse(checker.create_reply(stamped, 1, b"src", T))
    assert generator.consume_reply(reply, T)
    again = generator.stamp(MESSAGE, T + 1)
    assert again[-16:] != bytes(16)
    assert checker.check_mac1(again)
    assert checker.check_mac2(again, b"src", T + 1)
    assert not checker.check_mac2(again, b"other", T + 1)


def test_reply_must_answer_our_last_message():
    generator, checker = setup()
    stamped = generator.stamp(MESSAGE, T)
    reply = messages.parse(checker.create_reply(stamped, 1, b"src", T))
    generator.stamp(MESSAGE[:-33] + b"x" + bytes(32), T)  # a newer message: new mac1
    assert not generator.consume_reply(reply, T)


def test_reply_is_used_once():
    generator, checker = setup()
    reply = messages.parse(checker.create_reply(generator.stamp(MESSAGE, T), 1, b"src", T))
    assert generator.consume_reply(reply, T)
    assert not generator.consume_reply(reply, T)


def test_tampered_reply_is_refused():
    generator, checker = setup()
    reply = messages.parse(checker.create_reply(generator.stamp(MESSAGE, T), 1, b"src", T))
    bad = messages.CookieReply(reply.receiver, reply.nonce, bytes(32))
    assert not generator.consume_reply(bad, T)


def test_secret_rotation_invalidates_mac2():
    generator, checker = setup()
    reply = messages.parse(checker.create_reply(generator.stamp(MESSAGE, T), 1, b"src", T))
    generator.consume_reply(reply, T)
    late = T + COOKIE_SECRET_MAX_AGE + 1
    assert not checker.check_mac2(generator.stamp(MESSAGE, T + 10) , b"src", late)
    # A new reply after rotation gives a cookie that works again.
    reply = messages.parse(checker.create_reply(generator.stamp(MESSAGE, late), 1, b"src", late))
    assert generator.consume_reply(reply, late)
    assert checker.check_mac2(generator.stamp(MESSAGE, late), b"src", late)


def test_initiator_stops_using_an_old_cookie():
    generator, checker = setup()
    reply = messages.parse(checker.create_reply(generator.stamp(MESSAGE, T), 1, b"src", T))
    generator.consume_reply(reply, T)
    assert generator.stamp(MESSAGE, T + COOKIE_SECRET_MAX_AGE + 1)[-16:] == bytes(16)
