"""wireguard-go's cross-platform configuration protocol (UAPI), so wg(8) and wg-quick(8) drive a relay.

- ``protocol``: bytes -> typed requests or a typed error with wireguard-go's errno; device
  state -> bytes (pure);
- ``apply``: a ``set`` replayed on (RelayConfig, Secrets) -> the new pair (pure);
- ``state``: the ``get`` view of a relay, read from its config, secrets and ``Relay.snapshot()``;
- ``server``: the Twisted UNIX-socket adapter.
"""
