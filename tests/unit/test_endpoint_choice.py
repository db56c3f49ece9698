"""Endpoint lists: the config that declares them and the pure choice between them."""

import pytest

from tunrelay.config import ConfigError, parse
from tunrelay.config_dump import dump
from tunrelay.endpoint_choice import (
    FAILOVER_AFTER, PROBE_ANSWER_WAIT, PROBE_INITIAL, PROBE_MAX, SOLICIT_AFTER, EndpointChoice, Probe, Reassert,
    Solicit, Use,
)

KEY = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="
NAMES = ["udp://192.0.2.2:51820", "tcp://192.0.2.2:51820"]


def peer_config(endpoint, plaintext=False):
    head = "interface: {}\nplaintext: true\n" if plaintext else "interface: {}\nprivate_key_file: k\n"
    return head + "peers:\n  - name: b\n    public_key: %s\n    endpoint: %s\n" % (KEY, endpoint)


def problems_of(text):
    with pytest.raises(ConfigError) as caught:
        parse(text, source="t.yaml")
    return caught.value.problems


def test_a_list_is_kept_in_order_and_dumped_back_as_a_list():
    config = parse(peer_config('["udp://192.0.2.2:51820", "tcp://192.0.2.2:51820"]'))
    peer = config.peers[0]
    assert [str(endpoint) for endpoint in peer.endpoints] == NAMES
    assert str(peer.endpoint) == NAMES[0]
    assert parse(dump(config)).peers[0].endpoints == peer.endpoints


def test_a_single_endpoint_has_no_fallbacks():
    peer = parse(peer_config("udp://192.0.2.2:51820")).peers[0]
    assert peer.fallback_endpoints == () and len(peer.endpoints) == 1


@pytest.mark.parametrize("endpoint, expected", [
    # A mapping, a number and true/false name the type wanted, never "'' must start with tcp://".
    ("{udp: 1}", "t.yaml:6: peers[0].endpoint: must be a string or a list of strings, not a mapping"),
    ("51820", "t.yaml:6: peers[0].endpoint: must be a string or a list of strings, not a number"),
    ("true", "t.yaml:6: peers[0].endpoint: must be a string or a list of strings, not true/false"),
    ("", "t.yaml:6: peers[0].endpoint: must be a string or a list of strings, not empty"),
    ("[udp://192.0.2.2:1, [tcp://192.0.2.2:1]]", "t.yaml:6: peers[0].endpoint[1]: must be a string, not a list"),
    ("[udp://192.0.2.2:1, 7]", "t.yaml:6: peers[0].endpoint[1]: must be a string, not a number"),
    ("[]", "t.yaml:6: peers[0].endpoint: must name at least one endpoint"),
    ("[udp://192.0.2.2:1, udp://192.0.2.2:1]", "t.yaml:6: peers[0].endpoint[1]: udp://192.0.2.2:1 is given twice"),
    ("[udp://192.0.2.2:1, ftp://192.0.2.2:1]", "t.yaml:6: peers[0].endpoint[1]: 'ftp://192.0.2.2:1' must start with"),
])
def test_wrong_types_and_bad_lists_are_named(endpoint, expected):
    problems = problems_of(peer_config(endpoint))
    assert any(problem.startswith(expected) for problem in problems), problems


def test_plaintext_takes_one_endpoint_only():
    problems = problems_of(peer_config("[tcp://192.0.2.2:1, udp://192.0.2.2:1]", plaintext=True))
    assert any("a list of endpoints needs encrypted mode" in problem for problem in problems), problems
    assert parse(peer_config("[tcp://192.0.2.2:1]", plaintext=True)).peers[0].fallback_endpoints == ()


@pytest.mark.parametrize("text, expected", [
    ("interface: {}\nplaintext: true\nlisten: [51820]\n", "t.yaml:3: listen[0]: must be a string, not a number"),
    ("interface: {mode: [tun]}\nplaintext: true\n", "t.yaml:1: interface.mode: must be 'tun' or 'tap', not a list"),
    ("interface: {}\nplaintext: true\nmetrics: {a: 1}\n", "t.yaml:3: metrics: must be a string, not a mapping"),
])
def test_other_keys_name_the_type_too(text, expected):
    problems = problems_of(text)
    assert any(problem.startswith(expected) for problem in problems), problems


# ---- the choice ------------------------------------------------------------------------

def test_a_working_endpoint_is_kept():
    choice = EndpointChoice(NAMES, now=0.0)
    for second in range(1, 60):
        # Traffic both ways, one message a second: never silent.
        assert choice.check(float(second), last_received=second - 0.5, last_sent=float(second)) == []
    assert choice.index == 0


def test_an_idle_peer_is_not_failed_over():
    choice = EndpointChoice(NAMES, now=0.0)
    assert choice.check(100.0, last_received=None, last_sent=None) == []
    assert choice.check(200.0, last_received=10.0, last_sent=5.0) == []   # sent, and then heard


