"""UDP sockets that change while the relay runs: rebinding keeps peer paths, a port in use changes nothing."""

import os
import socket

import pytest
from twisted.internet.testing import MemoryReactorClock

from tunrelay.endpoints import parse_listen
from tunrelay.testing import relay_from_yaml
from tunrelay.udp_sockets import SO_MARK, SocketSetupFailed, UdpSockets

CONFIG = "interface: {}\nplaintext: true\npeers: [{name: b, endpoint: 'udp://127.0.0.2:5000'}]\n"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def sockets():
    relay = relay_from_yaml(CONFIG)
    udp = UdpSockets(relay, MemoryReactorClock())
    yield udp
    udp.close()


def test_peers_use_their_familys_listener_else_an_ephemeral_socket(sockets):
    port = free_port()
    sockets.listen(parse_listen("udp://127.0.0.1:%d" % port))
    assert sockets.link_for(4) is sockets.listeners[0][2] and sockets.listen_port() == port
    v6 = sockets.link_for(6)
    assert v6 is sockets.link_for(6) and v6 is not sockets.link_for(4)


def test_rebinding_moves_every_path_to_the_new_socket_and_closes_the_old(sockets):
    relay = sockets.relay
    first, second = free_port(), free_port()
    old_port = sockets.listen(parse_listen("udp://127.0.0.1:%d" % first))
    old_link = sockets.link_for(4)
    peer = relay.peers["b"]
    relay.sessions.path_known(peer, old_link, ("127.0.0.2", 5000))
    replacements = sockets.rebind([parse_listen("udp://127.0.0.1:%d" % second)])
    new_link = sockets.link_for(4)
    assert replacements == {old_link: new_link} and new_link is not old_link
    assert peer.paths == [(new_link, ("127.0.0.2", 5000))] and peer.active_path == (new_link, ("127.0.0.2", 5000))
    assert sockets.listen_port() == second and old_port.socket.fileno() == -1   # the old socket is closed
    assert relay.peer_of_path(new_link, ("127.0.0.2", 5000)) is peer


def test_a_port_in_use_changes_nothing(sockets):
    first = free_port()
    sockets.listen(parse_listen("udp://127.0.0.1:%d" % first))
    before = list(sockets.listeners)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        taken = holder.getsockname()[1]
        with pytest.raises(SocketSetupFailed, match="cannot listen on udp://127.0.0.1:%d" % taken):
            sockets.rebind([parse_listen("udp://127.0.0.1:%d" % first), parse_listen("udp://127.0.0.1:%d" % taken)])
    assert sockets.listeners == before and sockets.listen_port() == first


def test_no_udp_listen_address_leaves_only_outbound_sockets(sockets):
    sockets.listen(parse_listen("udp://127.0.0.1:%d" % free_port()))
    sockets.rebind([])
    assert sockets.listeners == [] and sockets.listen_port() not in (None, 0)   # an ephemeral port now


def test_fwmark_marks_every_socket_or_none(sockets):
    sockets.listen(parse_listen("udp://127.0.0.1:%d" % free_port()))
    sockets.link_for(6)
    if os.geteuid() == 0:
        sockets.set_fwmark(51820)
        assert [port.socket.getsockopt(socket.SOL_SOCKET, SO_MARK) for port in sockets.ports()] == [51820, 51820]
        later = sockets.rebind([parse_listen("udp://127.0.0.1:%d" % free_port())])
        assert later and sockets.ports()[0].socket.getsockopt(socket.SOL_SOCKET, SO_MARK) == 51820
    else:   # SO_MARK needs CAP_NET_ADMIN
        with pytest.raises(SocketSetupFailed, match="cannot set fwmark 51820"):
            sockets.set_fwmark(51820)
        assert sockets.fwmark == 0
