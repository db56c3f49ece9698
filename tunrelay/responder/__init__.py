"""The in-process responder's Twisted side: services, the ITransport adapter, the port.

The protocol cores live in ``tunrelay.stack`` (pure, clock-injected); this package only
adapts them to the reactor and to ordinary Twisted protocol factories.
"""
