"""The control socket: ``tunrelay status`` and ``tunrelay reload`` talking to a running relay.

- ``protocol``: the wire format, pure (newline-delimited JSON, bounded lines).
- ``server``: ``ControlSocketService``, the Twisted side inside the relay.
- ``client``: a blocking client for the CLI (plain ``socket``, no reactor).
- ``render``: ``wg show``-like text for ``tunrelay status``.

The status JSON schema is documented in ``schema.md`` next to this file. Nothing is
imported here so the CLI loads only what it uses.
"""
