"""The ``tunrelay`` command: tools around the relay that twistd runs.

    tunrelay check -c FILE     validate a configuration, print every problem, exit non-zero on any
    tunrelay run -c FILE       run in the foreground (same as ``twistd -n tunrelay -c FILE``)
"""

import argparse
import sys

from tunrelay import __version__
from tunrelay import config as configuration

__all__ = ["main"]


def _check(arguments):
    try:
        loaded = configuration.load(arguments.config)
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


def main(argv=None):
    parser = argparse.ArgumentParser(prog="tunrelay", description="tun/tap relay tools")
    parser.add_argument("--version", action="version", version="tunrelay " + __version__)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check", help="validate a configuration file")
    check.add_argument("-c", "--config", required=True)
    check.set_defaults(handler=_check)
    run = commands.add_parser("run", help="run the relay in the foreground")
    run.add_argument("-c", "--config", required=True)
    run.set_defaults(handler=_run)
    arguments = parser.parse_args(argv)
    return arguments.handler(arguments)


if __name__ == "__main__":
    sys.exit(main())
