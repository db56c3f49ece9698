"""One path for every change: RelayService.apply behind SIGHUP reload and the UAPI, on in-memory fakes."""

import textwrap

import pytest
from twisted.internet.testing import MemoryReactorClock, StringTransport

from tunrelay import config as configuration
from tunrelay.config import Secrets
from tunrelay.crypto import keys
from tunrelay.service import ConfigRefused, RelayService
from tunrelay.testing import MemoryDevice, MemoryLink, ipv4_packet, from_device, received

OWN, B, C = (keys.generate_private_key() for _ in range(3))


def encoded(private):
    return keys.encode_key(keys.public_key(private))


TEXT = textwrap.dedent("""\
    interface: {name: tr0, addresses: [198.51.100.1/24]}
    private_key_file: own.key
    control_socket: /nonexistent/tr0.sock
    uapi_socket: /nonexistent/tr0-uapi.sock
    peers:
      - name: site-b
        public_key: "%s"
        endpoint: "udp://192.0.2.2:51820"
        allowed_ips: [198.51.100.2/32]
    """) % encoded(B)


def service_for(text=TEXT, secrets=Secrets(OWN, {})):
    clock = MemoryReactorClock()
    clock.advance(1_700_000_000)
    service = RelayService(configuration.parse(text, source="<test>"), reactor=clock, secrets=secrets)
    service.relay.datapath.attach_device(MemoryDevice(vnet=True))
    return service


def uapi(service, data):
    """Send ``data`` over an in-memory UAPI connection; the reply bytes."""
    connection = service.uapi.factory.buildProtocol(None)
    transport = StringTransport()
    connection.makeConnection(transport)
    connection.dataReceived(data)
    return transport.value()


def test_a_peer_added_over_the_uapi_is_in_status_and_in_get():
    service = service_for()
    reply = uapi(service, ("set=1\npublic_key=%s\nendpoint=192.0.2.3:51820\nallowed_ip=198.51.100.3/32\n"
                           "persistent_keepalive_interval=25\n\n" % keys.public_key(C).hex()).encode())
    assert reply == b"errno=0\n\n"
    name = configuration.default_peer_name(keys.public_key(C))
    peers = {peer["name"]: peer for peer in service.relay.snapshot()["peers"]}
    assert peers[name]["allowed_ips"] == ["198.51.100.3/32"] and peers[name]["keepalive"] == 25
    assert peers[name]["endpoint"] == "udp://192.0.2.3:51820"
    text = uapi(service, b"get=1\n\n").decode()
    assert "public_key=%s\n" % keys.public_key(C).hex() in text and "allowed_ip=198.51.100.3/32\n" in text
    assert text.startswith("private_key=%s\n" % OWN.hex()) and text.endswith("errno=0\n\n")
    assert service.config.peers[1].name == name      # showconf and reload compare against this


def test_bad_input_is_counted_with_the_relays_drops_and_changes_nothing():
    service = service_for()
    before = service.config
    assert uapi(service, b"set=1\npublic_key=%s\nallowed_ip=nope\n\n" % keys.public_key(C).hex().encode()) == \
        b"errno=-22\n\n"
    assert uapi(service, b"set=1\nlisten_port\n\n") == b"errno=-71\n\n"
    assert service.config is before
    assert service.relay.snapshot()["drops"] == {"uapi_bad_value": 1, "uapi_malformed_line": 1}


def test_an_untouched_peer_keeps_its_session_state_through_a_uapi_change():
    service = service_for()
    peer = service.relay.peers["site-b"]
    link = MemoryLink("udp")
    service.relay.sessions.path_known(peer, link, ("192.0.2.2", 51820))
    from_device(service.relay, ipv4_packet("198.51.100.1", "198.51.100.2", b"x"))
    handle = peer.wg
    assert link.sent and len(handle.staged) == 1 and handle.handshake is not None   # waits for the handshake
    uapi(service, b"set=1\npublic_key=%s\nallowed_ip=198.51.100.3/32\n\n" % keys.public_key(C).hex().encode())
    assert service.relay.peers["site-b"] is peer and peer.paths
    assert peer.wg is handle and len(handle.staged) == 1 and handle.handshake is not None


def test_a_new_preshared_key_reaches_the_session_even_though_the_peer_config_is_equal():
    service = service_for()
    psk = bytes(range(32))
    uapi(service, b"set=1\npublic_key=%s\npreshared_key=%s\n\n" % (keys.public_key(B).hex().encode(),
                                                                     psk.hex().encode()))
    assert service.secrets.preshared_keys == {"site-b": psk}
    assert service.relay.peers["site-b"].wg.config.preshared_key == psk


def test_a_private_key_set_over_the_uapi_replaces_the_sessions_key_and_showconf_says_where_it_is():
    service = service_for()
    uapi(service, b"set=1\nprivate_key=%s\n\n" % C.hex().encode())
    assert service.relay.sessions.core.public_key == keys.public_key(C)
    text = service.showconf()
    assert C.hex() not in text and keys.encode_key(C) not in text
    assert "# private_key_file: none. The private key was set over the UAPI" in text
    parsed = configuration.parse(text + "private_key_file: k\n")
    assert [peer.name for peer in parsed.peers] == ["site-b"]


def test_a_peer_with_the_relays_own_key_is_refused():
    service = service_for()
    with pytest.raises(ConfigRefused, match="peer 'site-b' has this relay's own public key"):
        service.apply(configuration.parse(TEXT.replace(encoded(B), encoded(OWN))), Secrets(OWN, {}))
    assert [peer.name for peer in service.config.peers] == ["site-b"]


def test_a_relay_without_a_file_refuses_to_reload_with_one_line():
    service = service_for()
    ok, message = service.reload()
    assert not ok and message == ("config not reloaded, the old one keeps running: this relay has no configuration "
                                  "file (<test>); change it over the UAPI")


def test_restart_only_changes_are_refused():
    service = service_for()
    new = configuration.parse(TEXT.replace("tr0-uapi.sock", "other.sock"))
    with pytest.raises(ConfigRefused) as caught:
        service.apply(new, Secrets(OWN, {}))
    assert "'uapi_socket' changed; that needs a restart" in str(caught.value)


def test_without_a_private_key_the_relay_drops_frames_and_initiations_and_stays_up():
    service = service_for(secrets=Secrets(None, {}))
    relay = service.relay
    peer = relay.peers["site-b"]
    relay.sessions.path_known(peer, MemoryLink("udp"), ("192.0.2.2", 51820))
    for _ in range(3):
        from_device(relay, ipv4_packet("198.51.100.1", "198.51.100.2", b"x"))
    assert peer.counters.drops["no_private_key"] == 3
    received(relay, MemoryLink("udp"), ("192.0.2.9", 1), b"\x01\x00\x00\x00" + bytes(144))
    assert relay.snapshot()["drops"]["no_private_key"] == 1
    assert "private_key=" not in uapi(service, b"get=1\n\n").decode()
