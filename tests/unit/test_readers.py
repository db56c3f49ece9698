"""Data-path descriptors on the event loop: straight from asyncio's add_reader, else Twisted's."""

import asyncio
import socket

from twisted.internet.testing import MemoryReactor

from tunrelay.twisted_io.readers import add_reader


class AsyncioReactor:
    """What readers look for in Twisted's asyncio reactor: its loop."""

    def __init__(self, loop):
        self._asyncioEventloop = loop


def test_on_an_asyncio_reactor_the_loop_calls_the_reader_directly_and_a_bug_does_not_unregister_it():
    loop = asyncio.new_event_loop()
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    right.setblocking(False)
    calls = []
    done = loop.create_future()

    def readable():
        calls.append(right.recv(100))
        if len(calls) == 1:
            raise RuntimeError("a bug in the data path")
        done.set_result(None)

    try:
        reader = add_reader(AsyncioReactor(loop), right.fileno(), readable, "a test socket")
        assert reader.direct
        left.send(b"one")
        loop.call_later(0.05, left.send, b"two")   # a second event after the first one raised
        loop.run_until_complete(asyncio.wait_for(done, 5))
        assert calls == [b"one", b"two"]
        reader.stop()
        assert not loop._selector.get_map() or right.fileno() not in loop._selector.get_map()
    finally:
        loop.close()
        left.close()
        right.close()


def test_on_any_other_reactor_it_is_an_ordinary_twisted_reader():
    reactor = MemoryReactor()
    reader = add_reader(reactor, 7, lambda: None, "a test descriptor")
    assert not reader.direct
    [registered] = reactor.readers
    assert registered.fileno() == 7
    reader.stop()
    assert not reactor.readers