def test_one_way_silence_solicits_once_then_fails_over_with_a_fresh_handshake():
    choice = EndpointChoice(NAMES, now=0.0)
    heard = 10.0
    assert choice.check(heard + SOLICIT_AFTER - 0.1, last_received=heard, last_sent=heard + 1) == []
    assert choice.check(heard + SOLICIT_AFTER, last_received=heard, last_sent=heard + 2) == [Solicit()]
    assert choice.check(heard + SOLICIT_AFTER + 1, last_received=heard, last_sent=heard + 3) == []
    actions = choice.check(heard + FAILOVER_AFTER, last_received=heard, last_sent=heard + 4)
    assert actions == [Use(1, 0, fresh=True)]
    assert choice.current == NAMES[1]
    assert choice.reason == "%s authenticated nothing for %.0f s" % (NAMES[0], FAILOVER_AFTER)
    assert choice.describe()["endpoint_in_use"] == NAMES[1]


def test_an_answer_to_the_solicitation_keeps_the_endpoint():
    choice = EndpointChoice(NAMES, now=0.0)
    assert choice.check(10.0 + SOLICIT_AFTER, last_received=10.0, last_sent=11.0) == [Solicit()]
    # The handshake response is authenticated: the silence is over.
    assert choice.check(10.0 + FAILOVER_AFTER, last_received=10.0 + SOLICIT_AFTER + 0.01, last_sent=11.0) == []
    assert choice.index == 0


def test_an_endpoint_that_never_answered_is_left_after_failover_after():
    choice = EndpointChoice(NAMES, now=0.0)
    assert choice.check(1.0, last_received=None, last_sent=0.5) == []
    assert choice.check(FAILOVER_AFTER, last_received=None, last_sent=0.5) == [Use(1, 0, fresh=True)]


def test_the_preferred_endpoint_is_probed_with_backoff_and_taken_back_when_it_answers():
    choice = EndpointChoice(NAMES, now=0.0)
    choice.check(FAILOVER_AFTER, last_received=None, last_sent=0.5)
    start = FAILOVER_AFTER
    # The fallback works (traffic both ways): probes go out at growing intervals.
    probes = []
    now = start
    while now < start + 200:
        now += 1.0
        actions = choice.check(now, last_received=now - 0.2, last_sent=now - 0.1)
        if Probe(0) in actions:
            assert actions == [Probe(0)]
            probes.append(now - start)
        elif actions:   # the probe went unanswered: the path in use is asserted again
            assert actions == [Reassert()] and now - start - probes[-1] == PROBE_ANSWER_WAIT
    gaps = [later - earlier for earlier, later in zip(probes, probes[1:])]
    assert probes[0] == PROBE_INITIAL
    assert gaps[:3] == [2 * PROBE_INITIAL, 4 * PROBE_INITIAL, PROBE_MAX]
    assert max(gaps) == PROBE_MAX
    # The preferred endpoint answered one: back to it, without a new handshake.
    assert choice.answered(0, now) == Use(0, 1, fresh=False)
    assert choice.current == NAMES[0] and choice.reason == "%s answered again" % NAMES[0]
    assert choice.answered(0, now + 1) is None
    # On the preferred endpoint nothing is probed.
    assert all(choice.check(now + step, last_received=now + step, last_sent=now + step) == []
               for step in range(1, 100))


def test_the_last_endpoint_failing_wraps_round_to_the_first():
    choice = EndpointChoice(NAMES, now=0.0)
    choice.check(FAILOVER_AFTER, last_received=None, last_sent=0.5)
    assert choice.check(2 * FAILOVER_AFTER, last_received=None, last_sent=0.5) == [Use(0, 1, fresh=True)]


def test_no_probe_in_the_turn_of_a_solicitation():
    choice = EndpointChoice(NAMES, now=0.0)
    choice.check(FAILOVER_AFTER, last_received=None, last_sent=0.5)
    now = FAILOVER_AFTER + PROBE_INITIAL
    # The fallback went quiet just as the probe fell due: the solicitation goes alone.
    assert choice.check(now, last_received=now - SOLICIT_AFTER, last_sent=now - 1) == [Solicit()]
    assert choice.check(now + 1, last_received=now - SOLICIT_AFTER, last_sent=now - 1) == [Probe(0)]


def test_three_endpoints_are_probed_one_a_turn_and_an_unanswered_probe_is_reasserted():
    names = NAMES + ["tcp://192.0.2.2:443"]
    choice = EndpointChoice(names, now=0.0)
    choice.check(FAILOVER_AFTER, last_received=None, last_sent=0.5)            # to 1
    choice.check(2 * FAILOVER_AFTER, last_received=None, last_sent=0.5)        # to 2
    assert choice.index == 2
    now = 2 * FAILOVER_AFTER
    seen = []
    for step in range(1, 12):
        actions = choice.check(now + step, last_received=now + step - 0.1, last_sent=now + step - 0.2)
        seen.append((step, actions))
    turns = [(step, actions) for step, actions in seen if actions]
    assert turns[:3] == [(PROBE_INITIAL, [Probe(0)]), (PROBE_INITIAL + 1, [Reassert(), Probe(1)]),
                         (PROBE_INITIAL + 2, [Reassert()])]
    assert choice.answered(1, now + 12) == Use(1, 2, fresh=False)
    # Back on 1, only 0 is probed, and nothing of the old round is left over.
    actions = choice.check(now + 12 + PROBE_INITIAL, last_received=now + 12 + PROBE_INITIAL, last_sent=now + 12)
    assert actions == [Probe(0)]


def test_one_endpoint_is_no_choice():
    with pytest.raises(ValueError):
        EndpointChoice(NAMES[:1], now=0.0)
