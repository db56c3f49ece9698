"""Learning switch: learning, aging, moves and bounds, checked against a naive model."""

from hypothesis import given, strategies as st

from tunrelay.forwarding.switch import LearningSwitch

DEVICE, B, C = "device", "b", "c"


def mac(n):
    return bytes([2, 0, 0, 0, n >> 8, n & 0xFF])


def test_learn_lookup_and_age_out():
    switch = LearningSwitch(aging=300)
    assert switch.learn(mac(1), B, now=0) is None
    assert switch.lookup(mac(1), now=300) == B
    assert switch.lookup(mac(1), now=300.1) is None
    assert len(switch) == 0


def test_seen_again_refreshes_and_a_move_follows_the_mac():
    switch = LearningSwitch(aging=300)
    switch.learn(mac(1), B, now=0)
    switch.learn(mac(1), B, now=200)
    assert switch.lookup(mac(1), now=450) == B
    switch.learn(mac(1), C, now=460)
    assert switch.lookup(mac(1), now=461) == C


def test_a_flooding_port_fills_only_its_share():
    switch = LearningSwitch(aging=300, max_per_port=100, max_total=150)
    refused = [switch.learn(mac(n), B, now=1) for n in range(1000)]
    assert refused.count(None) == 100 and refused.count("mac_table_port_full") == 900
    assert switch.learn(mac(5000), C, now=1) is None  # others still learn
    assert switch.lookup(mac(5000), now=2) == C


def test_expired_entries_make_room():
    switch = LearningSwitch(aging=10, max_per_port=2)
    switch.learn(mac(1), B, now=0)
    switch.learn(mac(2), B, now=0)
    assert switch.learn(mac(3), B, now=5) == "mac_table_port_full"
    assert switch.learn(mac(3), B, now=11) is None


def test_forget_port():
    switch = LearningSwitch()
    switch.learn(mac(1), B, now=0)
    switch.learn(mac(2), C, now=0)
    switch.forget_port(B)
    assert switch.lookup(mac(1), now=1) is None and switch.lookup(mac(2), now=1) == C


@given(st.lists(st.tuples(st.integers(0, 20), st.sampled_from([DEVICE, B, C]), st.integers(0, 5)), max_size=200))
def test_matches_a_naive_model_without_bounds(operations):
    switch = LearningSwitch(aging=30)
    model = {}
    now = 0
    for number, port, step in operations:
        now += step * 7
        switch.learn(mac(number), port, now)
        model[mac(number)] = (port, now)
        for address, (expected_port, seen) in model.items():
            expected = expected_port if now - seen <= 30 else None
            assert switch.lookup(address, now) == expected


def test_a_full_table_is_swept_at_most_once_per_interval():
    # A flood of new MACs against a full table must not walk the table for every frame.
    switch = LearningSwitch(aging=10, max_per_port=2)
    switch.learn(mac(1), B, now=0)
    switch.learn(mac(2), B, now=0.3)
    assert switch.learn(mac(3), B, now=10.2) is None       # swept: mac 1 had expired
    assert switch.learn(mac(4), B, now=10.5) == "mac_table_port_full"   # mac 2 expired, but no sweep yet
    assert switch.learn(mac(4), B, now=11.3) is None       # the next sweep makes room
