"""The ``tunrelay`` command: tools around the relay that twistd runs.

    tunrelay check -c FILE                      validate a configuration, print every problem, exit non-zero on any
    tunrelay run -c FILE                        run in the foreground (same as ``twistd -n tunrelay -c FILE``)
    tunrelay status [-s SOCKET | -c FILE] [--json]   show the running relay, like ``wg show``
    tunrelay reload [-s SOCKET | -c FILE]       ask the running relay to re-read its configuration
    tunrelay showconf [-s SOCKET | -c FILE]     print the running configuration as YAML (UAPI changes included)
    tunrelay import WG.conf --output FILE.yaml  turn a wg-quick file into a tunrelay configuration

``status``, ``reload`` and ``showconf`` talk to the relay's control socket: ``-s`` names it, else
``control_socket`` from the configuration given with ``-c``, else the default for ``tr0``.
Exit codes: 0 success, 1 the relay could not be reached or refused (one line on stderr),
2 a configuration error.
"""

import argparse
import os
import json
import sys
import time

from tunrelay import __version__
from tunrelay import config as configuration
from tunrelay.crypto import keys
from tunrelay.constants import DEFAULT_CONTROL_SOCKET

__all__ = ["main"]

DEFAULT_SOCKET = DEFAULT_CONTROL_SOCKET.format(interface="tr0")


def _load(path):
    """The configuration at ``path``, or None after printing every problem."""
    try:
        return configuration.load(path)
    except configuration.ConfigError as failure:
        for problem in failure.problems:
            print("tunrelay: config error: %s" % problem, file=sys.stderr)
        return None


def _check(arguments):
    loaded = _load(arguments.config)
    if loaded is None:
        return 2
    try:
        configuration.load_secrets(loaded)
    except configuration.ConfigError as failure:
        for problem in failure.problems:
            print("tunrelay: config error: %s" % problem, file=sys.stderr)
        return 2
    print("%s: OK (%s %s, %d listen addresses, %d peers%s)" % (
        arguments.config, loaded.interface.mode, loaded.interface.name, len(loaded.listen),
        len(loaded.peers), ", PLAINTEXT" if loaded.plaintext else ""))
    return 0


def _run(arguments):
    from twisted.scripts.twistd import run

    sys.argv = ["twistd", "-n", "--pidfile=", "tunrelay", "-c", arguments.config]
    run()
    return 0


def _ask(arguments, command):
    """Send ``command`` to the control socket; (reply, exit code). Prints its own errors."""
    from tunrelay.control.client import ControlClientError, request

    path = arguments.socket
    if path is None and arguments.config is not None:
        loaded = _load(arguments.config)
        if loaded is None:
            return None, 2
        path = loaded.control_socket
    try:
        reply = request(path or DEFAULT_SOCKET, command)
    except ControlClientError as failure:
        print("tunrelay: %s" % failure, file=sys.stderr)
        return None, 1
    if not reply["ok"]:
        print("tunrelay: %s failed: %s" % (command, reply.get("message") or reply.get("error") or "no reason given"),
              file=sys.stderr)
        return reply, 1
    return reply, 0


def _status(arguments):
    from tunrelay.control.render import render_status

    reply, code = _ask(arguments, "status")
    if code:
        return code
    document = reply.get("result")
    if not isinstance(document, dict):
        print("tunrelay: status reply has no result document", file=sys.stderr)
        return 1
    if arguments.json:
        print(json.dumps(document, indent=2, sort_keys=True))
    else:
        now = document.get("time")
        sys.stdout.write(render_status(document, now if isinstance(now, (int, float)) else time.time()))
    return 0


def _reload(arguments):
    reply, code = _ask(arguments, "reload")
    if code:
        return code
    print("tunrelay: %s" % (reply.get("message") or "reloaded"))
    return 0


def _showconf(arguments):
    reply, code = _ask(arguments, "showconf")
    if code:
        return code
    result = reply.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("yaml"), str):
        print("tunrelay: showconf reply has no YAML", file=sys.stderr)
        return 1
    sys.stdout.write(result["yaml"])
    return 0


def _import(arguments):
    from tunrelay.wg_import import WgImportError, import_file

    try:
        written = import_file(arguments.source, arguments.output)
    except WgImportError as failure:
        for problem in failure.problems:
            print("tunrelay: import error: %s" % problem, file=sys.stderr)
        return 2
    print("tunrelay: wrote %s" % ", ".join(written))
    return 0


def _control_arguments(parser):
    parser.add_argument("-s", "--socket", help="control socket (default: the config's control_socket, else %s)"
                        % DEFAULT_SOCKET)
    parser.add_argument("-c", "--config", help="read control_socket from this configuration file")


def _genkey(arguments):
    """Like ``wg genkey``: a clamped X25519 private key, base64, on stdout."""
    print(keys.encode_key(keys.generate_private_key()))
    return 0


def _genpsk(arguments):
    """Like ``wg genpsk``: 32 random bytes, base64."""
    print(keys.encode_key(os.urandom(32)))
    return 0


def _pubkey(arguments):
    """Like ``wg pubkey``: the public key of the private key on stdin."""
    try:
        private = keys.decode_key(sys.stdin.read())
    except keys.InvalidKey as error:
        print("tunrelay: pubkey: %s" % error, file=sys.stderr)
        return 1
    print(keys.encode_key(keys.public_key(private)))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tunrelay", description="tun/tap relay tools")
    parser.add_argument("--version", action="version", version="tunrelay " + __version__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a configuration file")
    check.add_argument("-c", "--config", required=True)
    check.set_defaults(handler=_check)
    for name, handler, text in (("genkey", _genkey, "print a new private key (base64, as wg genkey)"),
                                ("pubkey", _pubkey, "read a private key on stdin, print its public key"),
                                ("genpsk", _genpsk, "print a new preshared key (as wg genpsk)")):
        commands.add_parser(name, help=text).set_defaults(handler=handler)
    run = commands.add_parser("run", help="run the relay in the foreground")
    run.add_argument("-c", "--config", required=True)
    run.set_defaults(handler=_run)
    status = commands.add_parser("status", help="show interface, peers and counters of the running relay")
    _control_arguments(status)
    status.add_argument("--json", action="store_true", help="print the status document as JSON (schema_version 1)")
    status.set_defaults(handler=_status)
    reload = commands.add_parser("reload", help="ask the running relay to re-read its configuration")
    _control_arguments(reload)
    reload.set_defaults(handler=_reload)
    showconf = commands.add_parser("showconf", help="print the running relay's configuration as YAML")
    _control_arguments(showconf)
    showconf.set_defaults(handler=_showconf)
    importer = commands.add_parser("import", help="turn a wg-quick configuration into a tunrelay one")
    importer.add_argument("source", help="a wg-quick file, e.g. /etc/wireguard/wg0.conf")
    importer.add_argument("--output", "-o", required=True, help="the YAML file to write; keys go beside it (0600)")
    importer.set_defaults(handler=_import)
    arguments = parser.parse_args(argv)
    return arguments.handler(arguments)


if __name__ == "__main__":
    sys.exit(main())
