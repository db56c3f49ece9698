"""Which event loop the relay runs on: Twisted's asyncio reactor, on uvloop where it is installed.

The data path's descriptors are read straight from the event loop's ``add_reader``
(``tunrelay.twisted_io.readers``), which needs a reactor built on an asyncio loop; uvloop
(libuv) makes each wake-up cheaper still. Everything else is ordinary Twisted and runs on
any reactor. ``install()`` runs while twistd parses our options, before anything has
imported ``twisted.internet.reactor``; a reactor the operator chose (``twistd --reactor=...``)
or one already running (tests) is left alone, and without uvloop the stock asyncio loop
is the fallback.
"""

import asyncio
import sys

__all__ = ["install", "describe"]


def install():
    """Install the asyncio reactor (uvloop if importable) unless a reactor is installed already.

    Returns a short description of the loop the relay will run on."""
    if "twisted.internet.reactor" in sys.modules:
        return describe()
    try:
        import uvloop
    except ImportError:
        loop = asyncio.new_event_loop()
    else:
        loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    from twisted.internet import asyncioreactor

    asyncioreactor.install(loop)
    return describe()


def describe():
    from twisted.internet import reactor

    loop = getattr(reactor, "_asyncioEventloop", None)
    if loop is None:
        return "%s (Twisted's own dispatch on the data path)" % type(reactor).__name__
    return "asyncio on %s (data path read straight from the loop)" % type(loop).__module__.split(".")[0]
