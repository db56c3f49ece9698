"""Protocol factories the responder serves: built-ins, or any importable IProtocolFactory.

Built-ins:
- ``echo`` (RFC 862) and ``discard`` (RFC 863), from twisted.protocols.wire;
- ``http``: a small twisted.web site: ``/`` is the relay's status page (``status_page``),
  ``/status.json`` the same status document as JSON (also ``/?format=json``), and
  ``/bytes/N`` streams N deterministic pseudo-random bytes (the first 32 bytes are SHA-256
  of "0", the next of "1", ...) so a client can check a large download without a file on
  disk. The body is produced through IPushProducer, so a slow client pauses the producer
  instead of filling memory.
"""

import hashlib
import importlib

from twisted.internet.interfaces import IProtocolFactory, IPushProducer
from twisted.internet.protocol import Factory
from twisted.protocols import wire
from twisted.web import resource, server
from zope.interface import implementer

from tunrelay.control.protocol import encode_message
from tunrelay.responder.status_page import render_page

__all__ = ["BUILTINS", "check_service_spec", "make_factory", "deterministic_bytes"]

BUILTINS = ("echo", "discard", "http")
MAX_GENERATED_BYTES = 1 << 32   # /bytes/N is capped at 4 GiB
_CHUNK_BLOCKS = 2048            # 64 KiB per produced chunk


def deterministic_bytes(count):
    """The body of /bytes/N, for clients and tests that verify it."""
    blocks = (hashlib.sha256(str(index).encode()).digest() for index in range((count + 31) // 32))
    return b"".join(blocks)[:count]


def _import_factory(spec):
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError("must be one of %s or 'module:attribute'" % ", ".join(BUILTINS))
    if module_name.startswith("."):
        raise ValueError("%s: name the module in full (no leading '.')" % spec)
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ValueError("cannot import %s: %s" % (module_name, error)) from None
    except Exception as error:   # the module's own code failed while it was imported
        raise ValueError("importing %s failed: %s: %s" % (module_name, type(error).__name__, error)) from None
    factory = getattr(module, attribute, None)
    if factory is None:
        raise ValueError("%s has no attribute %r" % (module_name, attribute))
    if not IProtocolFactory.providedBy(factory):
        raise ValueError("%s is not an IProtocolFactory" % spec)
    return factory


def check_service_spec(spec):
    """None if ``spec`` names a usable factory, else the problem in words."""
    if spec in BUILTINS:
        return None
    try:
        _import_factory(spec)
    except ValueError as error:
        return str(error)
    return None


def make_factory(spec, status):
    """The factory for ``spec``; ``status()`` returns the status document for the http page."""
    if spec == "echo":
        return Factory.forProtocol(wire.Echo)
    if spec == "discard":
        return Factory.forProtocol(wire.Discard)
    if spec == "http":
        root = _StatusPage(status)
        root.putChild(b"bytes", _GeneratedBytes())
        root.putChild(b"status.json", _StatusJson(status))
        site = server.Site(root)
        site.displayTracebacks = False
        return site
    return _import_factory(spec)


class _StatusPage(resource.Resource):
    def __init__(self, status):
        resource.Resource.__init__(self)
        self.status = status

    def getChild(self, name, request):
        if name == b"":
            return self  # "/" itself
        return resource.Resource.getChild(self, name, request)

    def render_GET(self, request):
        document = self.status()
        request.setHeader(b"cache-control", b"no-store")
        if request.args.get(b"format") == [b"json"]:
            return _json(request, document)
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return render_page(document)


class _StatusJson(_StatusPage):
    isLeaf = True

    def render_GET(self, request):
        request.setHeader(b"cache-control", b"no-store")
        return _json(request, self.status())


def _json(request, document):
    """The document as ``tunrelay status --json``'s reply carries it (NaN and such as null)."""
    request.setHeader(b"content-type", b"application/json")
    return encode_message(document)


class _GeneratedBytes(resource.Resource):
    def getChild(self, name, request):
        try:
            count = int(name)
        except ValueError:
            return resource.NoResource("expected /bytes/N")
        if not 0 <= count <= MAX_GENERATED_BYTES:
            return resource.NoResource("N must be 0..%d" % MAX_GENERATED_BYTES)
        return _ByteStream(count)


class _ByteStream(resource.Resource):
    isLeaf = True

    def __init__(self, count):
        resource.Resource.__init__(self)
        self.count = count

    def render_GET(self, request):
        request.setHeader(b"content-type", b"application/octet-stream")
        request.setHeader(b"content-length", b"%d" % self.count)
        _BytesProducer(request, self.count).start()
        return server.NOT_DONE_YET


@implementer(IPushProducer)
class _BytesProducer:
    """Writes the generated body while the consumer wants it; pauses when told."""

    def __init__(self, request, count):
        self.request = request
        self.remaining = count
        self.next_block = 0
        self.paused = False
        self.stopped = False

    def start(self):
        self.request.registerProducer(self, True)
        self.request.notifyFinish().addErrback(lambda _: self.stopProducing())
        self.resumeProducing()

    def resumeProducing(self):
        self.paused = False
        while not self.paused and not self.stopped and self.remaining > 0:
            blocks = min(_CHUNK_BLOCKS, (self.remaining + 31) // 32)
            chunk = b"".join(hashlib.sha256(str(index).encode()).digest()
                             for index in range(self.next_block, self.next_block + blocks))
            chunk = chunk[:self.remaining]
            self.next_block += blocks
            self.remaining -= len(chunk)
            self.request.write(chunk)
        if self.remaining == 0 and not self.stopped:
            self.stopped = True
            self.request.unregisterProducer()
            self.request.finish()

    def pauseProducing(self):
        self.paused = True

    def stopProducing(self):
        self.stopped = True
